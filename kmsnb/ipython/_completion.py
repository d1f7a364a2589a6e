"""Tab completion for the magics: ``%kms`` subcommands and options, key names, paths.

A matcher of IPython's completer API (v2, ``IPCompleter.custom_matchers``). On a kmsnb
magic's line it answers alone, so ``%kms use al<Tab>`` offers ``alias/...`` and not
``%alias``, and ``%kms use zz<Tab>`` offers nothing rather than IPython's guesses; only
where kmsnb completes a path and finds none does IPython's file completion still answer
(it reads quoted paths). Key names come from the session's KMS (one ``ListAliases`` and one
``ListKeys``), kept for a few seconds so that pressing Tab again costs nothing; a KMS that
fails to answer gives no key names, never an error.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)

from kmsnb import session
from kmsnb.ipython._error_lines import USER_ERRORS

__all__ = ["complete_magic_line", "install_completer", "key_names", "uninstall_completer"]

#: Seconds a list of key names is reused for.
KEY_NAMES_MAX_AGE = 10.0

_KEY_ARGUMENT = {"use", "describe", "enable", "disable", "rotate", "cancel-deletion"}
_KEY_OPTIONS = {"-k", "--key", "--allowed-key", "--columns"}
_PATH_ARGUMENT = {"inspect", "rewrap"}
_FORMATS = ("parquet", "csv", "bytes")

# IPython's decorator has no type hints; through Any, --strict still checks the matcher.
_MATCHER: Any = context_matcher

_cache: dict[str, Any] = {"at": -KEY_NAMES_MAX_AGE, "kms": None, "names": []}


def key_names() -> list[str]:
    """The session's keys as a user may name them: ``alias/NAME``, ``NAME``, key ids."""
    kms = session.get_kms()
    now = time.monotonic()
    if _cache["kms"] is kms and now - _cache["at"] < KEY_NAMES_MAX_AGE:
        names: list[str] = _cache["names"]
        return names
    from kmsnb.ipython._actions import management_client

    names = []
    with contextlib.suppress(*USER_ERRORS):
        client = management_client(kms)
        aliases = sorted(alias.alias_name for alias in client.list_aliases())
        names = [*aliases, *(name.removeprefix("alias/") for name in aliases)]
        names += sorted(info.key_id for info in client.list_keys())
    _cache.update(at=now, kms=kms, names=names)
    return names


def _paths(word: str) -> list[str]:
    """Files and folders whose path starts with ``word`` (folders end with ``/``)."""
    folder, _, start = word.rpartition("/")
    directory = os.path.expanduser(folder + "/" if folder or word.startswith("/") else ".")
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return []
    prefix = word[: len(word) - len(start)]
    return [
        prefix + entry.name + ("/" if entry.is_dir() else "")
        for entry in entries
        if entry.name.startswith(start) and (start.startswith(".") or entry.name[0] != ".")
    ]


def _kms_candidates(words: list[str], previous: str) -> list[str] | Callable[[str], list[str]]:
    from kmsnb.ipython.kms_magic import SUBCOMMANDS, options_of

    if not words:
        return list(SUBCOMMANDS)
    command = words[0]
    if previous in _KEY_OPTIONS or previous == "--key":
        return key_names()
    if command == "help":
        return list(SUBCOMMANDS) if len(words) == 1 else []
    positional = [word for word in words[1:] if not word.startswith("-")]
    if command in _KEY_ARGUMENT | {"schedule-deletion"} and not positional:
        return key_names()
    if command == "alias" and len(positional) == 1:
        return key_names()
    if command in _PATH_ARGUMENT and not positional:
        return _paths
    return options_of(command)


def _file_magic_candidates(
    magic: str, words: list[str], previous: str, namespace: dict[str, Any]
) -> list[str] | Callable[[str], list[str]]:
    if previous in _KEY_OPTIONS:
        return key_names()
    if previous == "--format":
        return list(_FORMATS)
    if magic == "%encrypt" and not [word for word in words if not word.startswith("-")]:
        return [name for name in namespace if not name.startswith("_")]
    return _paths


def complete_magic_line(
    line: str, namespace: dict[str, Any] | None = None
) -> tuple[str, list[str]] | None:
    """(the word being completed, its completions) for a kmsnb magic's line; else None."""
    found = _complete_line(line, namespace)
    return None if found is None else found[:2]


def _complete_line(
    line: str, namespace: dict[str, Any] | None
) -> tuple[str, list[str], bool] | None:
    """:func:`complete_magic_line`, and whether the word is a path."""
    parts = line.split()
    if not parts:
        return None
    magic = "%" + parts[0].lstrip("%")
    if magic not in ("%kms", "%encrypt", "%decrypt") or (len(parts) == 1 and line[-1:] != " "):
        return None
    word = "" if line[-1:].isspace() else parts[-1]
    words = parts[1:] if not word else parts[1:-1]
    previous = words[-1] if words else ""
    if magic == "%kms":
        candidates = _kms_candidates(words, previous)
    else:
        cell = parts[0].startswith("%%")
        candidates = _file_magic_candidates(
            "%%encrypt" if cell else magic, words, previous, namespace or {}
        )
    found = candidates(word) if callable(candidates) else candidates
    return word, [item for item in found if item.startswith(word)], candidates is _paths


class _NothingToOffer:
    """No completions, given as an answer that still silences IPython's other matchers.

    IPython (9.18) honours a matcher's ``suppress`` only when ``has_any_completions`` finds
    its result non-empty, and that asks ``len()``; an empty list would let ``%alias``, file
    and Python names in on a kmsnb line. This has a length for that question, and is
    otherwise empty: false to ``_arrange_and_extract``'s test, nothing to iterate for
    ``completions()``. tests/ipython/test_help_and_completion.py checks it on a real shell.
    """

    def __len__(self) -> int:
        return 1

    def __bool__(self) -> bool:
        return False

    def __iter__(self) -> Iterator[SimpleCompletion]:
        return iter(())


# Through Any: the completions of a SimpleMatcherResult are typed as a list or iterator.
_NOTHING: Any = _NothingToOffer()


def install_completer(shell: Any) -> None:
    """Add the kmsnb matcher to ``shell``'s completer (once)."""
    completer = getattr(shell, "Completer", None)
    if completer is None:
        return
    uninstall_completer(shell)

    # Where kmsnb completes a path and finds none, IPython's file matcher may still (a
    # quoted path, which kmsnb's does not read); its id as IPython's decorator sets it.
    file_matcher = getattr(completer.file_matcher, "matcher_identifier", "")

    def kmsnb_matcher(context: CompletionContext) -> SimpleMatcherResult:
        found = _complete_line(context.text_until_cursor, shell.user_ns)
        if found is None:
            return {"completions": []}
        word, matches, is_path = found
        completions = [SimpleCompletion(text=match, type="kmsnb") for match in matches]
        # The fragment replaced is the whole word (IPython's token stops at "/"). The line
        # is kmsnb's: no other matcher's guess ("%alias" for "al") is offered, even when
        # kmsnb has nothing to offer.
        result: SimpleMatcherResult = {
            "completions": completions or _NOTHING,
            "suppress": True,
            "matched_fragment": word,
        }
        if is_path and not completions:
            result["do_not_suppress"] = {file_matcher}
        return result

    completer.custom_matchers.append(_MATCHER()(kmsnb_matcher))


def uninstall_completer(shell: Any) -> None:
    """Remove the kmsnb matcher from ``shell``'s completer."""
    completer = getattr(shell, "Completer", None)
    if completer is not None:
        completer.custom_matchers[:] = [
            matcher
            for matcher in completer.custom_matchers
            if getattr(matcher, "__name__", "") != "kmsnb_matcher"
        ]
    _cache.update(at=-KEY_NAMES_MAX_AGE, kms=None, names=[])
