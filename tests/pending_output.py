"""Knowing, from outside, that a kmsnb process has started writing its output.

On Linux an unfinished output is an anonymous file (``O_TMPFILE``): no name in the folder
shows it, but ``/proc/PID/fd`` does (``DIR/#INODE (deleted)``). Where kmsnb falls back to
a named temporary file, the name shows too.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

TEMPORARY_MARK = ".kmsnb-tmp."


def has_pending_output(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` holds an unfinished kmsnb output in ``directory``."""
    prefix = f"{os.path.realpath(directory)}/"
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:  # not Linux, or the process is gone: look for a name
        return any(TEMPORARY_MARK in path.name for path in directory.iterdir())
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith(prefix) and (
            target.endswith(" (deleted)") or TEMPORARY_MARK in target
        ):
            return True
    return False


def wait_for_pending_output(
    process: subprocess.Popen[bytes], directory: Path, timeout_s: float = 30
) -> bool:
    """Wait until ``process`` is writing an output in ``directory``: ``True`` then,
    ``False`` if it ended first (a fast writer may finish between two looks)."""
    deadline = time.monotonic() + timeout_s
    while not has_pending_output(process.pid, directory):
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise AssertionError(f"no output was started in {directory}")
        time.sleep(0.001)
    return True
