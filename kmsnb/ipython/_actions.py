"""What the magics and the widgets do, written once: encrypt a value, load a file. Both
front ends parse their input, call these, and display the result.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kmsnb import session
from kmsnb._files import atomic_output
from kmsnb._format.header import (
    CONTENT_TYPE_BYTES,
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_PARQUET,
)
from kmsnb.envelope import inspect, open_decrypt, open_encrypt
from kmsnb.errors import KmsnbError
from kmsnb.ipython._display import Receipt
from kmsnb.kms import Kms, KmsClient

__all__ = [
    "CONTENT_TYPE_TEXT",
    "FORMATS",
    "alias_index",
    "decrypt_path",
    "encrypt_value",
    "is_dataframe",
    "management_client",
    "require_key",
]

#: Content type recorded for a ``str`` encrypted as UTF-8, so that it loads back as ``str``.
CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"
FORMATS = ("parquet", "csv", "bytes")

_PME_MAGIC = b"PARE"  # Parquet modular encryption, encrypted footer: df.kms.to_parquet(columns=)
# ... and PAR1: a plaintext (signed) footer, or plain Parquet, which read_parquet refuses.
_PARQUET_MAGICS = (_PME_MAGIC, b"PAR1")


def management_client(kms: Kms) -> KmsClient:
    """The client that manages keys behind ``kms`` (which may be the data-key cache).

    Raises:
        TypeError: ``kms`` encrypts but cannot manage keys (a bare ``Kms``).
    """
    # The data-key cache forwards key management to the client it wraps (and clears itself
    # when a key is disabled through it), so it passes as a client of its own.
    if isinstance(kms, KmsClient):
        return kms
    raise TypeError(
        f"the session's KMS ({type(kms).__name__}) cannot manage keys; "
        "use kmsnb.connect() or kmsnb.session.set_kms() with a full client"
    )


def require_key(key_id: str | None) -> str:
    """``key_id``, else the session's default key.

    Raises:
        ValueError: neither is set.
    """
    key = key_id or session.get_default_key()
    if not key:
        raise ValueError("no key given and no default key set; pass -k KEY, or %kms use KEY")
    return key


def alias_index(client: KmsClient) -> dict[str, list[str]]:
    """Key id -> its aliases, sorted."""
    index: dict[str, list[str]] = {}
    for alias in client.list_aliases():
        index.setdefault(alias.key_id, []).append(alias.alias_name)
    for names in index.values():
        names.sort()
    return index


def is_dataframe(value: object) -> bool:
    # pandas is imported only if the user already did: checking a type must not load it.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fileobj:
        while block := fileobj.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _alias_for(key_id: str, requested: str, kms: Kms) -> str | None:
    """The alias to show next to ``key_id``: the one asked for, else the key's first."""
    if requested.startswith("alias/"):
        return requested
    try:
        aliases = management_client(kms).list_aliases(key_id)
    except (KmsnbError, TypeError):
        return None  # the receipt is still right without an alias; never fail after writing
    return min((alias.alias_name for alias in aliases), default=None)


def encrypt_value(
    value: object,
    path: str,
    key_id: str | None,
    *,
    kms: Kms,
    file_format: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    column_keys: Sequence[str] | None = None,
    uniform: bool = False,
) -> Receipt:
    """Encrypt a DataFrame (Parquet or CSV), ``bytes`` or ``str`` (UTF-8) to ``path``.

    Args:
        column_keys: column-level encryption of a DataFrame (Parquet): ``COL=KEY`` puts a
            column under master key ``KEY``, ``COL`` under ``key_id``; the footer and the
            other columns are under ``key_id`` (see :mod:`kmsnb._column_keys`).
        uniform: column-level encryption with ``key_id`` for everything (DuckDB reads it).

    Returns:
        a receipt describing the file written, never its contents.

    Raises:
        TypeError: ``value`` is none of those, or does not fit ``file_format``.
        ValueError: no key given and no default key set, or a malformed ``COL=KEY``.
    """
    key = require_key(key_id)
    if file_format is not None and file_format not in FORMATS:
        raise ValueError(f"unknown format {file_format!r}; use one of {', '.join(FORMATS)}")
    rows = columns = plaintext_size = None
    column_level = bool(column_keys) or uniform
    if column_level and not (is_dataframe(value) and file_format in (None, "parquet")):
        raise TypeError("--columns and --uniform encrypt the columns of a DataFrame as parquet")
    if is_dataframe(value):
        file_format = file_format or "parquet"
        if file_format == "bytes":
            raise TypeError("a DataFrame is written as parquet or csv, not bytes")
        import kmsnb.dataframe  # noqa: F401  (registers the df.kms accessor)

        frame: Any = value
        if column_level:
            from kmsnb._column_keys import parse_column_keys

            plan = parse_column_keys(column_keys or [], key)
            frame.kms.to_parquet(
                path,
                key,
                kms=kms,
                encryption_context=encryption_context,
                overwrite=overwrite,
                columns=plan or None,
                uniform=uniform,
            )
            return _column_receipt(path, key, frame.shape, plan, encryption_context, uniform)
        writer = frame.kms.to_parquet if file_format == "parquet" else frame.kms.to_csv
        writer(path, key, kms=kms, encryption_context=encryption_context, overwrite=overwrite)
        rows, columns = frame.shape
        kind = "DataFrame"
    elif isinstance(value, bytes | bytearray | memoryview | str):
        if file_format not in (None, "bytes"):
            raise TypeError(f"{type(value).__name__} is written as bytes, not {file_format}")
        kind = type(value).__name__
        data = value.encode("utf-8") if isinstance(value, str) else memoryview(value).cast("B")
        content_type = CONTENT_TYPE_TEXT if isinstance(value, str) else CONTENT_TYPE_BYTES
        plaintext_size = len(data)
        with atomic_output(path, overwrite=overwrite) as output:
            encrypting = open_encrypt(
                output,
                key,
                kms=kms,
                encryption_context=encryption_context,
                content_type=content_type,
                plaintext_size=plaintext_size,
            )
            with encrypting:
                encrypting.write(data)
    else:
        raise TypeError(
            f"cannot encrypt a {type(value).__name__}; give a pandas DataFrame, bytes or str"
        )
    written = Path(path)
    info = inspect(written)
    return Receipt(
        path=str(written),
        key_id=info.key_id,
        key_version_id=info.key_version_id,
        key_alias=_alias_for(info.key_id, key, kms),
        kind=kind,
        content_type=info.content_type,
        ciphertext_size=written.stat().st_size,
        sha256=_file_sha256(written),
        rows=rows,
        columns=columns,
        plaintext_size=plaintext_size,
        encryption_context=dict(info.encryption_context),
    )


def _column_receipt(
    path: str,
    key: str,
    shape: tuple[int, int],
    plan: Mapping[str, str],
    encryption_context: Mapping[str, str] | None,
    uniform: bool,
) -> Receipt:
    written = Path(path)
    return Receipt(
        path=str(written),
        key_id=key,
        key_version_id="in each wrapped key (column-level)",
        key_alias=None,
        kind="DataFrame",
        content_type=CONTENT_TYPE_PARQUET,
        ciphertext_size=written.stat().st_size,
        sha256=_file_sha256(written),
        rows=shape[0],
        columns=shape[1],
        encryption_context=dict(encryption_context or {}),
        column_keys={name: master for name, master in plan.items() if master != key},
        uniform=uniform,
    )


def _list(columns: Sequence[str] | None) -> list[str] | None:
    return list(columns) if columns else None


def decrypt_path(
    path: str,
    *,
    kms: Kms,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Sequence[str] | None = None,
) -> object:
    """Load a kmsnb file: a DataFrame for Parquet and CSV, ``str`` for text, else ``bytes``.

    Args:
        allowed_keys: the master keys the file may be under (see
            :func:`kmsnb.open_decrypt`); ``None`` accepts the key it names.

    Raises:
        ValueError: ``columns`` given for a file that is not a table.
    """
    with open(path, "rb") as probe:
        column_level = probe.read(len(_PME_MAGIC)) in _PARQUET_MAGICS
    # Column-level encrypted Parquet has no kmsnb header; read_parquet reads both kinds.
    content_type = CONTENT_TYPE_PARQUET if column_level else inspect(path).content_type
    if content_type == CONTENT_TYPE_PARQUET:
        from kmsnb.dataframe import read_parquet

        return read_parquet(
            path,
            kms=kms,
            columns=_list(columns),
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
        )
    if content_type == CONTENT_TYPE_CSV:
        from kmsnb.dataframe import read_csv

        return read_csv(
            path,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            usecols=_list(columns),
        )
    if columns:
        raise ValueError(f"--columns applies to parquet and csv files; this one is {content_type}")
    with (
        open(path, "rb") as source,
        open_decrypt(
            source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
        ) as reader,
    ):
        data = reader.readall()
    return data.decode("utf-8") if content_type == CONTENT_TYPE_TEXT else data
