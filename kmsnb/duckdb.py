"""DuckDB reads kmsnb's column-encrypted Parquet: :func:`read_parquet`.

DuckDB decrypts Parquet modular encryption with a raw footer key and never calls a KMS,
and it takes only a footer key (``encryption_config={footer_key: ...}``), so it reads the
files written with ``uniform=True`` (one key for the footer and every column)::

    df.kms.to_parquet("sales.parquet", "alias/sales", uniform=True)

    import duckdb, kmsnb.duckdb
    con = duckdb.connect()
    sales = kmsnb.duckdb.read_parquet(con, "sales.parquet")
    sales.aggregate("region, sum(amount)").show()

:func:`read_parquet` unwraps the footer's data key through the KMS (one Decrypt, checked
as every kmsnb read is: the master key the KMS's answer names, ``allowed_keys``), opens the
footer with it to check that the file is uniform and, if asked, its encryption context,
then registers the key with the connection (``PRAGMA add_parquet_key``) and returns a
relation over the file.

**DuckDB's reader is incomplete.** DuckDB 2.0.1 (and 1.5.6) fails with "Computed AES tag
differs from read AES tag, are you using the right key?" on a query with a ``WHERE``
clause, and on any column chunk of more than one page, of a Parquet file that pyarrow (or
any writer following the Parquet encryption spec) encrypted; ``tests/dataframe/
test_engines.py`` shows it without kmsnb. Whole scans of small files work. Until DuckDB
reads such files, ``decrypt_with="pyarrow"`` has kmsnb decrypt the file (any column-level
file, uniform or not; only the columns asked for) and hands DuckDB the Arrow table.

**What DuckDB then holds.** With ``decrypt_with="duckdb"``: the file's footer data key, a
raw AES-256 key, stays in the memory of the DuckDB database (every connection and cursor
of it can use it, under the name ``kmsnb_<digest>``) until the database is closed; DuckDB
has no call to forget it. That key decrypts this file, all of it (it is uniform), and no
other (each file has its own data key); it is not the master key, and nothing in DuckDB
can reach the KMS. On the way in, it passes through the text of one SQL statement, since
``PRAGMA add_parquet_key`` takes no parameters: a Python string kmsnb cannot wipe, alive
until it is collected. With ``decrypt_with="pyarrow"``: no key, but the decrypted table,
for as long as the relation lives. Close the connection (``con.close()``) when done.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from kmsnb._context import check_encryption_context
from kmsnb._format.header import MAGIC
from kmsnb._key_check import resolve_allowed_keys
from kmsnb._pme_footer import check_file_context, open_footer, read_tail
from kmsnb._pme_wrap import unwrap_dek
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms, wipe

__all__ = ["read_parquet"]

_INSTALL_HINT = "DuckDB is not installed; did you forget to pip install 'kmsnb[duckdb]'?"
_WHOLE_FILE = (
    "this is a whole-file kmsnb file, which DuckDB cannot decrypt; load it with "
    "kmsnb.read_parquet and query the DataFrame (connection.from_df(df))"
)


def read_parquet(
    connection: Any,
    path: str | os.PathLike[str],
    *,
    kms: Kms | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    decrypt_with: Literal["duckdb", "pyarrow"] = "duckdb",
    columns: Sequence[str] | None = None,
) -> Any:
    """A DuckDB relation over a column-encrypted Parquet file.

    Args:
        connection: a ``duckdb.DuckDBPyConnection``; it keeps the file's footer data key
            (or the decrypted table) until it is closed (see the module's docstring).
        path: a local Parquet file; written with ``uniform=True`` for ``"duckdb"``.
        kms: the KMS; ``None`` uses ``kmsnb.session.get_kms()``.
        encryption_context: the context the file must carry (``ContextMismatchError``
            otherwise); ``None`` accepts the file's own.
        allowed_keys: the master keys the file may be under; see ``kmsnb.read_parquet``.
        decrypt_with: ``"duckdb"`` registers the footer key and lets DuckDB decrypt as it
            scans (see the module's docstring for what DuckDB 2.0.1 cannot read);
            ``"pyarrow"`` decrypts here, into an Arrow table DuckDB then queries.
        columns: with ``"pyarrow"``, read only these columns (and need only their keys).

    Returns:
        with ``"duckdb"``, ``connection.sql("SELECT * FROM read_parquet(...)")``, lazy as
        DuckDB's own; with ``"pyarrow"``, ``connection.from_arrow(table)``.

    Raises:
        ImportError: DuckDB is not installed.
        FormatError: not a uniform column-encrypted file (its columns are under keys of
            their own, a whole-file kmsnb file, plain Parquet, not Parquet).
        ContextMismatchError, WrongKeyError, KmsError, IntegrityError: as for
            ``kmsnb.read_parquet``.
    """
    try:
        import duckdb
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    if not isinstance(connection, duckdb.DuckDBPyConnection):
        raise TypeError(f"connection must be a duckdb connection, not {type(connection).__name__}")
    if not isinstance(path, str | os.PathLike):
        raise TypeError("path must be a local file path (DuckDB opens the file itself)")
    path = os.fspath(path)
    if decrypt_with not in ("duckdb", "pyarrow"):
        raise ValueError(f"decrypt_with must be 'duckdb' or 'pyarrow', not {decrypt_with!r}")
    if columns is not None and decrypt_with == "duckdb":
        raise ValueError("columns is for decrypt_with='pyarrow'; select columns in DuckDB")
    if kms is None:
        from kmsnb import session

        kms = session.get_kms()
    if decrypt_with == "pyarrow":
        return connection.from_arrow(
            _decrypted_table(path, kms, encryption_context, allowed_keys, columns)
        )
    expected = check_encryption_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)
    footer_dek, wrapped_dek = _footer_key(path, kms, expected, allowed)
    try:
        material = base64.b64encode(footer_dek).decode("ascii")
    finally:
        wipe(footer_dek)
    # Named after the file's wrapped key (public): reading a file again reuses the name.
    name = "kmsnb_" + hashlib.sha256(wrapped_dek).hexdigest()[:24]
    connection.execute(f"PRAGMA add_parquet_key('{name}', '{material}')")
    del material
    return connection.sql(
        "SELECT * FROM read_parquet($path, encryption_config = {footer_key: $key})",
        params={"path": path, "key": name},
    )


def _decrypted_table(
    path: str,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    columns: Sequence[str] | None,
) -> Any:
    """The file as an Arrow table, decrypted by pyarrow as ``kmsnb.read_parquet`` does."""
    from kmsnb import _pme, _pme_io

    _pme.check_support()
    import pyarrow.parquet as pq

    with open(path, "rb") as source:
        if source.read(len(MAGIC)) == MAGIC:
            raise FormatError(_WHOLE_FILE)
        source.seek(0)
        return _pme_io.read_columns(
            path,
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            read=lambda properties: pq.read_table(
                path, columns=columns, decryption_properties=properties
            ),
        )


def _footer_key(path: str, kms: Kms, expected: Any, allowed: Any) -> tuple[bytearray, bytes]:
    """The footer's DEK (and its wrapped form), once the footer verified under it and
    shows one key for all."""
    with open(path, "rb") as probe:
        if probe.read(len(MAGIC)) == MAGIC:
            raise FormatError(_WHOLE_FILE)
    tail = read_tail(path)
    if tail is None:
        raise FormatError(
            "this Parquet file is not encrypted; read it with connection.read_parquet(path)"
        )
    if not tail.footer_encrypted:
        raise FormatError(
            "this Parquet file has a plaintext footer; DuckDB decrypts the files kmsnb "
            "writes with uniform=True (encrypted footer). Read this one with "
            "decrypt_with='pyarrow'"
        )
    footer_dek = unwrap_dek(kms, tail.footer_key, expected_context=expected, allowed=allowed)
    try:
        footer = open_footer(tail, footer_dek)
        check_file_context(expected, tail, footer.metadata)
        own_keys = sorted(
            {
                repr(column.key.master_key_id) if column.key is not None else "none (clear)"
                for column in footer.columns
                if column.key is not None or not column.encrypted
            }
        )
        if own_keys:
            raise FormatError(
                "DuckDB takes only a footer key, and this file has columns under keys of "
                f"their own ({', '.join(own_keys)}); DuckDB decrypts files written with "
                "uniform=True. Read this one with decrypt_with='pyarrow'"
            )
    except BaseException:
        wipe(footer_dek)
        raise
    return footer_dek, tail.footer_key.wrapped_dek
