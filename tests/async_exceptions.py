"""Raising an exception at each point where Python can raise one asynchronously.

A signal's Python handler (the CLI's SIGTERM and SIGHUP, Ctrl-C's KeyboardInterrupt)
runs, and can raise, only where the interpreter checks for pending events: on entering a
Python function, after a call into C returns, and on a loop's jump back. :class:`Injection`
raises :class:`Injected` at the ``n``-th such point of the code it watches (by opcode
tracing, in the calling thread only), so that a test can walk every point of a scenario
one run at a time: the deterministic form of "a signal arrives at the worst moment",
which a real signal hits only by chance (``tests/crash`` does that, with real signals).

The model is a little wider than CPython's: it also counts the return from a call into a
Python function, where the interpreter itself does not check. A point too many only
makes the test stricter.
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Injected", "Injection"]

_CHECKED_AFTER = frozenset(
    code
    for code, name in enumerate(dis.opname)
    if name.startswith("CALL") or name == "JUMP_BACKWARD"
)


class Injected(BaseException):
    """The exception a signal's handler would have raised (BaseException, like theirs)."""


class Injection:
    """Within a ``with`` block, raise :class:`Injected` at the ``at``-th point (from 1) in
    the files ``watched``; afterwards, :attr:`points` is how many points the block passed
    (or the one it was stopped at) and :attr:`where` the file, line and function there."""

    def __init__(self, at: int, watched: Iterable[str]) -> None:
        self.at = at
        self.points = 0
        self.where: tuple[str, int, str] | None = None
        self._watched = frozenset(watched)

    @property
    def fired(self) -> bool:
        return self.where is not None

    def __enter__(self) -> Injection:
        sys.settrace(self._enter_frame)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.settrace(None)

    def _enter_frame(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in self._watched:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        previous: list[int | None] = [None]
        first = [True]

        def step(frame: FrameType, event: str, arg: Any) -> Any:
            if event != "opcode":
                return step
            checked = first[0] or previous[0] in _CHECKED_AFTER
            first[0] = False
            previous[0] = frame.f_code.co_code[frame.f_lasti]
            if checked and not self.fired:
                self.points += 1
                if self.points == self.at:
                    code = frame.f_code
                    self.where = (code.co_filename, frame.f_lineno, code.co_name)
                    raise Injected  # the tracer is removed, as after any error of its own
            return step

        return step
