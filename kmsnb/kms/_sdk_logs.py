"""Keep the Alibaba Cloud SDKs' own log records off stderr while kmsnb calls them.

``alibabacloud_credentials`` gives its ``credentials`` logger a handler of its own (to
stderr, level INFO) at import, and logs each failing provider of its default chain with a
traceback (``log.exception``): with no credentials, a notebook's stderr got some fifty
lines before kmsnb's own error, which already says what failed. ``Tea`` and ``darabonba``
log on ``alibabacloud-tea`` and ``darabonba-core``. Some of these records also quote the
credentials the library has cached, which kmsnb must never pass on.

So, while :func:`quiet_sdk_logs` is active, a filter on those three loggers drops their
records; kmsnb's exception carries what the user needs. The filter is scoped:

* to those loggers only: no handler, level or other logger is touched, and the user's
  logging configuration stays as it is;
* to kmsnb's own calls: it drops a record only when the context that logs it is inside
  ``quiet_sdk_logs`` (a :class:`contextvars.ContextVar`, so per thread and per asyncio
  task). The same SDKs used by other code, or by the user, log as they always did,
  before, after and beside kmsnb's calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

__all__ = ["SDK_LOGGER_NAMES", "quiet_sdk_logs"]

#: The loggers of alibabacloud_credentials, Tea and darabonba (the official SDK's stack).
SDK_LOGGER_NAMES = ("credentials", "alibabacloud-tea", "darabonba-core")

_inside_kmsnb_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kmsnb_inside_sdk_call", default=False
)


class _DropDuringKmsnbCalls(logging.Filter):
    """Drops a record logged from inside :func:`quiet_sdk_logs`; passes every other."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _inside_kmsnb_call.get()


_FILTER = _DropDuringKmsnbCalls("kmsnb")


def _install() -> None:
    # A logger's filters see the records logged on it before its handlers and before they
    # propagate, so one filter keeps them from the SDK's own handler and from the root's.
    for name in SDK_LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@contextlib.contextmanager
def quiet_sdk_logs() -> Iterator[None]:
    """Drop the SDKs' log records made by this thread (or task) inside the ``with``."""
    _install()
    token = _inside_kmsnb_call.set(True)
    try:
        yield
    finally:
        _inside_kmsnb_call.reset(token)
