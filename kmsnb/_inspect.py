"""``kmsnb.inspect``: what an encrypted file says, for a kmsnb file and for a Parquet file
with column-level encryption alike."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from kmsnb.envelope import FileInfo
from kmsnb.envelope import inspect as inspect_header
from kmsnb.kms._base import Kms
from kmsnb.storage import is_url, open_input

if TYPE_CHECKING:
    from kmsnb._pme_inspect import ParquetInfo

__all__ = ["inspect"]

_PARQUET_MAGICS = (b"PAR1", b"PARE")
#: Bytes per ranged read of an object: a header, or a Parquet footer, in a few requests.
_PROBE_RANGE_SIZE = 64 * 1024


def inspect(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    kms: Kms | None = None,
    allowed_keys: Iterable[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> FileInfo | ParquetInfo:
    """Say what an encrypted file reveals.

    A kmsnb file (whole-file encryption): what its header says, read without the KMS
    (:class:`~kmsnb.FileInfo`); ``kms`` is not needed, the header shows everything a key
    would. A Parquet file with column-level encryption: a
    :class:`~kmsnb._pme_inspect.ParquetInfo`. Without ``kms``, what the file shows in
    clear (with the default encrypted footer, only the footer key's master key and KMS;
    with a plaintext footer, also the schema and each column's master key, unverified).
    With ``kms``, the footer key is unwrapped (one Decrypt, checked like a read's) and the
    schema, the row count, the encryption context and which columns need which master key
    are shown, verified; no column key is asked for.

    What a kmsnb header says is unverified: only a read, which asks the KMS, checks the
    key the header names against the one that really wrapped the data key.

    Args:
        source: a path, an fsspec URL (``s3://...``, ``oss://...``: only the header, or
            Parquet's footer, is fetched, by ranged reads), or a binary file (seekable for
            Parquet) at the file's start.
        kms: for Parquet, the KMS to unwrap the footer key with.
        allowed_keys: with ``kms``, the master keys the footer key may be under.
        storage_options: for a URL, as in pandas.

    Raises:
        FormatError: neither a kmsnb file nor encrypted Parquet, or malformed.
        WrongKeyError, KmsError, IntegrityError: with ``kms``, as for a read.
    """
    if is_url(source):
        return _inspect_url(str(source), kms, allowed_keys, storage_options)
    if storage_options:
        raise ValueError("storage_options is only for fsspec URLs (s3://..., oss://...)")
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as probe:
            head = probe.read(4)
    elif callable(getattr(source, "read", None)):
        start = source.tell()
        head = source.read(4)
        source.seek(start)
    else:
        raise TypeError("source must be a path or a binary file open for reading")
    if head in _PARQUET_MAGICS:
        from kmsnb._pme_inspect import inspect_parquet

        return inspect_parquet(source, kms=kms, allowed_keys=allowed_keys)
    return inspect_header(source)


def _inspect_url(
    url: str,
    kms: Kms | None,
    allowed_keys: Iterable[str] | None,
    storage_options: Mapping[str, Any] | None,
) -> FileInfo | ParquetInfo:
    with open_input(url, storage_options=storage_options, block_size=_PROBE_RANGE_SIZE) as probe:
        head = probe.read(4)
        if head in _PARQUET_MAGICS:
            from kmsnb._pme_inspect import inspect_parquet

            probe.seek(0)
            return inspect_parquet(probe, kms=kms, allowed_keys=allowed_keys)
    return inspect_header(url, storage_options=storage_options)
