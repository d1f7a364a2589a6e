"""What the commands print: tables, ``name: value`` fields, sizes, errors and their hints.

The hints are :mod:`kmsnb._hints`'s table in the CLI's words; a KMS error also names the
master key and the KMS that answered. Heavier modules are imported when something prints.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from kmsnb.cli import EXIT_FAILURE, EXIT_UNSUPPORTED_STORAGE
from kmsnb.errors import KmsError, UnsupportedStorageError

__all__ = [
    "print_fields",
    "print_table",
    "report_error",
]

#: Fields of ``inspect`` and ``key describe`` that are byte counts, shown as sizes.
SIZE_FIELDS = frozenset({"plaintext_size", "ciphertext_size", "chunk_size", "file_size"})


def report_error(
    error: BaseException, *, key: str | None = None, kms_location: str | None = None
) -> int:
    """Print ``kmsnb: error: ...`` and, when one fits, ``kmsnb: hint: ...``; return the
    exit status (:data:`~kmsnb.cli.EXIT_UNSUPPORTED_STORAGE` for a store kmsnb refused,
    else :data:`~kmsnb.cli.EXIT_FAILURE`).

    Args:
        error: what failed.
        key: the master key the command used, when one is known, for KMS errors.
        kms_location: :func:`kmsnb.connection.describe_kms` of the KMS that answered.
    """
    from kmsnb._hints import hint_for, message_for

    message = message_for(error, "cli")
    # The envelope's KMS errors already name the key and the KMS; the key commands' do not.
    named = kms_location is not None and kms_location in message
    if isinstance(error, KmsError) and (key or kms_location) and not named:
        message = f"{message} [{_which(key, kms_location)}]"
    print(f"kmsnb: error: {message}", file=sys.stderr)
    hint = hint_for(error, "cli")
    if hint is not None:
        print(f"kmsnb: hint: {hint}", file=sys.stderr)
    if isinstance(error, UnsupportedStorageError):
        return EXIT_UNSUPPORTED_STORAGE
    return EXIT_FAILURE


def _which(key: str | None, kms_location: str | None) -> str:
    parts = []
    if key:
        parts.append(f"master key {key}")
    if kms_location:
        parts.append(kms_location)
    return ", ".join(parts)


def print_fields(fields: Mapping[str, object]) -> None:
    """``name: value`` lines; what a file says is shown with control characters escaped.

    Byte counts (:data:`SIZE_FIELDS`) read ``1.5 MiB (1572864 bytes)``; ``--json`` keeps
    the plain number.
    """
    from kmsnb._sizes import format_size
    from kmsnb._text import escape_control_characters, json_for_display

    width = max(len(name) for name in fields) + 1
    for name, value in fields.items():
        shown: object = json_for_display(value) if isinstance(value, dict) else value
        if name in SIZE_FIELDS and isinstance(value, int) and value >= 1024:
            shown = format_size(value)  # "1.5 MiB (1572864 bytes)", as a notebook shows it
        text = "-" if value is None else escape_control_characters(str(shown))
        print(f"{name + ':':<{width}} {text}")


def print_table(titles: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(titles, *rows, strict=False)]
    for row in (titles, *rows):
        print(
            "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        )
