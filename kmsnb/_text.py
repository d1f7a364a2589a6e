"""Control characters in key ids and encryption contexts: refused on write, escaped on show.

A file's header is written by whoever made the file. A key id or a context value holding
``ESC [`` and friends would drive the terminal of whoever runs ``kmsnb inspect``, or
rewrite what a notebook shows. So kmsnb never writes C0 controls (U+0000..U+001F), DEL
(U+007F) or C1 controls (U+0080..U+009F) into those fields, and every face shows them
escaped, as ``\\xNN``, whatever a file holds. This module is the one place that rule lives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "check_context_has_no_control_characters",
    "check_no_control_characters",
    "escape_control_characters",
    "json_for_display",
]

# Patterns, compiled (and cached) by re at their first use (start-up): printable ASCII,
# the common case, is told apart without them.
_CONTROL: Final = "[\x00-\x1f\x7f-\x9f]"
# What json.dumps(ensure_ascii=False) leaves raw: it escapes C0 itself, and the newlines
# of indented output are structure, not text.
_LEFT_RAW_BY_JSON: Final = "[\x7f-\x9f]"


def check_no_control_characters(value: str, what: str) -> None:
    """Refuse ``value`` if it holds a C0, DEL or C1 control character.

    Raises:
        ValueError: naming ``what``, the character and its position (never the raw text).
    """
    if value.isascii() and value.isprintable():
        return  # the control characters of ASCII are exactly its unprintable ones
    found = re.search(_CONTROL, value)
    if found is not None:
        raise ValueError(
            f"{what} holds the control character U+{ord(found.group()):04X} at position "
            f"{found.start()}; key ids and encryption contexts must be printable text"
        )


def check_context_has_no_control_characters(encryption_context: Mapping[str, str]) -> None:
    """Refuse an encryption context with a control character in a key or a value.

    Raises:
        ValueError: see :func:`check_no_control_characters`.
    """
    for key, value in encryption_context.items():
        check_no_control_characters(key, "an encryption context key")
        check_no_control_characters(value, f"the encryption context value of {key!r}")


def escape_control_characters(text: str) -> str:
    """``text`` with each C0, DEL and C1 control character shown as ``\\xNN``."""
    return re.sub(_CONTROL, lambda found: f"\\x{ord(found.group()):02x}", text)


def json_for_display(value: object, *, indent: int | None = None) -> str:
    """JSON that keeps non-ASCII text readable but never carries a raw control character.

    ``json.dumps(ensure_ascii=False)`` escapes C0 but passes DEL and C1 through; they
    only ever occur inside strings, where ``\\u00NN`` means the same character.
    """
    import json  # here: only what is displayed as JSON needs it

    encoded = json.dumps(value, indent=indent, ensure_ascii=False)
    return re.sub(_LEFT_RAW_BY_JSON, lambda found: f"\\u{ord(found.group()):04x}", encoded)
