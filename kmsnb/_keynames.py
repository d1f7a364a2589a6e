"""How a master key is named, everywhere kmsnb takes one: the one rule of every face.

A key id, an ARN and ``alias/NAME`` pass unchanged; any other bare ``NAME`` means
``alias/NAME``. Key ids are UUIDs, or, on KMS 3.0 instances, ``key-`` followed by at least
16 lowercase letters and digits; an alias that looks like one of those must be written
with its prefix. Python, the CLI, the magics, the widgets and Dask all call
:func:`resolve_key_name`, and their help shows :data:`KEY_NAMING_HELP`.
"""

from __future__ import annotations

import re
from typing import Final

from kmsnb._text import check_no_control_characters

__all__ = ["ALIAS_PREFIX", "KEY_NAMING_HELP", "is_alias", "resolve_key_name"]

ALIAS_PREFIX: Final = "alias/"

#: The sentence every face's help shows about naming a key.
KEY_NAMING_HELP: Final = (
    "KEY is a key id, an ARN (acs:kms:...) or alias/NAME; a bare NAME means alias/NAME "
    "(write alias/NAME for an alias that looks like a key id)"
)

# Patterns, compiled (and cached) by re at their first use: an alias/NAME needs neither
# (start-up).
_UUID: Final = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_KMS3_KEY_ID: Final = r"key-[a-z0-9]{16,}"
_ARN_PREFIX: Final = "acs:kms:"


def resolve_key_name(name: str) -> str:
    """The name to send the KMS for the key the user named.

    Args:
        name: a key id, an ARN, ``alias/NAME`` or a bare ``NAME``.

    Returns:
        ``name`` unchanged for a key id, an ARN or ``alias/NAME``; else ``alias/`` + ``name``
        (so ``Apollo/WorkKey`` becomes ``alias/Apollo/WorkKey``).

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: ``name`` is empty or holds a control character.
    """
    if not isinstance(name, str):
        raise TypeError(f"a key name must be str, not {type(name).__name__}")
    if not name:
        raise ValueError("a key name must not be empty")
    check_no_control_characters(name, "the key name")
    if (
        name.startswith(ALIAS_PREFIX)
        or name.startswith(_ARN_PREFIX)
        or re.fullmatch(_UUID, name)
        or re.fullmatch(_KMS3_KEY_ID, name)
    ):
        return name
    return ALIAS_PREFIX + name


def is_alias(name: str) -> bool:
    """Whether :func:`resolve_key_name` makes ``name`` an alias (``alias/...``)."""
    return resolve_key_name(name).startswith(ALIAS_PREFIX)
