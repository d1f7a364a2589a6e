"""The encryption context, checked, parsed and compared in one place.

An encryption context is a mapping of ``str`` to ``str`` bound to a data key (the KMS
refuses to unwrap it under another) and stored, in the clear, in the file. It is not
secret, but messages still name only its keys: a value can be a customer id or a date that
has no business in a log. The envelope, column mode (PME), Dask, the CLI and the magics
all use these functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from kmsnb._text import check_context_has_no_control_characters
from kmsnb.errors import ContextMismatchError

__all__ = [
    "check_context_matches",
    "check_encryption_context",
    "describe_context_mismatch",
    "parse_context_pairs",
    "parse_pairs",
]


def check_encryption_context(value: object) -> dict[str, str] | None:
    """``value`` as a plain ``dict`` copy, after checking it is a valid encryption context.

    Args:
        value: a mapping of ``str`` to ``str``, or ``None`` (no context given).

    Returns:
        a new ``dict``, or ``None`` when ``value`` is ``None``.

    Raises:
        TypeError: ``value`` is not a mapping, or a key or value is not a ``str``.
        ValueError: a key or value holds a control character, which kmsnb never writes
            (see :mod:`kmsnb._text`).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(
            f"encryption_context must be a mapping of str to str, not {type(value).__name__}"
        )
    context: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError("encryption_context keys and values must be str")
        context[key] = item
    check_context_has_no_control_characters(context)
    return context


def parse_context_pairs(pairs: Iterable[str] | None) -> dict[str, str] | None:
    """``["KEY=VALUE", ...]`` (the CLI's ``--context``, the magics' ``-c``) as a context.

    A value may itself hold ``=``: only the first one separates.

    Returns:
        the context, or ``None`` when no pair is given.

    Raises:
        ValueError: an item has no ``=`` or an empty key, a key is given twice, or an item
            is not UTF-8 text; the message names the item.
    """
    context = parse_pairs(pairs, what="encryption context")
    if context is not None:
        check_context_has_no_control_characters(context)
    return context


def parse_pairs(pairs: Iterable[str] | None, *, what: str) -> dict[str, str] | None:
    """The one ``KEY=VALUE`` rule of the faces' repeatable options (``--context``,
    ``--storage-option``): only the first ``=`` separates, keys are non-empty and given
    once, items are UTF-8 text. ``what`` names the option in messages.

    Returns:
        the pairs as a dict, or ``None`` when none is given.
    """
    if pairs is None:
        return None
    if isinstance(pairs, str):
        raise TypeError("pass the KEY=VALUE pairs as a list of str, not one str")
    found: dict[str, str] = {}
    for pair in pairs:
        if not isinstance(pair, str):
            raise TypeError(f"{what} pairs must be str, not {type(pair).__name__}")
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"{what} pairs are KEY=VALUE, not {pair!r}")
        try:
            pair.encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 arrive from argv as lone surrogates (PEP 383).
            raise ValueError(
                f"{what} pairs must be UTF-8 text; {os.fsencode(pair)!r} is not"
            ) from None
        if key in found:
            raise ValueError(f"{what} key {key!r} is given twice")
        found[key] = value
    return found or None


def describe_context_mismatch(expected: Mapping[str, str], found: Mapping[str, str]) -> str:
    """The message for a file whose context is not the one demanded: it names the keys
    that differ (missing, extra or with another value), never a value."""
    differing = sorted(
        key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key)
    )
    return (
        "the file's encryption context differs from the one given, at key(s) "
        f"{', '.join(repr(key) for key in differing)}; check which file this is, or pass "
        "the context it was written with (inspect shows it)"
    )


def check_context_matches(expected: Mapping[str, str] | None, found: Mapping[str, str]) -> None:
    """Refuse a file whose context is not exactly ``expected`` (``None``: accept any).

    Raises:
        ContextMismatchError: with :func:`describe_context_mismatch`'s message.
    """
    if expected is None:
        return
    if dict(expected) != dict(found):
        raise ContextMismatchError(describe_context_mismatch(expected, found))
