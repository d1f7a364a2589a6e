"""The file kmsnb writes an output into: errors that name the destination, the early
write-back of a durable output (:mod:`kmsnb._write_back`), and the writing of a large one
from a thread of its own (:mod:`kmsnb._write_behind`). :mod:`kmsnb._files` decides where
it goes and when it gets its name.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import TYPE_CHECKING, Any

from kmsnb._write_back import WRITE_BACK_STEP, start_write_back

if TYPE_CHECKING:
    from kmsnb import _write_behind

__all__ = ["WRITE_BEHIND_AFTER", "Output", "naming"]

#: Bytes an output is written in the caller's thread before the rest goes to a thread of
#: its own (:mod:`kmsnb._write_behind`): small files never pay for starting one.
WRITE_BEHIND_AFTER = 4 << 20


def naming(error: OSError, destination: str | os.PathLike[str]) -> OSError:
    """The same error, naming the destination rather than a temporary file."""
    renamed = type(error)(error.errno, error.strerror or str(error), os.fspath(destination))
    return renamed


class Output(io.BufferedWriter):
    """A buffered file whose write errors (ENOSPC, EFBIG, EIO) name the destination.

    With ``write_back``, the write-back of what was written is started every
    :data:`~kmsnb._write_back.WRITE_BACK_STEP` bytes. With ``behind``, once
    :data:`WRITE_BEHIND_AFTER` bytes were written, the rest is written from a thread of
    its own (:mod:`kmsnb._write_behind`), so that the caller's next step (reading,
    encrypting, decrypting) runs while the kernel takes the last one. The offsets assume
    sequential writes, as every writer of kmsnb's makes; the hint is advisory either way.
    """

    def __init__(
        self,
        fd: int,
        destination: str | os.PathLike[str],
        *,
        write_back: bool = False,
        behind: bool = False,
    ) -> None:
        super().__init__(io.FileIO(fd, "wb", closefd=True))
        self.destination = destination
        self._may_go_behind = behind
        self._behind: _write_behind.BackgroundWriter | None = None
        self._written = 0  # bytes accepted so far
        self._write_back_cursor = _WriteBackCursor(fd, enabled=write_back)

    def write(self, data: Any) -> int:
        if self._behind is None and self._may_go_behind and self._written >= WRITE_BEHIND_AFTER:
            self._go_behind()
        try:
            if self._behind is None:
                count = super().write(data)
            else:
                if self.closed:
                    raise ValueError("write to closed file")
                count = memoryview(data).nbytes
                self._behind.write(data)
        except OSError as error:
            raise naming(error, self.destination) from None
        self._written += count
        if self._behind is None:
            self._write_back_cursor.reach(self._written)
        return count

    def tell(self) -> int:
        # The descriptor's offset is the background thread's, behind this one.
        return self._written if self._behind is not None else super().tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._stop_behind()
        return super().seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self._stop_behind()
        return super().truncate(size)

    def flush(self) -> None:
        try:
            if self._behind is not None:
                self._behind.drain()
            super().flush()
        except OSError as error:
            raise naming(error, self.destination) from None

    def close(self) -> None:
        try:
            if not self.closed:
                self.flush()
        finally:
            if self._behind is not None:
                self._behind.abandon()  # drained above, or failed: nothing left to write
                self._behind = None
            super().close()

    def abandon(self) -> None:
        """Close without writing what is still queued: the output will not be kept."""
        if self._behind is not None:
            self._behind.abandon()
            self._behind = None
        self._may_go_behind = False
        with contextlib.suppress(OSError, ValueError):
            self.close()

    def _go_behind(self) -> None:
        from kmsnb._write_behind import BackgroundWriter  # large outputs only (start-up)

        self.flush()  # the background thread writes from the descriptor's offset on
        self._may_go_behind = False
        # No thread to be had (a process at its limit): go on writing in this one.
        with contextlib.suppress(RuntimeError):
            self._behind = BackgroundWriter(self.fileno(), self._write_back_cursor.advance)

    def _stop_behind(self) -> None:
        """Back to writing in the caller's thread (for a seek or truncate)."""
        self._may_go_behind = False
        if self._behind is not None:
            behind, self._behind = self._behind, None
            try:
                behind.close()
            except OSError as error:
                raise naming(error, self.destination) from None


class _WriteBackCursor:
    """How far one output is written, and where its early write-back stands.

    Its own object, not the output's: the background thread calls :meth:`advance`, and
    holding the output from there would keep a lost writer alive (see
    :mod:`kmsnb._write_behind`, "Signals").
    """

    def __init__(self, fd: int, *, enabled: bool) -> None:
        self._fd = fd
        self._enabled = enabled
        self._written = 0  # bytes known to be written, from the file's start
        self._handed_over = 0  # write-back was started for the bytes before this offset

    def advance(self, size: int) -> None:
        """``size`` more bytes were written (the background thread's report)."""
        self.reach(self._written + size)

    def reach(self, written: int) -> None:
        """The first ``written`` bytes are written: start the write-back of a step."""
        self._written = written
        if self._enabled and written - self._handed_over >= WRITE_BACK_STEP:
            start_write_back(self._fd, self._handed_over, written - self._handed_over)
            self._handed_over = written
