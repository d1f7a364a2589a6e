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

The page cache, measured (``bench/bench_write_back.py``, 256 MiB, ext4):

* the written pages stay cached, clean once written, as after ``cp``: a read of the
  output right after (decrypting what was just encrypted, loading what was just
  decrypted) comes from memory, 29 ms. Dropping them as they are written (waiting for
  each step, then ``POSIX_FADV_DONTNEED``) would spare other files' cached pages, but it
  made that read 169 ms (from the disk) and the write no faster (0.99x the plain loop,
  against 0.65x for write-back alone); the kernel reclaims clean pages first anyway.
* dirty pages do not pile up: a step or two of the output is dirty at a time, the rest
  on disk or on its way, so a large write does not push other writers into the kernel's
  dirty-page throttling as a plain copy of a large file can.
* the source's pages are left as they are: kmsnb reads it once, like ``cp``, and a
  reader of the source finds it cached (or not) as before. A source that is not cached
  is read while the disk is writing, rather than before: there the gain is within the
  noise (0.76x to 1.10x the plain loop in four runs).
* a helper thread issuing the calls gained nothing more (0.87-0.90x against 0.83x), nor
  did steps of 2, 4, 16 or 32 MiB over 8. Encryption is not what the disk waits for:
  Cobblestone runs at 6.5 GB/s here (40 ms for 256 MiB) and releases the GIL during
  ``update_into``, but one stream is one sequence of chunks, with nothing for a second
  thread to encrypt.

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
