"""Writing a large output from a helper thread, while the caller makes the next piece.

A large ``encrypt_file``/``decrypt_file`` spends its time in three steps of about the same
size: reading the source, the cipher, and the ``write`` calls that copy the result into
the page cache (with the write-back they start). Done one after the other, as a plain
loop does, they add up; a plain copy has only two of them. Cobblestone releases the GIL
in ``update_into`` and ``os.write`` releases it in the kernel, so one thread can encrypt
the next piece while another writes the last one: kmsnb's time is then about the longest
step rather than their sum. A profile of a 256 MiB ``encrypt_file`` on ext4 here
(2026-12-02): writes 86 ms, reads 43 ms, ``update_into`` 35 ms, the write-back starts
33 ms. The README's performance section has the figures with and without this module,
and the command.

:class:`BackgroundWriter` is the other thread: a small pool of slots (:data:`SLOT_COUNT`
of :data:`SLOT_SIZE`), filled by the caller and written in order by the thread. Memory is
bounded by the pool (4 MiB), whatever the size of the file. The caller's data is copied
into a slot (the cipher reuses its buffer as soon as a write returns), which costs a
memcpy, far less than the write it hides.

Errors stay sticky and precise: the first error of the thread (``ENOSPC``, ``EIO``) is
raised by the caller's next :meth:`~BackgroundWriter.write` or by
:meth:`~BackgroundWriter.drain`, and by every call after; nothing queued after it is
written. An output that fails is never published (:mod:`kmsnb._files`), so a late
report loses nothing. Only plaintext that the cipher released (authenticated) ever
reaches a slot.

Small outputs never get a thread: :mod:`kmsnb._files` starts one only once an output has
passed :data:`kmsnb._files.WRITE_BEHIND_AFTER` bytes.
"""

from __future__ import annotations

import _thread
import os
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["SLOT_COUNT", "SLOT_SIZE", "BackgroundWriter", "running_count"]

#: Bytes per slot: the size of the cipher's steps (1 MiB), so a step is one ``write``.
SLOT_SIZE = 1 << 20
#: Slots in the pool: one being filled, one being written, and two in reserve for the
#: moments when the disk (or the cipher) is the slower one. More gained nothing here.
SLOT_COUNT = 4

_STOP = None  # what tells the thread to end, after the slots queued before it

_running = 0  # writer threads not yet ended (running_count)
_running_lock = _thread.allocate_lock()


def running_count() -> int:
    """How many writer threads have started and not yet ended (for tests and diagnostics)."""
    return _running


def _count_running(change: int) -> None:
    global _running
    with _running_lock:
        _running += change


class BackgroundWriter:
    """Writes to the descriptor ``fd``, in order, from a thread of its own.

    ``wrote(size)`` is called by the thread after each slot is on its way (the
    descriptor's early write-back is started from there). The descriptor stays the
    caller's: it is written at its current offset and never closed here.

    The thread is a bare ``_thread`` one, not a :class:`threading.Thread`: the CLI turns
    SIGTERM and SIGHUP into an exception raised wherever the main thread is, and a
    ``Thread`` object's end runs a weak-reference callback of ``threading``'s there, where
    Python ignores (prints and drops) any exception: the signal was lost, and the command
    went on (seen in ``tests/crash``). Joining is a lock the thread releases as it ends.
    """

    def __init__(
        self,
        fd: int,
        wrote: Callable[[int], None],
        *,
        slot_size: int = SLOT_SIZE,
        slot_count: int = SLOT_COUNT,
    ) -> None:
        self._fd = fd
        self._wrote = wrote
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(slot_count):
            self._free.put(bytearray(slot_size))
        # A Queue (not a SimpleQueue) for its join(): drain() waits for the queued slots.
        self._full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self._slot: bytearray | None = None
        self._filled = 0
        self._error: BaseException | None = None
        self._abandoned = False
        self._stopped = False
        self._ended = _thread.allocate_lock()
        self._ended.acquire()  # released by the thread as its last act
        _count_running(+1)
        try:
            _thread.start_new_thread(self._run_then_end, ())
        except BaseException:
            _count_running(-1)
            raise

    def write(self, data: ReadableBuffer) -> None:
        """Queue ``data`` (copied); raises the thread's error, if it met one."""
        self._raise_error()
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        view = view.cast("B")
        while view:
            if self._slot is None:
                self._slot = self._free.get()  # the thread frees every slot, failed or not
                self._filled = 0
            count = min(len(view), len(self._slot) - self._filled)
            self._slot[self._filled : self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]
            if self._filled == len(self._slot):
                self._queue_slot()

    def drain(self) -> None:
        """Wait until everything written so far is written out (the thread goes on);
        raises the thread's error, if it met one."""
        if self._slot is not None:
            self._queue_slot()
        self._full.join()
        self._raise_error()

    def close(self) -> None:
        """Write out everything, then end the thread; raises the thread's error, if any."""
        try:
            self.drain()
        finally:
            self._stop()

    def abandon(self) -> None:
        """End the thread, writing nothing more: for an output that will not be kept."""
        self._abandoned = True
        self._slot = None
        self._stop()

    def _queue_slot(self) -> None:
        assert self._slot is not None
        self._full.put((self._slot, self._filled))
        self._slot = None

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._full.put(_STOP)
            self._ended.acquire()  # the thread's end
            self._ended.release()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run_then_end(self) -> None:
        try:
            self._run()
        finally:
            _count_running(-1)
            self._ended.release()

    def _run(self) -> None:
        while (item := self._full.get()) is not _STOP:
            slot, size = item
            if self._error is None and not self._abandoned:
                try:
                    self._write_all(memoryview(slot)[:size])
                    self._wrote(size)
                except BaseException as error:  # handed to the caller's thread, raised there
                    self._error = error
            self._free.put(slot)
            self._full.task_done()
        self._full.task_done()

    def _write_all(self, view: memoryview) -> None:
        while view:
            view = view[os.write(self._fd, view) :]
