"""What the commands print: tables, ``name: value`` fields, sizes, errors and their hints.

Imported when a command prints, never at start-up; it needs only :mod:`kmsnb.errors` and
:mod:`kmsnb._text`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from kmsnb.cli import EXIT_FAILURE
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

__all__ = [
    "format_size",
    "kms_error_hint",
    "print_fields",
    "print_table",
    "report_error",
]

#: Fields of ``inspect`` and ``key describe`` that are byte counts, shown as sizes.
SIZE_FIELDS = frozenset({"plaintext_size", "ciphertext_size", "chunk_size", "file_size"})

# Most specific first: the first match gives the hint. KmsError's subclasses are worded
# by kms_error_hint, which also names the key and the KMS.
_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (FileExistsError, "pass --overwrite to replace it"),
    (TruncatedError, "the file was cut short; copy or download it again"),
    (IntegrityError, "restore the file from a good copy; kmsnb released no unverified data"),
    (ContextMismatchError, "pass the --context the file was made with (kmsnb inspect shows it)"),
    (WrongKeyError, "use the --context and the KMS (--kms, $KMSNB_KMS) the file was made with"),
    (FormatError, "kmsnb reads kmsnb files and the tutorial's .cipher files; check the path"),
    (FileNotFoundError, "check the path"),
    (IsADirectoryError, "name a file, e.g. -o DIR/NAME"),
    (PermissionError, "check the permissions of the file and of its folder"),
    (ImportError, "install the extra it names, e.g. pip install 'kmsnb[aliyun]'"),
)

_NOT_FOUND_CODES = ("Forbidden.KeyNotFound", "Forbidden.AliasNotFound", "EntityNotExist.Key")


def report_error(
    error: BaseException, *, key: str | None = None, kms_location: str | None = None
) -> int:
    """Print ``kmsnb: error: ...`` and, when one fits, ``kmsnb: hint: ...``; return 1.

    Args:
        error: what failed.
        key: the master key the command used, when one is known, for KMS errors.
        kms_location: :attr:`KmsClient.location` of the KMS that answered, when known.
    """
    message = str(error)
    if isinstance(error, KmsError) and (key or kms_location):
        message = f"{message} [{_which(key, kms_location)}]"
    print(f"kmsnb: error: {message}", file=sys.stderr)
    hint = hint_for(error, key=key)
    if hint is not None:
        print(f"kmsnb: hint: {hint}", file=sys.stderr)
    return EXIT_FAILURE


def hint_for(error: BaseException, *, key: str | None = None) -> str | None:
    """The one clause of advice for ``error`` on the command line, or ``None``."""
    if isinstance(error, KmsError):
        return kms_error_hint(error, key=key)
    for error_class, hint in _HINTS:
        if isinstance(error, error_class):
            return hint
    return None


def kms_error_hint(error: KmsError, *, key: str | None = None) -> str:
    """What to try after the KMS refused or failed: the right KMS first, then the key."""
    shown = key or "KEY"
    other_kms = "if the key lives in another KMS, pass --kms URI or set KMSNB_KMS"
    if isinstance(error, KmsUnavailableError):
        return "check --kms or $KMSNB_KMS and your network, then retry"
    if error.code in _NOT_FOUND_CODES:
        return f"{other_kms}; kmsnb key list shows the keys of this one"
    if isinstance(error, KmsAccessDeniedError):
        return (
            f"check the key's state (kmsnb key describe {shown}) and your permissions; {other_kms}"
        )
    return f"the code is the KMS's own; its API documentation explains it; {other_kms}"


def _which(key: str | None, kms_location: str | None) -> str:
    parts = []
    if key:
        parts.append(f"master key {key}")
    if kms_location:
        parts.append(kms_location)
    return ", ".join(parts)


def format_size(byte_count: int) -> str:
    """``1536`` -> ``1.5 KiB``; below 1 KiB, ``512 bytes`` (powers of 1024, like ``ls -h``)."""
    if byte_count < 1024:
        return f"{byte_count} byte" + ("" if byte_count == 1 else "s")
    value = float(byte_count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def print_fields(fields: Mapping[str, object]) -> None:
    """``name: value`` lines; what a file says is shown with control characters escaped.

    Byte counts (:data:`SIZE_FIELDS`) read ``1.5 MiB (1572864 bytes)``; ``--json`` keeps
    the plain number.
    """
    from kmsnb._text import escape_control_characters, json_for_display

    width = max(len(name) for name in fields) + 1
    for name, value in fields.items():
        shown: object = json_for_display(value) if isinstance(value, dict) else value
        if name in SIZE_FIELDS and isinstance(value, int) and value >= 1024:
            shown = f"{format_size(value)} ({value} bytes)"
        text = "-" if value is None else escape_control_characters(str(shown))
        print(f"{name + ':':<{width}} {text}")


def print_table(titles: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(titles, *rows, strict=False)]
    for row in (titles, *rows):
        print(
            "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        )
