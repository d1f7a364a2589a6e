"""Writing a file all at once or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_output", "fsync_directory"]


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block completes.

    The data goes to a temporary file (mode 0600) in the destination's folder, is fsynced,
    and is renamed over ``path`` at the end. After any error the temporary file is
    removed, and an existing ``path`` is untouched.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    destination = Path(path)
    if not overwrite and destination.exists():
        raise FileExistsError(f"{destination} exists; pass overwrite=True to replace it")
    fd, temporary_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".kmsnb-tmp", dir=destination.parent
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(fd, "wb") as output:
            yield output
            output.flush()
            os.fsync(output.fileno())
        if overwrite:
            os.replace(temporary, destination)
        else:
            # link() refuses an existing name, so a file created meanwhile is never lost.
            os.link(temporary, destination)
            temporary.unlink()
        fsync_directory(destination.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
