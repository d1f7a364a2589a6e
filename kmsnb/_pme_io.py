"""Column-level encryption as kmsnb's DataFrame helpers use it: where the encryption
context goes, and errors that say which columns a refused key protects.

**The encryption context.** The KEK wrap takes no encryption context (Spark's and
parquet-java's ``KmsClient.wrapKey(key, masterKeyIdentifier)`` has none, so neither can
kmsnb's, or they could not read its files). The writer's context goes into the file's
key-value metadata instead, as JSON under ``kmsnb.encryption_context``. With the default
encrypted footer that metadata is encrypted and authenticated under the footer's data key
(with a plaintext footer, signed by it), so it cannot be changed without that key, and
kmsnb's readers compare it with the context they demand (``ContextMismatchError``). What
it is not, unlike in a whole-file kmsnb file and in kmsnb 0.1's column keys, is bound by
the KMS: the KMS never sees it, so its audit log does not record it, no policy can make
Decrypt depend on it, and anyone allowed to call Encrypt with the master key can write a
file that claims any context. Other engines ignore it. ``docs/column-keys.md`` says the
same for reviewers.

Files of kmsnb 0.1 carry their context in each wrapped KEK, where the KMS binds it; their
footer has no such metadata, and :class:`~kmsnb._pme.ParquetKmsClient` checks those.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from kmsnb._column_keys import ColumnKeys, plan_column_keys
from kmsnb._context import check_encryption_context
from kmsnb._key_check import AllowedKeys, resolve_allowed_keys
from kmsnb._keynames import resolve_key_name
from kmsnb._pme import decryption_properties, encryption_properties, translated_errors
from kmsnb._pme_footer import (
    CONTEXT_METADATA_KEY,
    MAX_CONTEXT_METADATA_SIZE,
    ParquetTail,
    check_file_context,
    open_footer,
    read_tail,
)
from kmsnb._pme_wrap import unwrap_dek
from kmsnb._progress import progress_bar
from kmsnb._whole_file_io import remaining_size
from kmsnb.errors import FormatError, KmsError, KmsnbError, WrongKeyError
from kmsnb.kms._base import Kms, WrappingKms, wipe

__all__ = ["leaf_paths", "prepare_write", "read_columns"]

T = TypeVar("T")

_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


def _wrapping(kms: object) -> WrappingKms:
    if not isinstance(kms, WrappingKms):
        raise TypeError(
            "column-level encryption wraps its keys with the KMS's Encrypt and Decrypt, "
            f"which {type(kms).__name__} lacks (kmsnb.kms.WrappingKms); use kmsnb.connect() "
            "or kmsnb.testing.InMemoryKms"
        )
    return kms


def context_metadata(encryption_context: Mapping[str, str]) -> bytes:
    """The ``kmsnb.encryption_context`` value: compact JSON, keys sorted, UTF-8."""
    ordered = dict(sorted(encryption_context.items()))
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def leaf_paths(table: pa.Table, write_options: Mapping[str, Any]) -> list[str]:
    """The Parquet column paths pyarrow will write for ``table`` with these
    ``pyarrow.parquet.write_table`` options: column keys name columns by them."""
    probe = io.BytesIO()
    pq.write_table(table.schema.empty_table(), probe, **write_options)
    schema = pq.read_metadata(io.BytesIO(probe.getvalue())).schema
    return [schema.column(i).path for i in range(len(schema))]


def prepare_write(
    table: pa.Table,
    leaf_paths: list[str],
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    columns: ColumnKeys | None,
    uniform: bool,
) -> tuple[pa.Table, Any]:
    """The table to write (its metadata holding the context) and its encryption properties.

    Call it inside :func:`kmsnb._pme.translated_errors`: the KEKs are wrapped here.

    Raises:
        TypeError: the KMS cannot Encrypt, or ``columns`` is malformed.
        ValueError: ``uniform`` with ``columns``, or a bad column plan.
        KmsError: the KMS refused a key.
    """
    wrapping = _wrapping(kms)
    key_id = resolve_key_name(key_id)
    context = check_encryption_context(encryption_context) or {}
    encoded_context = context_metadata(context)
    # Readers refuse more (read_tail); refusing it here costs no KMS call and writes nothing.
    if len(encoded_context) > MAX_CONTEXT_METADATA_SIZE:
        raise ValueError(
            f"the encryption context is {len(encoded_context)} bytes as column-mode metadata, "
            f"too large for column-level encryption: at most {MAX_CONTEXT_METADATA_SIZE} are "
            "allowed"
        )
    if uniform:
        if columns:
            raise ValueError(
                "uniform=True encrypts every column with the file's key; leave columns out"
            )
        plan: dict[str, list[str]] = {}
    else:
        plan = plan_column_keys(table.schema, leaf_paths, key_id, columns or [])
    properties = encryption_properties(wrapping, key_id, plan, context, uniform=uniform)
    metadata = {
        **(table.schema.metadata or {}),
        CONTEXT_METADATA_KEY.encode(): encoded_context,
    }
    return table.replace_schema_metadata(metadata), properties


def read_columns(
    target: str | BinaryIO,
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    read: Callable[[Any], T],
    progress: bool | None = False,
    label: str = "decrypt",
) -> T:
    """Check the file's context, then ``read(decryption_properties)``.

    ``target`` is what pyarrow reads (a local path, or ``source`` itself); ``source`` is a
    seekable file at the start of the Parquet file. pyarrow reads and decrypts natively,
    out of kmsnb's sight: a progress bar (as ``progress`` says) counts the file, whole,
    once it is read.

    Raises:
        FormatError: plain Parquet, or malformed crypto metadata.
        ContextMismatchError: the file names another context.
        WrongKeyError, KmsError: a key was refused; the message names the columns that
            key protects in this file.
    """
    context = check_encryption_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)
    tail = read_tail(source)
    if tail is None:
        raise FormatError("this is a plain, unencrypted Parquet file; read it with pandas")
    properties = decryption_properties(kms, context, allowed)
    start = source.tell()
    try:
        with translated_errors() as failures:
            metadata = pq.read_metadata(target, decryption_properties=properties).metadata
            text = {
                key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                for key, value in (metadata or {}).items()
            }
            check_file_context(context, tail, text)
            source.seek(start)
            size = remaining_size(source)
            with progress_bar(size, label, show=progress) as advance:
                result = read(properties)
                advance(size)
            return result
    except (KmsError, WrongKeyError) as error:
        raise _naming_columns(error, failures.master_key_id, tail, kms, allowed) from None


def _naming_columns(
    error: KmsnbError,
    failed_key: str | None,
    tail: ParquetTail,
    kms: Kms,
    allowed: AllowedKeys | None,
) -> KmsnbError:
    """``error``, its message naming the columns that ``failed_key`` protects."""
    if failed_key is None:
        return error
    if failed_key == tail.footer_key.master_key_id:
        note = (
            f"master key {failed_key!r} is this file's footer key: kmsnb reads nothing of "
            "the file without it"
        )
    else:
        columns = _columns_under(failed_key, tail, kms, allowed)
        if columns is None:
            return error
        protected, others = columns
        note = (
            f"master key {failed_key!r} protects column(s) "
            f"{', '.join(repr(name) for name in protected)} of this file; without it, "
            f"read the others: columns={others!r}"
        )
    named = copy.copy(error)
    message = f"{getattr(error, 'message', None) or error.args[0]} ({note})"
    named.args = (message,)
    if isinstance(named, KmsError):
        named.message = message
    return named


def _columns_under(
    master_key: str, tail: ParquetTail, kms: Kms, allowed: AllowedKeys | None
) -> tuple[list[str], list[str]] | None:
    """The top-level columns under ``master_key``, and the others (``None``: unknown)."""
    try:
        footer_dek = unwrap_dek(kms, tail.footer_key, allowed=allowed)
    except KmsnbError:
        return None
    try:
        footer = open_footer(tail, footer_dek)
    except KmsnbError:
        return None
    finally:
        wipe(footer_dek)
    protected: list[str] = []
    others: list[str] = []
    for column in footer.columns:
        name = column.path.split(".")[0]
        under = column.key is not None and column.key.master_key_id == master_key
        if _INDEX_COLUMN.fullmatch(name) and not under:
            continue
        bucket = protected if under else others
        if name not in bucket:
            bucket.append(name)
    others = [name for name in others if name not in protected]
    return (protected, others) if protected else None
