"""``kmsnb.inspect`` for column-encrypted Parquet: what the file shows, with and without
the KMS.

Without the KMS only what Parquet leaves in clear is shown: with the default encrypted
footer, the algorithm and the footer key's key material (its master key, the KMS it names,
how the KMS wrapped it); with a plaintext footer, also the schema and each column's master
key, unverified. With the KMS (``kms=``), the footer key is unwrapped (one Decrypt,
checked like every read: the master key the answer names, ``allowed_keys``), the footer is
decrypted or its signature checked, and the schema, the row count, the encryption context
and which columns need which key are shown, verified. No column key is unwrapped, so a
colleague who may use only the footer's key sees which key each column needs.

The display rules (field names and order) live here, for every face.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from kmsnb._format.header import MAGIC
from kmsnb._key_check import resolve_allowed_keys
from kmsnb._pme_footer import FooterInfo, context_from_metadata, open_footer, read_tail
from kmsnb._pme_wrap import legacy_context, unwrap_dek
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms, wipe

__all__ = ["EncryptionMode", "ParquetColumn", "ParquetInfo", "encryption_mode", "inspect_parquet"]

FORMAT_NAME = "Parquet modular encryption"

#: How a table file is encrypted: a whole kmsnb file, column level (Parquet modular
#: encryption), or not at all (plain Parquet).
EncryptionMode = Literal["file", "columns", "plain"]

_PARQUET_MAGIC = b"PAR1"
_PME_MAGIC = b"PARE"  # Parquet with an encrypted footer


def encryption_mode(source: BinaryIO) -> EncryptionMode:
    """How the table in a seekable ``source`` is encrypted, told by its first bytes: ``KMSN``
    (a kmsnb file), ``PARE`` (an encrypted footer), ``PAR1`` with a signed footer (column
    level, plaintext footer) or without one (plain). ``source`` is left where it was.

    Raises:
        FormatError: neither a kmsnb file nor Parquet.
    """
    start = source.tell()
    magic = source.read(len(MAGIC))
    source.seek(start)
    if magic == MAGIC:
        return "file"
    if magic.startswith(_PME_MAGIC) or (
        magic.startswith(_PARQUET_MAGIC) and read_tail(source) is not None
    ):
        return "columns"
    if magic.startswith(_PARQUET_MAGIC):
        return "plain"
    raise FormatError("not an encrypted table (neither a kmsnb file nor Parquet)")


@dataclass(frozen=True)
class ParquetColumn:
    """A leaf column: its dotted path, Parquet type, and the master key it needs
    (``None``: stored in clear)."""

    path: str
    type: str
    master_key_id: str | None


@dataclass(frozen=True)
class ParquetInfo:
    """What a column-encrypted Parquet file says (see :func:`kmsnb.inspect`).

    Attributes:
        algorithm: ``AES_GCM_V1`` or ``AES_GCM_CTR_V1``.
        footer_encrypted: the footer (schema, row groups, column keys) is encrypted.
        footer_key_id: the footer's master key, as the writer named it (a claim until a
            read or ``kms=`` checks it with the KMS).
        kms_instance_id, kms_instance_url: the KMS the writer used, as recorded.
        key_wrap: how the footer's key-encryption key is wrapped: ``kms-encrypt`` (the
            KMS's Encrypt, what other engines read), or kmsnb 0.1's ``kmsnb-wrap-v1``.
        verified: the footer was authenticated with its key (``kms=`` was given).
        encryption_context: the context the file names; ``None`` when only the KMS can
            tell (it is inside the encrypted footer).
        columns: the leaf columns and their keys; ``None`` when the footer is encrypted
            and no KMS was given.
        keys_known: the columns' keys are known (a file with no row group has none).
        num_rows: the row count, when the footer was read.
        created_by: the writing library, when the footer was read.
        file_size: the file's size in bytes.
    """

    algorithm: str
    footer_encrypted: bool
    footer_key_id: str
    kms_instance_id: str | None
    kms_instance_url: str | None
    key_wrap: str
    verified: bool
    encryption_context: Mapping[str, str] | None
    columns: tuple[ParquetColumn, ...] | None
    keys_known: bool
    num_rows: int | None
    created_by: str | None
    file_size: int

    @property
    def uniform(self) -> bool | None:
        """Every column is under the footer's key (``None``: not known without the KMS)."""
        if self.columns is None or not self.keys_known:
            return None
        return all(column.master_key_id == self.footer_key_id for column in self.columns)

    @property
    def keys(self) -> dict[str, list[str]] | None:
        """Master key → the columns it protects (``None``: not known without the KMS)."""
        if self.columns is None or not self.keys_known:
            return None
        keys: dict[str, list[str]] = {}
        for column in self.columns:
            if column.master_key_id is not None:
                keys.setdefault(column.master_key_id, []).append(column.path)
        return keys

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, for ``kmsnb inspect --json``."""
        return {
            "format": FORMAT_NAME,
            "algorithm": self.algorithm,
            "footer": self._footer_text(),
            "footer_key_id": self.footer_key_id,
            "kms_instance_id": self.kms_instance_id,
            "kms_instance_url": self.kms_instance_url,
            "key_wrap": self.key_wrap,
            "verified": self.verified,
            "encryption_context": (
                None if self.encryption_context is None else dict(self.encryption_context)
            ),
            "uniform": self.uniform,
            "keys": self.keys,
            "columns": None
            if self.columns is None
            else [
                {"path": c.path, "type": c.type, "master_key_id": c.master_key_id}
                for c in self.columns
            ],
            "num_rows": self.num_rows,
            "created_by": self.created_by,
            "file_size": self.file_size,
        }

    def fields(self) -> list[tuple[str, object]]:
        """``(name, value)`` rows for the text and HTML displays, one per column too."""
        hidden = "in the encrypted footer (inspect with the KMS to see it)"
        rows: list[tuple[str, object]] = [
            ("format", f"{FORMAT_NAME}, {self.algorithm}"),
            ("footer", self._footer_text()),
            ("footer key", self.footer_key_id),
            ("kms", f"{self.kms_instance_id} ({self.kms_instance_url})"),
            ("key wrap", self.key_wrap),
            (
                "encryption context",
                hidden
                if self.encryption_context is None
                else dict(self.encryption_context) or "none",
            ),
            ("rows", hidden if self.num_rows is None else self.num_rows),
            ("created by", hidden if self.columns is None else self.created_by),
            ("file size", self.file_size),
        ]
        if self.columns is None:
            return [*rows, ("columns", hidden)]
        if self.uniform is not None:
            rows.append(("uniform", "yes: one key for everything" if self.uniform else "no"))
        for column in self.columns:
            key = column.master_key_id if self.keys_known else "unknown (no row groups)"
            rows.append((f"column {column.path}", f"{column.type}; key {key or 'none (clear)'}"))
        return rows

    def _footer_text(self) -> str:
        if self.footer_encrypted:
            return "encrypted" + (", verified" if self.verified else "")
        return "plaintext, signed" + (", verified" if self.verified else " (not verified)")


def inspect_parquet(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    kms: Kms | None = None,
    allowed_keys: Iterable[str] | None = None,
) -> ParquetInfo:
    """Describe a column-encrypted Parquet file; see :func:`kmsnb.inspect`.

    Raises:
        FormatError: not an encrypted Parquet file, or malformed crypto metadata.
        IntegrityError: ``kms`` given and the footer fails authentication.
        WrongKeyError, KmsError: ``kms`` given and the footer key was refused.
    """
    tail = read_tail(source)
    if tail is None:
        raise FormatError("this is a plain, unencrypted Parquet file: it needs no key")
    footer_key = tail.footer_key
    context = legacy_context(footer_key.kms_wrapped)  # kmsnb 0.1 shows it in clear
    footer: FooterInfo | None = None
    if kms is not None:
        allowed = resolve_allowed_keys(kms, allowed_keys)
        footer_dek = unwrap_dek(kms, footer_key, allowed=allowed)
        try:
            footer = open_footer(tail, footer_dek)
        finally:
            wipe(footer_dek)
    elif not tail.footer_encrypted:
        footer = open_footer(tail, None)
    if footer is not None:
        stored = context_from_metadata(footer.metadata)
        if stored is not None:
            context = stored
        elif context is None and (kms is not None or not tail.footer_encrypted):
            context = {}
    columns = None
    if footer is not None:
        columns = tuple(
            ParquetColumn(
                column.path,
                column.type,
                None
                if not column.encrypted
                else footer_key.master_key_id
                if column.key is None
                else column.key.master_key_id,
            )
            for column in footer.columns
        )
    return ParquetInfo(
        algorithm=tail.algorithm,
        footer_encrypted=tail.footer_encrypted,
        footer_key_id=footer_key.master_key_id,
        kms_instance_id=footer_key.kms_instance_id,
        kms_instance_url=footer_key.kms_instance_url,
        key_wrap=footer_key.key_wrap,
        verified=kms is not None,
        encryption_context=context,
        columns=columns,
        keys_known=footer is not None and footer.keys_known,
        num_rows=None if footer is None else footer.num_rows,
        created_by=None if footer is None else footer.created_by,
        file_size=tail.file_size,
    )
