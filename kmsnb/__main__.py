"""``python -m kmsnb``: the same as the ``kmsnb`` command."""

import sys

from kmsnb.cli import main

if __name__ == "__main__":
    sys.exit(main())
