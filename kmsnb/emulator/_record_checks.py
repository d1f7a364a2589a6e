"""Strict checks of the values found in ``keystore.json``, shared by every kind of record.

``keystore.json`` is authenticated (:mod:`kmsnb.emulator._records`), but what it holds is
still checked field by field after the MAC, so that a file written by a buggy or older
kmsnb, or an edit re-authenticated with the root key, is refused with
:class:`MalformedKeyStore` naming the part that is wrong instead of surprising a later
call. Each check takes ``where`` (a path such as ``keys[2].tags``) for that message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

__all__ = [
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_TAG_COUNT",
    "MAX_TEXT",
    "MalformedKeyStore",
    "binary",
    "is_int",
    "optional_time",
    "tags",
    "text",
    "time_value",
]

MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: what strftime can show
# Finite floats lie strictly between the infinities, and NaN compares with nothing: the test
# math.isfinite makes, without importing math for it (start-up).
_INFINITY = float("inf")
MAX_TEXT = 8192
MAX_TAG_COUNT = 1000
#: DKMSInstanceId of a key or a secret: recorded as sent, within this bound.
MAX_INSTANCE_ID_LENGTH = 128


class MalformedKeyStore(Exception):
    """``keystore.json`` does not parse as a keystore; the message says which part."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def time_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedKeyStore(f"{where} is not a time")
    if isinstance(value, float) and not -_INFINITY < value < _INFINITY:
        raise MalformedKeyStore(f"{where} is not a time")
    if not 0 <= value <= MAX_TIME:  # an int compares without conversion, however large
        raise MalformedKeyStore(f"{where} is not a time")
    return float(value)


def optional_time(value: Any, where: str) -> float | None:
    return None if value is None else time_value(value, where)


def text(value: Any, where: str, max_length: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > max_length or (not value and not allow_empty):
        raise MalformedKeyStore(f"{where} is not a valid string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a \ud800 escape
        raise MalformedKeyStore(f"{where} is not valid Unicode") from None
    return value


def tags(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_TAG_COUNT:
        raise MalformedKeyStore(f"{where} is not a map of tags")
    for tag_key, tag_value in value.items():
        text(tag_key, where, 128)
        text(tag_value, where, 128)
    return dict(value)


def binary(value: Any, where: str, sizes: tuple[int, ...]) -> bytes:
    """Base64 text of exactly one of ``sizes`` bytes."""
    if not isinstance(value, str) or len(value) > 4 * max(sizes):
        raise MalformedKeyStore(f"{where} is not base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedKeyStore(f"{where} is not base64") from None
    if len(raw) not in sizes:
        raise MalformedKeyStore(f"{where} is not {' or '.join(map(str, sizes))} bytes")
    return raw
