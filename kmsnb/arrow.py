"""pyarrow Tables in and out of kmsnb files, without pandas (``pip install kmsnb[arrow]``)::

    kmsnb.arrow.write_table(table, "sales.parquet.kms", "alias/Apollo/WorkKey")
    table = kmsnb.arrow.read_table("sales.parquet.kms", columns=["region"])

The same two ways as :mod:`kmsnb.dataframe` and the same files, so pandas, polars and
Arrow read each other's: **whole file** (``columns=None``: the Parquet or CSV bytes inside
one kmsnb file) and **column level** (``columns=`` a list or ``{column: key}``, or
``uniform=True``: Parquet modular encryption, :mod:`kmsnb._pme_io`). Types come back as
``pyarrow.parquet`` keeps them, since it is pyarrow that writes and reads the Parquet.

A whole-file read of every column decrypts into one Arrow buffer (about the Parquet
file's size) that the table then uses; ``columns=`` reads through the seekable reader
(:func:`kmsnb.envelope.open_decrypt_seekable`), which decrypts only the chunks holding
the footer and those columns. CSV streams through the verifying reader into pyarrow's.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Literal

from kmsnb import _whole_file_io
from kmsnb._context import check_encryption_context
from kmsnb._defaults import resolve_key, resolve_kms
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb._pme_inspect import encryption_mode
from kmsnb._progress import Advance, check_progress, counting_writer, progress_bar
from kmsnb._whole_file_io import PathOrFile, progress_name
from kmsnb._whole_file_read import decrypt_whole, decrypting_seekable, decrypting_stream
from kmsnb.envelope import inspect
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

try:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq
except ImportError as _error:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "kmsnb.arrow needs pyarrow; did you forget to install kmsnb[arrow]?"
    ) from _error

__all__ = ["read_table", "write_table"]

Format = Literal["parquet", "csv"]

_CONTENT_TYPES: dict[str, str] = {"parquet": CONTENT_TYPE_PARQUET, "csv": CONTENT_TYPE_CSV}
_READERS = {
    CONTENT_TYPE_PARQUET: "kmsnb.arrow.read_table",
    CONTENT_TYPE_CSV: "kmsnb.arrow.read_table",
}
#: Smaller than pyarrow's 1 MiB block reads, which then go straight from the decrypting
#: reader into pyarrow's bytes instead of through this buffer (as in kmsnb.dataframe._csv).
_CSV_READ_SIZE = 128 << 10


def _check_table(table: object) -> pa.Table:
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow Table, not {type(table).__name__}")
    return table


def _check_format(format: object) -> Format:
    if format not in _CONTENT_TYPES:
        raise ValueError(f"format must be 'parquet' or 'csv', not {format!r}")
    return format  # type: ignore[return-value]


def write_table(
    table: pa.Table,
    path: PathOrFile,
    key: str | None = None,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    uniform: bool = False,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    format: Format = "parquet",
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **write_options: Any,
) -> None:
    """Write ``table`` encrypted, as Parquet (whole file or column level) or CSV.

    Args:
        table: a ``pyarrow.Table`` (or ``RecordBatch``).
        path: a local path, an fsspec URL (``s3://``, ``memory://``...) or a binary file.
        key: the master key; ``None`` uses ``kmsnb.session.get_default_key()``.
        kms: a KMS client or URI (``local:PATH``, ``aliyun:REGION``...); ``None`` uses
            ``kmsnb.session.get_kms()``.
        columns: ``None`` encrypts the whole file. Otherwise column-level encryption:
            ``{"ssn": "alias/pii"}`` protects those columns with those master keys, a list
            protects them with ``key``; the footer and every other column use ``key``.
        uniform: column-level encryption with ``key`` for the footer and every column.
        encryption_context: strings bound to the keys; a reader may demand them.
        overwrite: replace an existing file.
        format: ``"parquet"`` or ``"csv"`` (whole file only).
        storage_options: for fsspec URLs.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            table's size in memory (``nbytes``), ``True`` always, ``False`` never. It
            counts the bytes encrypted (column level: the bytes of the file written).
        write_options: for ``pyarrow.parquet.write_table`` (``compression``,
            ``row_group_size``...) or ``pyarrow.csv.write_csv`` (``write_options``).

    Raises:
        TypeError: not a Table; a KMS without Encrypt for column mode.
        ValueError: no key, an unknown column, column mode for CSV, a reserved option.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        KmsError: the KMS refused (a disabled or unknown key: ``KmsAccessDeniedError``).
    """
    table = _check_table(table)
    content_type = _CONTENT_TYPES[_check_format(format)]
    show = check_progress(progress)
    for name in ("encryption_properties", "filesystem", "where"):
        if name in write_options:
            raise ValueError(f"{name} is not supported here; kmsnb sets it")
    key = resolve_key(key)
    context = check_encryption_context(encryption_context)
    kms = resolve_kms(kms)
    column_mode = columns is not None or uniform
    if content_type == CONTENT_TYPE_CSV and column_mode:
        raise ValueError("column-level encryption is for Parquet; CSV is whole-file only")
    # nbytes is known without writing (the sum of the table's buffers): an estimate of
    # what the writer produces, which the bar's total becomes once written.
    with progress_bar(table.nbytes, f"encrypt {progress_name(path)}", show=show) as advance:
        _write_table(
            table,
            path,
            key,
            kms=kms,
            columns=columns,
            uniform=uniform,
            context=context,
            overwrite=overwrite,
            content_type=content_type,
            storage_options=storage_options,
            advance=advance,
            write_options=write_options,
        )


def _write_table(
    table: pa.Table,
    path: PathOrFile,
    key: str,
    *,
    kms: Kms,
    columns: Sequence[str] | Mapping[str, str] | None,
    uniform: bool,
    context: Mapping[str, str] | None,
    overwrite: bool,
    content_type: str,
    storage_options: Mapping[str, Any] | None,
    advance: Advance,
    write_options: dict[str, Any],
) -> None:
    column_mode = columns is not None or uniform
    if content_type == CONTENT_TYPE_CSV:
        _whole_file_io.write_whole_file(
            path,
            key,
            kms=kms,
            encryption_context=context,
            content_type=content_type,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: pa_csv.write_csv(table, sink, **write_options),
            advance=advance,
        )
        return
    if not column_mode and table.nbytes <= _whole_file_io.SIZED_WRITE_LIMIT:
        # Serialised in Arrow's memory first: pyarrow writes there natively, where into
        # a Python sink every page is a Python call and a copy; the size is then known.
        stream = pa.BufferOutputStream()
        pq.write_table(table, stream, **write_options)
        plaintext = stream.getvalue()
        try:
            _whole_file_io.write_plaintext(
                path,
                key,
                memoryview(plaintext),
                kms=kms,
                encryption_context=context,
                content_type=content_type,
                overwrite=overwrite,
                storage_options=storage_options,
                advance=advance,
            )
        finally:
            # Zeroed in place like the sink's held pieces; memset, as it allocates nothing.
            if plaintext.is_mutable:
                ctypes.memset(plaintext.address, 0, plaintext.size)
        return
    if not column_mode:
        _whole_file_io.write_whole_file(
            path,
            key,
            kms=kms,
            encryption_context=context,
            content_type=content_type,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: pq.write_table(table, sink, **write_options),
            advance=advance,
        )
        return
    from kmsnb import _pme, _pme_io

    _pme.check_support()
    with _pme.translated_errors():
        table, properties = _pme_io.prepare_write(
            table,
            _pme_io.leaf_paths(table, write_options),
            key,
            kms=kms,
            encryption_context=context,
            columns=columns,
            uniform=uniform,
        )
        with _whole_file_io.open_output(
            path, overwrite=overwrite, storage_options=storage_options
        ) as out:
            # Parquet modular encryption encrypts inside pyarrow: what the bar counts is
            # the encrypted file as it is written.
            sink = counting_writer(out, advance)
            pq.write_table(table, sink, encryption_properties=properties, **write_options)


def read_table(
    path: PathOrFile,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **read_options: Any,
) -> pa.Table:
    """Read a table that :func:`write_table` (or ``df.kms.to_parquet``/``to_csv``) wrote.

    Args:
        path: a local path, an fsspec URL or a binary file.
        kms: a KMS client or URI; ``None`` uses ``kmsnb.session.get_kms()``.
        columns: read only these columns: only their pages (column level) or only the
            chunks holding the footer and them (whole file) are decrypted.
        encryption_context: the context the file must carry (``ContextMismatchError``
            otherwise); ``None`` accepts the file's own.
        allowed_keys: the master keys the file, or every column key read, may be under;
            any other is a ``WrongKeyError`` before data is released.
        storage_options: for fsspec URLs.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            plaintext size the header declares (else the payload's; column level: the
            file's size), ``True`` always, ``False`` never.
        read_options: for ``pyarrow.parquet.read_table`` (``filters``...) or
            ``pyarrow.csv.read_csv`` (``parse_options``...).

    Raises:
        FormatError: not an encrypted table (plain Parquet, raw bytes inside).
        ContextMismatchError, WrongKeyError, KmsError, IntegrityError: see
            :func:`kmsnb.open_decrypt`; for column-level files, the KMS's refusal to
            unwrap the key of a requested column names the columns it protects.
    """
    if "decryption_properties" in read_options:
        raise ValueError("decryption_properties is not supported here; kmsnb sets them")
    show = check_progress(progress)
    label = f"decrypt {progress_name(path)}"
    kms = resolve_kms(kms)
    with _whole_file_io.open_input(path, storage_options=storage_options) as source:
        kind = encryption_mode(source)
        if kind == "plain":
            raise FormatError(
                "this is a plain, unencrypted Parquet file; read it with "
                "pyarrow.parquet.read_table (and encrypt it with kmsnb.arrow.write_table)"
            )
        if kind == "columns":
            from kmsnb import _pme, _pme_io

            _pme.check_support()
            local = _whole_file_io.local_path(path, storage_options)
            target: str | BinaryIO = local if local is not None else source
            return _pme_io.read_columns(
                target,
                source,
                kms=kms,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                read=lambda properties: pq.read_table(
                    target, columns=columns, decryption_properties=properties, **read_options
                ),
                progress=show,
                label=label,
            )
        start = source.tell()
        content_type = inspect(source).content_type
        source.seek(start)
        if content_type == CONTENT_TYPE_CSV:
            return _read_csv(
                source,
                kms=kms,
                columns=columns,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                read_options=read_options,
                progress=show,
                label=label,
            )
        _whole_file_io.check_content_type(content_type, CONTENT_TYPE_PARQUET, readers=_READERS)
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
                return pq.read_table(reader, columns=columns, **read_options)
        buffer, size = decrypt_whole(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            allocate=pa.allocate_buffer,
            progress=show,
            label=label,
        )
        return pq.read_table(pa.BufferReader(buffer.slice(0, size)), **read_options)


def _read_csv(
    source: BinaryIO,
    *,
    kms: Kms,
    columns: Sequence[str] | None,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    read_options: dict[str, Any],
    progress: bool | None,
    label: str,
) -> pa.Table:
    if columns is not None:
        convert = read_options.pop("convert_options", None) or pa_csv.ConvertOptions()
        convert.include_columns = list(columns)
        read_options["convert_options"] = convert
    with decrypting_stream(
        source,
        kms=kms,
        encryption_context=encryption_context,
        allowed_keys=allowed_keys,
        buffer_size=_CSV_READ_SIZE,
        progress=progress,
        label=label,
    ) as plaintext:
        # pyarrow reads ahead on its own threads; every byte it gets has verified, and
        # an altered or truncated file is an error, not a table.
        return pa_csv.read_csv(plaintext, **read_options)
