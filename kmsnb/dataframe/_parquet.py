"""Encrypted Parquet for pandas: :func:`to_parquet` and :func:`read_parquet`, both modes.

Whole-file mode puts the Parquet bytes inside a kmsnb file (:mod:`kmsnb._whole_file_io`); column
mode is Parquet modular encryption (:mod:`kmsnb._pme`, ``docs/column-keys.md``). A reader
tells them apart by the first bytes: ``KMSN`` (a kmsnb file), ``PARE`` (an encrypted
footer), ``PAR1`` with a signed footer (column mode, plaintext footer) or without (plain).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from kmsnb._defaults import resolve_kms
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb._pme_inspect import encryption_mode
from kmsnb._progress import check_progress
from kmsnb._whole_file_io import (
    PathOrFile,
    check_content_type,
    local_path,
    open_input,
    progress_name,
)
from kmsnb._whole_file_read import decrypt_whole, decrypting_seekable
from kmsnb.dataframe._checks import check_frame
from kmsnb.envelope import inspect
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

if TYPE_CHECKING:
    import pyarrow as pa

#: Which reader reads what a whole-file kmsnb file holds, for refusals.
READERS = {CONTENT_TYPE_PARQUET: "kmsnb.read_parquet", CONTENT_TYPE_CSV: "kmsnb.read_csv"}


def _to_arrow(df: pd.DataFrame, pandas_kwargs: dict[str, Any]) -> tuple[pa.Table, dict[str, Any]]:
    """Convert like ``DataFrame.to_parquet`` does; return the table and write_table kwargs."""
    import pyarrow as pa

    kwargs = dict(pandas_kwargs)
    engine = kwargs.pop("engine", "auto")
    if engine not in ("auto", "pyarrow"):
        raise ValueError(f"kmsnb writes Parquet with pyarrow, not engine={engine!r}")
    for name, advice in (
        ("partition_cols", "write one encrypted file per partition instead"),
        ("filesystem", "pass an fsspec URL and storage_options instead"),
        ("encryption_properties", "kmsnb sets them; use columns= for column keys"),
    ):
        if kwargs.get(name) is not None:
            raise ValueError(f"{name} is not supported here; {advice}")
        kwargs.pop(name, None)
    from_pandas: dict[str, Any] = {"schema": kwargs.pop("schema", None)}
    index = kwargs.pop("index", None)
    if index is not None:
        from_pandas["preserve_index"] = index
    kwargs.setdefault("compression", "snappy")
    try:
        table = pa.Table.from_pandas(df, **from_pandas)
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TypeError(f"the DataFrame cannot be stored as Parquet: {error}") from error
    if df.attrs:
        metadata = {**(table.schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(df.attrs)}
        table = table.replace_schema_metadata(metadata)
    return table, kwargs


def to_parquet(
    df: pd.DataFrame,
    path: PathOrFile,
    key_id: str | None = None,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    uniform: bool = False,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **pandas_kwargs: Any,
) -> None:
    """Write ``df`` as encrypted Parquet (also ``df.kms.to_parquet``).

    Args:
        df: the DataFrame.
        path: a local path, an fsspec URL (``s3://``, ``memory://``...) or a binary file.
        key_id: the master key: an id, ``alias/NAME`` or an ARN; a bare ``NAME`` means
            ``alias/NAME``. ``None`` uses ``kmsnb.session.get_default_key()``.
        kms: the KMS, as :func:`kmsnb.connect` takes it (a client, or a URI such as
            ``"local:PATH"``); ``None`` uses ``kmsnb.session.get_kms()``.
        encryption_context: strings bound to the keys; a reader may demand them.
        columns: ``None`` encrypts the whole file. Otherwise column-level encryption:
            a mapping such as ``{"ssn": "alias/pii"}`` protects those columns with those
            master keys, a list protects them with ``key_id``; the footer and every
            other column use ``key_id``. The context then lives in the encrypted footer,
            not bound by the KMS (``docs/column-keys.md``).
        uniform: column-level encryption with ``key_id`` for the footer and every column
            (``columns`` must be ``None``), for :func:`kmsnb.duckdb.read_parquet`.
        overwrite: replace an existing file.
        storage_options: for fsspec URLs, as in pandas.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            Arrow table's size in memory, ``True`` always, ``False`` never (see
            :func:`kmsnb.arrow.write_table`).
        pandas_kwargs: as for ``DataFrame.to_parquet`` (``index``, ``compression``,
            ``schema``) and, beyond them, ``pyarrow.parquet.write_table``.

    Raises:
        TypeError: ``df`` is not a DataFrame, or holds values Parquet cannot store.
        ValueError: no key, an unknown column in ``columns``, an unsupported option.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        KmsError: the KMS refused (a disabled or unknown key: ``KmsAccessDeniedError``).
        ImportError: ``columns`` given, but pyarrow lacks Parquet modular encryption.
    """
    # Once in Arrow, a frame is written as kmsnb.arrow writes any table (whole file or
    # column level): one writer for both, so the modes and their checks cannot drift.
    from kmsnb import arrow

    df = check_frame(df)
    show = check_progress(progress)  # before the conversion, which may take a while
    table, write_kwargs = _to_arrow(df, pandas_kwargs)
    arrow.write_table(
        table,
        path,
        key_id,
        kms=kms,
        columns=columns,
        uniform=uniform,
        encryption_context=encryption_context,
        overwrite=overwrite,
        storage_options=storage_options,
        progress=show,
        **write_kwargs,
    )


def read_parquet(
    path: PathOrFile,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    mode: Literal["file", "columns"] | None = None,
    allowed_keys: Iterable[str] | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a DataFrame that :func:`to_parquet` wrote, in either mode.

    Args:
        path: a local path, an fsspec URL or a binary file.
        kms: the KMS, as :func:`kmsnb.connect` takes it (a client, or a URI such as
            ``"local:PATH"``); ``None`` uses ``kmsnb.session.get_kms()``.
        columns: read only these columns. With column-level encryption only their
            pages are read and decrypted, and only their keys are needed (plus the
            footer's); in a whole-file one only the chunks that hold the footer and
            these columns are decrypted (and authenticated).
        encryption_context: the context the file must carry (``ContextMismatchError``
            otherwise); ``None`` accepts the file's own.
        storage_options: for fsspec URLs, as in pandas.
        mode: ``"file"`` or ``"columns"`` to refuse a file encrypted the other way;
            ``None`` reads either.
        allowed_keys: the master keys (ids, aliases or ARNs, resolved through the KMS
            now) the file, or every column key read, may be under; ``None`` accepts the
            key the file names. Any other is a ``WrongKeyError`` before data is released.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            plaintext size the header declares (else the payload's; column level: the
            file's size), ``True`` always, ``False`` never.
        kwargs: as for ``pandas.read_parquet`` (``filters``, ``dtype_backend``...).

    Raises:
        FormatError: not an encrypted DataFrame (plain Parquet, CSV inside, the other
            mode than ``mode``).
        ContextMismatchError, WrongKeyError, KmsError, IntegrityError: see
            :func:`kmsnb.open_decrypt`; for column-level files, the KMS's refusal to
            unwrap the key of a requested column.
    """
    import pyarrow as pa

    if mode not in (None, "file", "columns"):
        raise ValueError(f"mode must be 'file', 'columns' or None, not {mode!r}")
    if "decryption_properties" in kwargs:
        raise ValueError("decryption_properties is not supported here; kmsnb sets them")
    show = check_progress(progress)
    label = f"decrypt {progress_name(path)}"
    kms = resolve_kms(kms)
    with open_input(path, storage_options=storage_options) as source:
        found = encryption_mode(source)
        if found == "plain":
            raise FormatError(
                "this is a plain, unencrypted Parquet file; read it with "
                "pandas.read_parquet (and encrypt it with df.kms.to_parquet)"
            )
        _expect_mode(mode, found)
        if found == "columns":
            from kmsnb import _pme, _pme_io

            _pme.check_support()
            local = local_path(path, storage_options)
            target = local if local is not None else source
            return _pme_io.read_columns(
                target,
                source,
                kms=kms,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                read=lambda properties: pd.read_parquet(
                    target, columns=columns, decryption_properties=properties, **kwargs
                ),
                progress=show,
                label=label,
            )
        start = source.tell()
        check_content_type(inspect(source).content_type, CONTENT_TYPE_PARQUET, readers=READERS)
        source.seek(start)
        if columns is not None:
            # A projection reads the footer and its own column chunks: decrypt only
            # those chunks (docs/FORMAT.md, "Random access").
            with decrypting_seekable(
                source,
                kms=kms,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                progress=show,
                label=label,
            ) as reader:
                return pd.read_parquet(reader, columns=columns, **kwargs)
        plaintext, size = decrypt_whole(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            allocate=pa.allocate_buffer,
            progress=show,
            label=label,
        )
        return pd.read_parquet(pa.BufferReader(plaintext.slice(0, size)), **kwargs)


def _expect_mode(mode: str | None, found: str) -> None:
    if mode is not None and mode != found:
        names = {"file": "whole-file encrypted", "columns": "column-encrypted"}
        raise FormatError(
            f"this Parquet file is {names[found]}, not {names[mode]}; "
            f"read it with mode={found!r} or mode=None"
        )
