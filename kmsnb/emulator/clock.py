"""A clock for tests: the emulator's notion of now, moved forward on request.

Rotation intervals are at least 7 days and deletion windows at least 7, so tests over HTTP
need the served emulator to skip ahead: ``kmsnb emulator serve --clock movable`` runs the
emulator on a :class:`MovableClock`, and ``kmsnb emulator advance 8d`` (an authenticated
admin call, :mod:`kmsnb.emulator.admin`) moves it. Time only goes forward, so nothing that
rotated or was purged can be undone by a later call, and between calls it runs at the
speed of the system clock.

Only the KMS semantics (rotation, deletion windows, secrets' recovery windows, dates in
responses) use this clock. Request signatures are still checked against the system clock,
since clients sign with theirs.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

__all__ = ["MAX_ADVANCE_SECONDS", "MovableClock", "parse_clock", "parse_duration"]

#: Bound on one move: ten years is far past any rotation interval or window.
MAX_ADVANCE_SECONDS: Final = 10 * 366 * 86400

_DURATION: Final = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS: Final = (7 * 86400, 86400, 3600, 60, 1)


class MovableClock:
    """The system time plus an offset that :meth:`advance` grows. Thread-safe.

    Args:
        start: the time (POSIX seconds) the clock reads now; default the system time.
        source: the underlying time source (tests pass a fake one).
    """

    def __init__(
        self, start: float | None = None, *, source: Callable[[], float] = time.time
    ) -> None:
        self._source = source
        self._offset = 0.0 if start is None else start - source()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._source() + self._offset

    def __repr__(self) -> str:
        return f"MovableClock(offset={self.offset:g}s)"

    @property
    def offset(self) -> float:
        """How far ahead of the system clock this one is, in seconds."""
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward; return the new time.

        Raises:
            ValueError: ``seconds`` is negative or over :data:`MAX_ADVANCE_SECONDS`.
        """
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
            raise ValueError(f"the clock moves forward by 0 to {MAX_ADVANCE_SECONDS} seconds")
        with self._lock:
            self._offset += seconds
            return self._source() + self._offset


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``8d``, ``36h``, ``1d12h``, ``90m``, ``2w`` or ``45s``.

    Raises:
        ValueError: if ``text`` is not such a duration, or is zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (e.g. 8d, 36h, 1d12h, 90m, 45s)")
    seconds = sum(
        int(group or 0) * unit for group, unit in zip(match.groups(), _UNITS, strict=True)
    )
    if seconds == 0:
        raise ValueError(f"a duration of zero moves nothing: {text!r}")
    return seconds


def parse_clock(spec: str) -> MovableClock | None:
    """The clock ``--clock`` names: ``system`` (None), ``movable``, or a start time.

    A start time is ISO 8601 (``2030-01-01T00:00:00Z``); the clock then runs from there and
    is movable too.

    Raises:
        ValueError: for anything else.
    """
    value = spec.strip()
    if value.lower() == "system":
        return None
    if value.lower() == "movable":
        return MovableClock()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--clock takes system, movable or a start time such as 2030-01-01T00:00:00Z, "
            f"not {spec!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return MovableClock(moment.timestamp())
