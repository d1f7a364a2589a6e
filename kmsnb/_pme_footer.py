"""The end of an encrypted Parquet file: its crypto metadata, footer key and footer.

What Parquet modular encryption shows without any key, and what the footer key opens
(``docs/column-keys.md``, "Where the key material is"):

- **encrypted footer** (``PARE`` at both ends, kmsnb's default)::

      ... ‖ FileCryptoMetaData ‖ len ‖ nonce ‖ AES-GCM(footer DEK, FileMetaData) ‖ tag ‖ n ‖ "PARE"

  ``FileCryptoMetaData`` (clear) holds the algorithm, the file's AAD and the footer key's
  key material; the schema, the row groups and every column's key material are inside
  the encrypted ``FileMetaData``.
- **plaintext footer** (``PAR1``): ``FileMetaData ‖ nonce ‖ tag ‖ n ‖ "PAR1"``: the schema
  and each column's key material are in clear; the tag signs the footer under the footer
  key, so the footer is authentic only once the footer key has checked it.

pyarrow reads these files but shows none of the crypto metadata, so this module reads the
Thrift structures itself (:mod:`kmsnb._thrift`) and opens the footer with ``cryptography``'s
AES-GCM; it needs no pyarrow. Everything read without the footer key is unverified.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from struct import unpack_from
from typing import Any, BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb._context import check_context_matches
from kmsnb._pme_wrap import KeyMaterial, parse_key_material
from kmsnb._thrift import MAX_DEPTH, read_struct
from kmsnb.errors import FormatError, IntegrityError
from kmsnb.kms._base import canonical_context

__all__ = [
    "CONTEXT_METADATA_KEY",
    "ColumnInfo",
    "FooterInfo",
    "ParquetTail",
    "check_file_context",
    "context_from_metadata",
    "open_footer",
    "read_tail",
]

#: The key of the file's key-value metadata holding kmsnb's encryption context (JSON).
CONTEXT_METADATA_KEY: Final = "kmsnb.encryption_context"
MAX_FOOTER_SIZE: Final = 64 * 1024 * 1024
MAX_CONTEXT_METADATA_SIZE: Final = 65536
_MAGIC_PLAIN: Final = b"PAR1"
_MAGIC_ENCRYPTED: Final = b"PARE"
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_FOOTER_MODULE: Final = b"\x00"  # Parquet's module type of the footer, ending its AAD
_ALGORITHMS: Final = {1: "AES_GCM_V1", 2: "AES_GCM_CTR_V1"}
_PHYSICAL: Final = (
    "BOOLEAN",
    "INT32",
    "INT64",
    "INT96",
    "FLOAT",
    "DOUBLE",
    "BYTE_ARRAY",
    "FIXED_LEN_BYTE_ARRAY",
)
_LOGICAL: Final = {
    1: "STRING",
    2: "MAP",
    3: "LIST",
    4: "ENUM",
    5: "DECIMAL",
    6: "DATE",
    7: "TIME",
    8: "TIMESTAMP",
    10: "INTEGER",
    11: "NULL",
    12: "JSON",
    13: "BSON",
    14: "UUID",
    15: "FLOAT16",
    16: "VARIANT",
    17: "GEOMETRY",
    18: "GEOGRAPHY",
}


def _malformed(what: str) -> FormatError:
    return FormatError(f"malformed Parquet footer ({what}); the file was damaged")


@dataclass(frozen=True)
class ParquetTail:
    """What an encrypted Parquet file shows without a key (unverified).

    Attributes:
        footer_encrypted: ``PARE`` (else a plaintext, signed footer).
        algorithm: ``AES_GCM_V1`` or ``AES_GCM_CTR_V1``.
        file_aad: the AAD prefix and the file's unique AAD (``None``: the writer kept the
            prefix out of the file, and readers must supply it).
        footer_key: the footer key's key material.
        footer: the encrypted footer module, or the plaintext ``FileMetaData`` bytes.
        signature: a plaintext footer's nonce and tag.
        file_size: the file's size.
    """

    footer_encrypted: bool
    algorithm: str
    file_aad: bytes | None
    footer_key: KeyMaterial
    footer: bytes
    signature: bytes | None
    file_size: int
    plaintext_metadata: dict[int, Any] | None = None


@dataclass(frozen=True)
class ColumnInfo:
    """One leaf column: its path, Parquet type and key (``key``: ``None`` for the footer
    key; ``encrypted`` false for a column in clear)."""

    path: str
    type: str
    encrypted: bool
    key: KeyMaterial | None


@dataclass(frozen=True)
class FooterInfo:
    """What the footer says: the columns and their keys, rows, writer, metadata.

    ``columns`` have ``encrypted`` and ``key`` from the first row group; a file with no
    row group says nothing of its columns' keys (then ``keys_known`` is false).
    """

    columns: tuple[ColumnInfo, ...]
    keys_known: bool
    num_rows: int
    num_row_groups: int
    created_by: str | None
    metadata: Mapping[str, str]


def _algorithm(union: object) -> tuple[str, bytes | None]:
    if not isinstance(union, dict) or len(union) != 1:
        raise _malformed("no encryption algorithm")
    ((field_id, fields),) = union.items()
    if field_id not in _ALGORITHMS or not isinstance(fields, dict):
        raise FormatError(f"unknown Parquet encryption algorithm (field {field_id}); upgrade kmsnb")
    prefix, unique = fields.get(1, b""), fields.get(2, b"")
    if not isinstance(prefix, bytes) or not isinstance(unique, bytes):
        raise _malformed("a file AAD that is not bytes")
    supplied = fields.get(3) is True and 1 not in fields
    return _ALGORITHMS[field_id], None if supplied else prefix + unique


def _footer_key(raw: object) -> KeyMaterial:
    if not isinstance(raw, bytes):
        raise FormatError(
            "this encrypted Parquet file has no key material for its footer key (its keys "
            "were given to the reader directly, not through a KMS); kmsnb cannot read it"
        )
    return parse_key_material(raw)


def read_tail(source: str | os.PathLike[str] | BinaryIO) -> ParquetTail | None:
    """Read an encrypted Parquet file's crypto metadata; ``None`` for plain Parquet.

    A file object is read from its end and left where it was.

    Raises:
        FormatError: not Parquet, or a malformed footer.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fileobj:
            return _read_tail(fileobj)
    start = source.tell()
    try:
        return _read_tail(source)
    finally:
        source.seek(start)


def _read_tail(source: BinaryIO) -> ParquetTail | None:
    start = source.tell()
    file_size = source.seek(0, os.SEEK_END) - start
    if file_size < 12:
        raise FormatError("not a Parquet file (too short)")
    source.seek(start)
    head = source.read(4)
    source.seek(start + file_size - 8)
    trailer = source.read(8)
    magic = trailer[4:]
    if magic not in (_MAGIC_PLAIN, _MAGIC_ENCRYPTED) or head != magic:
        raise FormatError("not a Parquet file (no PAR1 or PARE magic at both ends)")
    (footer_size,) = unpack_from("<I", trailer)
    if footer_size > min(MAX_FOOTER_SIZE, file_size - 12):
        raise _malformed(f"a footer of {footer_size} bytes in a file of {file_size}")
    source.seek(start + file_size - 8 - footer_size)
    footer = source.read(footer_size)
    if len(footer) != footer_size:
        raise FormatError("the Parquet file ended early")
    if magic == _MAGIC_ENCRYPTED:
        crypto, end = read_struct(footer)
        algorithm, file_aad = _algorithm(crypto.get(1))
        module = footer[end:]
        if (
            len(module) < 4 + _NONCE_SIZE + _TAG_SIZE
            or unpack_from("<I", module)[0] != len(module) - 4
        ):
            raise _malformed("an encrypted footer of the wrong length")
        return ParquetTail(
            True, algorithm, file_aad, _footer_key(crypto.get(2)), module, None, file_size
        )
    metadata, end = read_struct(footer)
    if 8 not in metadata:
        return None  # plain Parquet
    algorithm, file_aad = _algorithm(metadata[8])
    if len(footer) - end != _NONCE_SIZE + _TAG_SIZE:
        raise _malformed("a plaintext footer without its 28-byte signature")
    return ParquetTail(
        False,
        algorithm,
        file_aad,
        _footer_key(metadata.get(9)),
        footer[:end],
        footer[end:],
        file_size,
        metadata,
    )


def _need_aad(tail: ParquetTail) -> bytes:
    if tail.file_aad is None:
        raise FormatError(
            "this Parquet file was written with an AAD prefix its readers must supply, "
            "which kmsnb does not take"
        )
    return tail.file_aad + _FOOTER_MODULE


def open_footer(tail: ParquetTail, footer_dek: bytes | bytearray | None) -> FooterInfo:
    """The footer: decrypted (encrypted footer) or checked against its signature
    (plaintext footer) with the footer's DEK; a plaintext footer is read unverified
    when ``footer_dek`` is ``None``.

    Raises:
        IntegrityError: the footer fails authentication under ``footer_dek``.
        FormatError: a malformed footer.
    """
    if tail.footer_encrypted:
        if footer_dek is None:
            raise AssertionError("kmsnb: internal error: an encrypted footer needs its key")
        module = tail.footer
        try:
            plaintext = AESGCM(bytes(footer_dek)).decrypt(
                module[4 : 4 + _NONCE_SIZE], module[4 + _NONCE_SIZE :], _need_aad(tail)
            )
        except InvalidTag:
            raise IntegrityError(
                "the Parquet footer failed authentication; the file was damaged or altered"
            ) from None
        metadata, _ = read_struct(plaintext)
    else:
        metadata = tail.plaintext_metadata or {}
        if footer_dek is not None:
            _check_signature(tail, footer_dek)
    return _footer_info(metadata)


def _check_signature(tail: ParquetTail, footer_dek: bytes | bytearray) -> None:
    signature = tail.signature or b""
    nonce, tag = signature[:_NONCE_SIZE], signature[_NONCE_SIZE:]
    # The signature is the GCM tag of encrypting the footer under the footer key.
    sealed = AESGCM(bytes(footer_dek)).encrypt(nonce, tail.footer, _need_aad(tail))
    if not hmac.compare_digest(sealed[-_TAG_SIZE:], tag):
        raise IntegrityError("the Parquet footer's signature does not verify; the file was altered")


def _string(value: object) -> str:
    if not isinstance(value, bytes):
        raise _malformed("a name that is not text")
    return value.decode("utf-8", errors="replace")


def _type_text(element: Mapping[int, Any]) -> str:
    physical = element.get(1)
    if not isinstance(physical, int) or not 0 <= physical < len(_PHYSICAL):
        raise _malformed("a column of unknown physical type")
    logical = element.get(10)
    if isinstance(logical, dict) and len(logical) == 1:
        name = _LOGICAL.get(next(iter(logical)))
        if name is not None:
            return f"{_PHYSICAL[physical]} ({name})"
    return _PHYSICAL[physical]


def _leaves(schema: object) -> list[tuple[str, str]]:
    """The leaf columns' dotted paths and types, depth first as Parquet lists them."""
    if not isinstance(schema, list) or not schema or not isinstance(schema[0], dict):
        raise _malformed("no schema")
    leaves: list[tuple[str, str]] = []
    stack: list[tuple[tuple[str, ...], int]] = [((), _children(schema[0], len(schema)))]
    position = 1
    while stack:
        prefix, remaining = stack.pop()
        if not remaining:
            continue
        stack.append((prefix, remaining - 1))
        if position >= len(schema) or not isinstance(schema[position], dict):
            raise _malformed("a schema shorter than its groups say")
        element = schema[position]
        position += 1
        path = (*prefix, _string(element.get(4)))
        children = _children(element, len(schema))
        if children:
            if len(stack) > MAX_DEPTH:
                raise _malformed("a schema nested too deep")
            stack.append((path, children))
        else:
            leaves.append((".".join(path), _type_text(element)))
    if position != len(schema):
        raise _malformed("a schema longer than its groups say")
    return leaves


def _children(element: Mapping[int, Any], bound: int) -> int:
    count = element.get(5, 0)
    if not isinstance(count, int) or not 0 <= count <= bound:
        raise _malformed("a bad number of children")
    return count


def _column_key(chunk: object) -> tuple[bool, KeyMaterial | None]:
    if not isinstance(chunk, dict):
        raise _malformed("a column chunk that is not a structure")
    crypto = chunk.get(8)
    if crypto is None:
        return False, None
    if isinstance(crypto, dict) and 1 in crypto:
        return True, None  # ENCRYPTION_WITH_FOOTER_KEY
    column = crypto.get(2) if isinstance(crypto, dict) else None
    if not isinstance(column, dict) or not isinstance(column.get(2), bytes):
        raise FormatError(
            "a column of this Parquet file has no key material (its keys were given to the "
            "reader directly, not through a KMS); kmsnb cannot read it"
        )
    return True, parse_key_material(column[2])


def _footer_info(metadata: Mapping[int, Any]) -> FooterInfo:
    leaves = _leaves(metadata.get(2))
    row_groups = metadata.get(4) or []
    if not isinstance(row_groups, list):
        raise _malformed("row groups that are not a list")
    keys: list[tuple[bool, KeyMaterial | None]] = [(True, None)] * len(leaves)
    if row_groups:
        first = row_groups[0]
        chunks = first.get(1) if isinstance(first, dict) else None
        if not isinstance(chunks, list) or len(chunks) != len(leaves):
            raise _malformed("a row group whose columns do not match the schema")
        keys = [_column_key(chunk) for chunk in chunks]
    pairs: dict[str, str] = {}
    for item in metadata.get(5) or []:
        if isinstance(item, dict) and isinstance(item.get(1), bytes):
            value = item.get(2, b"")
            pairs[_string(item[1])] = _string(value) if isinstance(value, bytes) else ""
    created_by = metadata.get(6)
    num_rows = metadata.get(3, 0)
    return FooterInfo(
        columns=tuple(
            ColumnInfo(path, text, encrypted, key)
            for (path, text), (encrypted, key) in zip(leaves, keys, strict=True)
        ),
        keys_known=bool(row_groups),
        num_rows=num_rows if isinstance(num_rows, int) else 0,
        num_row_groups=len(row_groups),
        created_by=_string(created_by) if isinstance(created_by, bytes) else None,
        metadata=pairs,
    )


def context_from_metadata(metadata: Mapping[str, str]) -> dict[str, str] | None:
    """The encryption context kmsnb stored in the footer's metadata (``None``: none).

    Raises:
        FormatError: the value is not a JSON object of strings.
    """
    raw = metadata.get(CONTEXT_METADATA_KEY)
    if raw is None:
        return None
    malformed = FormatError(
        f"this file's {CONTEXT_METADATA_KEY} metadata is not a JSON object of strings; "
        "the file was not written by kmsnb"
    )
    if len(raw) > MAX_CONTEXT_METADATA_SIZE:
        raise malformed
    try:
        return canonical_context(json.loads(raw))
    except (ValueError, TypeError, RecursionError):
        raise malformed from None


def check_file_context(
    expected: Mapping[str, str] | None, tail: ParquetTail, metadata: Mapping[str, str]
) -> None:
    """Compare the context a reader demands with the one the (authenticated) footer names.

    A footer without kmsnb's metadata says ``{}``, unless its keys are kmsnb 0.1's
    envelopes, whose context the KMS checked when they were unwrapped.
    """
    if expected is None:
        return
    found = context_from_metadata(metadata)
    if found is None:
        if tail.footer_key.key_wrap != "kms-encrypt":
            return
        found = {}
    check_context_matches(expected, found)
