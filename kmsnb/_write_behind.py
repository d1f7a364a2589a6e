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

**Signals.** The CLI turns SIGTERM and SIGHUP into an exception, and Ctrl-C is one: Python
raises it in the caller's thread wherever that thread is, between two steps of any
Python function. A lock taken by a Python function (``queue.Queue``'s, a
``threading.Condition``'s) can be left taken by it, and the next call that needs the lock
waits forever (a ``kmsnb decrypt`` stopped by SIGTERM hung so, once in CI). So the
caller's side uses only what acts in one C call, ``_queue.SimpleQueue`` and a bare lock,
and never waits twice for one event; the thread, which no signal interrupts, does the
rest. A writer lost half-made (the exception came between starting the thread and
keeping the writer) ends its thread on its own: the thread holds the writer only by a
weak reference and looks, while it has nothing to do, whether the writer still exists.
``tests/files/test_write_behind_signals.py`` raises an exception at every such point.
"""

from __future__ import annotations

import _thread
import _weakref
import os
from _queue import Empty, SimpleQueue
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
#: Seconds an idle thread waits before it looks whether its writer still exists.
IDLE_CHECK_S = 0.25

_STOP = None  # what tells the thread to end, after the slots queued before it
_LockType = type(_thread.allocate_lock())

# What the caller queues for the thread: a slot and its size; a lock, released when the
# thread reaches it (drain); or _STOP.
_Item = tuple[bytearray, int] | _thread.LockType | None

# The end-locks of the threads not yet ended (running_count). A set's add and discard are
# each one C call: no lock of our own that a signal could leave taken.
_running: set[_thread.LockType] = set()


def running_count() -> int:
    """How many writer threads have started and not yet ended (for tests and diagnostics)."""
    return len(_running)


class _LostWriterError(OSError):
    """The thread ended because its writer was gone with slots still to come."""


class _Shared:
    """What the caller and the thread both hold: the queues and the thread's outcome."""

    def __init__(self, fd: int, wrote: Callable[[int], None]) -> None:
        self.fd = fd
        self.wrote = wrote
        self.free: SimpleQueue[bytearray] = SimpleQueue()
        self.full: SimpleQueue[_Item] = SimpleQueue()  # in order
        self.error: BaseException | None = None
        self.abandoned = False
        self.ended = False  # set by the thread just before it releases end_lock
        self.end_lock = _thread.allocate_lock()
        self.end_lock.acquire()


class BackgroundWriter:
    """Writes to the descriptor ``fd``, in order, from a thread of its own.

    ``wrote(size)`` is called by the thread after each slot is on its way (the
    descriptor's early write-back is started from there). The descriptor stays the
    caller's: it is written at its current offset and never closed here.

    The thread is a bare ``_thread`` one, not a :class:`threading.Thread`: a ``Thread``
    object's end runs a weak-reference callback of ``threading``'s in the caller's thread,
    where Python ignores (prints and drops) any exception, a SIGTERM's included: the
    signal was lost, and the command went on (seen in ``tests/crash``).
    """

    def __init__(
        self,
        fd: int,
        wrote: Callable[[int], None],
        *,
        slot_size: int = SLOT_SIZE,
        slot_count: int = SLOT_COUNT,
    ) -> None:
        shared = self._shared = _Shared(fd, wrote)
        for _ in range(slot_count):
            shared.free.put(bytearray(slot_size))
        self._slot: bytearray | None = None
        self._filled = 0
        self._stop_sent = False
        _thread.start_new_thread(_serve, (_weakref.ref(self), shared))
        _running.add(shared.end_lock)

    def write(self, data: ReadableBuffer) -> None:
        """Queue ``data`` (copied); raises the thread's error, if it met one."""
        self._raise_error()
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        view = view.cast("B")
        while view:
            if self._slot is None:
                self._slot = self._shared.free.get()  # the thread frees every slot it takes
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
        shared = self._shared
        reached = _thread.allocate_lock()
        reached.acquire()
        shared.full.put(reached)
        # The thread releases it once the slots before it are written, or as it ends (it
        # sets ``ended`` first): a thread that ended never leaves a drain waiting.
        if not shared.ended:
            reached.acquire()
        self._raise_error()

    def close(self) -> None:
        """Write out everything, then end the thread; raises the thread's error, if any."""
        try:
            self.drain()
        finally:
            self._stop()

    def abandon(self) -> None:
        """End the thread, writing nothing more: for an output that will not be kept."""
        self._shared.abandoned = True
        self._slot = None
        self._stop()

    def _queue_slot(self) -> None:
        assert self._slot is not None
        self._shared.full.put((self._slot, self._filled))
        self._slot = None

    def _stop(self) -> None:
        shared = self._shared
        if not self._stop_sent:
            shared.full.put(_STOP)  # a second one, after a signal in between, is never read
            self._stop_sent = True
        # Waits at most once: the thread sets ``ended`` before it releases the lock, so a
        # wait that a signal cut short after it got the lock is never repeated.
        if not shared.ended:
            shared.end_lock.acquire()
            shared.end_lock.release()

    def _raise_error(self) -> None:
        if self._shared.error is not None:
            raise self._shared.error


def _serve(writer: _weakref.ReferenceType[BackgroundWriter], shared: _Shared) -> None:
    """The thread: write the queued slots in order until told to stop, or until the
    writer is gone (nothing more can come)."""
    try:
        while True:
            try:
                item = shared.full.get(timeout=IDLE_CHECK_S)
            except Empty:
                if writer() is None:  # lost (see the module), or being finalized
                    shared.error = _LostWriterError("the writer of this output was lost")
                    return
                continue
            if item is _STOP:
                return
            if isinstance(item, _LockType):
                item.release()  # a drain waits for it
                continue
            slot, size = item
            if shared.error is None and not shared.abandoned:
                try:
                    _write_all(shared.fd, memoryview(slot)[:size])
                    shared.wrote(size)
                except BaseException as error:  # handed to the caller's thread, raised there
                    shared.error = error
            shared.free.put(slot)
    finally:
        _running.discard(shared.end_lock)
        shared.ended = True
        shared.end_lock.release()
        _release_waiting_drains(shared.full)


def _release_waiting_drains(full: SimpleQueue[_Item]) -> None:
    """After the thread's end: a drain queued meanwhile must not wait for it."""
    while True:
        try:
            item = full.get_nowait()
        except Empty:
            return
        if isinstance(item, _LockType):
            item.release()


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]
