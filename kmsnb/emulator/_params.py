"""Reading request parameters as they arrive on the wire: strings, JSON in strings.

The SDKs send booleans as ``True``/``False``, integers as decimal text, and maps and lists
(``EncryptionContext``, ``Filters``, ``Tags``, ``TagKeys``) as JSON strings
(``docs/kms-api.md``, "Requests").
A required parameter sent empty counts as missing, as an SDK that leaves it unset would.
Whatever a parameter holds, a bad one is a 400 ``InvalidParameter``, never a 500: JSON
nested too deeply, numbers too long, text that is not valid Unicode (a lone surrogate).

**Encryption contexts** are bounded by :data:`MAX_ENCRYPTION_CONTEXT_SIZE`, measured as kmsnb's
file header stores a context (``kmsnb/_format/header.py``: a u16 pair count, then each key and
value as u16 length and UTF-8), so that the in-process emulator and the HTTP server accept
exactly the contexts a kmsnb file can hold, whichever JSON spacing or escapes the client
sent. Alibaba Cloud KMS documents a smaller bound, 8,192 characters of JSON: a context
beyond it works with the emulator only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from kmsnb.emulator._errors import ServiceError, invalid, missing

__all__ = [
    "MAX_CONTEXT_PARAMETER_LENGTH",
    "MAX_ENCRYPTION_CONTEXT_SIZE",
    "Params",
    "check_dry_run",
    "context_size",
    "page_of",
]

#: The largest encryption context accepted, in bytes as kmsnb's file header stores it; the
#: header's own bound (``MAX_CONTEXT_SIZE``), which a test keeps equal.
MAX_ENCRYPTION_CONTEXT_SIZE = 65536
#: The longest context *parameter* (JSON text) read at all: room for escapes such as
#: ``\u00e9`` (6 characters for 2 bytes) and ``\"``, and for spaces after separators.
MAX_CONTEXT_PARAMETER_LENGTH = 4 * MAX_ENCRYPTION_CONTEXT_SIZE

# Compiled at its first use (re caches it), not at import: few calls take a duration.
_INTERVAL = r"(\d{1,12})([dhms])"
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


class Params:
    """Typed access to one request's raw parameters; every failure is a ServiceError."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw

    def names(self) -> list[str]:
        """Every parameter name received (for families such as ``ExtendedConfig.*``)."""
        return list(self._raw)

    def optional(self, name: str) -> str | None:
        value = self._raw.get(name)
        if not value:
            return None
        if not _is_encodable(value):  # a lone surrogate, from an in-process caller
            raise invalid(name)
        return value

    def required(self, name: str, *, allow_empty: bool = False) -> str:
        value = self._raw.get(name)
        if value is None or (value == "" and not allow_empty):
            raise missing(name)
        if not _is_encodable(value):
            raise invalid(name)
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.optional(name)
        if value is None:
            return default
        if value not in choices:
            raise invalid(name)
        return value

    def boolean(self, name: str, *, default: bool, required: bool = False) -> bool:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise invalid(name)
        return lowered == "true"

    def integer(self, name: str, *, default: int | None, low: int, high: int) -> int:
        value = self.optional(name)
        if value is None:
            if default is None:
                raise missing(name)
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise invalid(name) from None
        if not low <= number <= high:
            raise invalid(name)
        return number

    def page(self, *, max_size: int, min_size: int = 1) -> tuple[int, int]:
        """``(PageNumber, PageSize)``: number ≥ 1 (default 1), size min..max (default 10).

        Where the API documents ``PageSize`` from 0, a size of 0 gives an empty page
        that still says ``TotalCount``.
        """
        number = self.integer("PageNumber", default=1, low=1, high=2**31 - 1)
        size = self.integer("PageSize", default=10, low=min_size, high=max_size)
        return number, size

    def json(self, name: str) -> Any:
        """The parsed JSON value of ``name``, or None when absent or empty."""
        value = self.optional(name)
        if value is None:
            return None
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise invalid(name) from None

    def context(self, name: str = "EncryptionContext") -> dict[str, str]:
        """An encryption context: a JSON object of string to string; absent means empty.

        Raises:
            ServiceError: InvalidParameter when it is not such an object, holds text that is
                not valid Unicode, or is larger than :data:`MAX_ENCRYPTION_CONTEXT_SIZE`.
        """
        raw = self.optional(name)
        if raw is not None and len(raw) > MAX_CONTEXT_PARAMETER_LENGTH:
            raise invalid(name)
        value = self.json(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid(name)
        try:
            size = context_size(value)
        except UnicodeEncodeError:  # a lone surrogate, from a \ud800 escape
            raise invalid(name) from None
        if size > MAX_ENCRYPTION_CONTEXT_SIZE:
            raise invalid(name)
        return value

    def string_list(self, name: str) -> list[str]:
        value = self.json(name)
        if value is None:
            raise missing(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(name)
        return value

    @staticmethod
    def is_text(value: object) -> TypeGuard[str]:
        """Whether ``value``, from a parameter's JSON, is a string of valid Unicode."""
        return isinstance(value, str) and _is_encodable(value)

    def interval(self, name: str, *, low_days: int, high_days: int) -> int | None:
        """A duration such as ``7d`` or ``604800s``, in seconds; None when absent."""
        value = self.optional(name)
        if value is None:
            return None
        match = re.fullmatch(_INTERVAL, value.strip())
        if match is None:
            raise invalid(name)
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if not low_days * 86400 <= seconds <= high_days * 86400:
            raise invalid(name)
        return seconds


def context_size(encryption_context: Mapping[str, str]) -> int:
    """The bytes kmsnb's file header takes for this context: a u16 pair count, then a u16
    length and the UTF-8 of each key and value."""
    return 2 + sum(
        4 + _utf8_size(key) + _utf8_size(value) for key, value in encryption_context.items()
    )


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def page_of(items: list[Any], number: int, size: int) -> list[Any]:
    start = (number - 1) * size
    return items[start : start + size]


def check_dry_run(params: Params) -> None:
    """Raise DryRunOperation once a request with ``DryRun=true`` has passed validation."""
    if params.boolean("DryRun", default=False):
        raise ServiceError(
            "DryRunOperation", "Request validation has been passed with DryRun flag set.", 400
        )


def _is_encodable(text: str) -> bool:
    if text.isascii():  # the common case, and O(1) in CPython
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
