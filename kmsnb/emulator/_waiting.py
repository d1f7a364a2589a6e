"""Answering a request on the server's event loop, where nothing may wait.

The HTTP server runs the data-plane actions (GenerateDataKey, Decrypt...) on its
event-loop thread rather than on a worker: the hop to a worker and back (two thread
wake-ups, often on the other CPU) was 20-40 % of the server's CPU per request (a
GenerateDataKey + Decrypt pair took 660-980 us with it, 520-560 without; issue 16).
Those actions read the in-memory snapshot of the keystore and its cached ciphers, and
look at the keystore's file (one ``stat``) to see whether another process changed it.

On the loop, anything that would wait raises :class:`WouldBlock` before it has changed
anything, and the request goes on on a worker: a lock another thread holds (a write in
progress), reading the keystore from disk (another process changed it, or a second has
passed since it last looked), or writing it (housekeeping due). So a slow disk or a
long write still stalls only the workers, never the loop that reads every connection.
"""

from __future__ import annotations

import contextlib
import contextvars
from _thread import RLock  # threading.RLock's own class, as the store holds
from collections.abc import Iterator

__all__ = ["WouldBlock", "acquire", "check_may_wait", "not_waiting"]

_NOT_WAITING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kmsnb_emulator_not_waiting", default=False
)


class WouldBlock(Exception):
    """The call needs to wait, which the event loop must not: run it on a worker."""


@contextlib.contextmanager
def not_waiting() -> Iterator[None]:
    """Within the block, whatever would wait raises :class:`WouldBlock` instead."""
    token = _NOT_WAITING.set(True)
    try:
        yield
    finally:
        _NOT_WAITING.reset(token)


def check_may_wait() -> None:
    """Raise :class:`WouldBlock` inside :func:`not_waiting`: call it before a wait."""
    if _NOT_WAITING.get():
        raise WouldBlock


def acquire(lock: RLock) -> None:
    """``lock.acquire()``, except that inside :func:`not_waiting` a lock that another
    thread holds raises :class:`WouldBlock` instead of waiting for it. (A function, not a
    context manager: a generator's cost a tenth of an in-process KMS call.)"""
    if not lock.acquire(blocking=not _NOT_WAITING.get()):
        raise WouldBlock
