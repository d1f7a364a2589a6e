"""binder/requirements.txt from uv.lock: the runtime extras at the versions ``make test`` used.

repo2docker installs ``binder/requirements.txt`` with pip (it knows no uv.lock), so the file
is exported from the lock: ``make lock`` writes it (``python tests/repo/binder_requirements.py
--write``) and ``tests/repo/test_lock.py`` checks that it is up to date.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "binder" / "requirements.txt"
#: What a Binder session needs: the emulator over HTTP (aliyun), DataFrames, the magics and
#: widgets, Dask. Jupyter itself comes with repo2docker's environment.
EXTRAS = ("aliyun", "pandas", "notebook", "dask")
HEADER = f"""\
# Generated from uv.lock by `make lock` (tests/repo/binder_requirements.py):
# kmsnb with the extras {", ".join(EXTRAS)},
# at the versions `make test` passes with. repo2docker installs this with pip
# after copying the repository (-e . is a local requirement).
"""


def uv() -> str:
    """The uv that ``make`` bootstrapped next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv is not installed: run make test, which installs it")
    return found


def render() -> str:
    """The requirements file that uv.lock gives now (reads the lock only, no network)."""
    command = [uv(), "export", "--frozen", "--offline", "--no-hashes", "--no-header"]
    command += ["--no-annotate", "--no-dev", "--no-progress"]
    command += [option for extra in EXTRAS for option in ("--extra", extra)]
    exported = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return HEADER + exported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REQUIREMENTS}")
    if parser.parse_args().write:
        REQUIREMENTS.write_text(render(), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
