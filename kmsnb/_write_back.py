"""Starting the write-back of a durable output while it is being written.

A crash-safe write ends with an fsync, which waits until the disk has every byte. A
plain copy leaves all of that wait to its final fsync: on ext4 here, 100 of the 185 ms
of a 256 MiB fsynced copy. kmsnb starts the write-back of each :data:`WRITE_BACK_STEP`
bytes as soon as they are written (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which
starts the disk's work and does not wait for it), so the disk writes while kmsnb reads
and encrypts, and the final fsync (still made, still the one that counts) waits only
for the last step or so. A 256 MiB ``encrypt_file`` or ``decrypt_file`` takes about 0.8x
the time of a plain fsynced copy that way; the README's performance section has the
figures and the command.

The page cache, measured (``bench/bench_files.py --page-cache``, 256 MiB, ext4):

* the written pages stay cached, clean once written, as after ``cp``: a read of the
  output right after (decrypting what was just encrypted, loading what was just
  decrypted) comes from memory. Dropping them as they are written (waiting for each
  step, then ``POSIX_FADV_DONTNEED``) would spare other files' cached pages, but it made
  that read about 7x slower (it comes from the disk) and the write itself slower, not
  faster; the kernel reclaims clean pages first anyway.
* dirty pages never pile up: at most a step or two of the output is dirty at a time,
  so a large write does not push other writers into the kernel's dirty-page throttling
  as a plain copy of a large file does.
* the source's pages are left as they are: kmsnb reads it once, like ``cp``; a reader of
  the source finds it cached (or not) as before, and meets a disk that is busy writing
  during the copy rather than after it.

Small outputs never reach a step: they pay nothing, not even the ``ctypes`` import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["WRITE_BACK_STEP", "start_write_back"]

#: Bytes written between two starts of write-back. 4 to 16 MiB came out alike on ext4
#: here; smaller steps cost more calls, larger ones leave more to the final fsync.
WRITE_BACK_STEP = 8 << 20

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>

_sync_file_range: Callable[[int, int, int, int], int] | None = None
_looked_up = False


def start_write_back(fd: int, offset: int, size: int) -> None:
    """Start writing ``size`` bytes at ``offset`` of ``fd`` to disk, without waiting.

    Through ``ctypes``: the os module has no ``sync_file_range``. Where there is none
    (not Linux), this does nothing. Errors are ignored: this is a hint, and the final
    fsync reports any error that matters (this call waits for nothing, so it takes no
    write-back error away from the fsync).
    """
    global _sync_file_range, _looked_up
    if not _looked_up:
        _looked_up = True
        _sync_file_range = _look_up_sync_file_range()
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, size, _SYNC_FILE_RANGE_WRITE)


def _look_up_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]
