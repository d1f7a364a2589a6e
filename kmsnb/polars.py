"""polars DataFrames in and out of kmsnb files (``pip install kmsnb[polars]``)::

    kmsnb.polars.write_parquet(df, "sales.parquet.kms", "alias/Apollo/WorkKey")
    df = kmsnb.polars.read_parquet("sales.parquet.kms", columns=["region"])

The same files as :mod:`kmsnb.dataframe` and :mod:`kmsnb.arrow` write and read.
**Whole file** (``columns=None``): polars writes and reads the Parquet (or CSV) itself, so
types come back as ``DataFrame.write_parquet`` / ``pl.read_parquet`` keep them. Reading
every column decrypts the whole file into memory first; ``columns=`` reads through the
seekable reader with pyarrow's Parquet reader (polars' ``use_pyarrow=True``), which
fetches, and so decrypts, only the chunks holding the footer and those columns.
**Column level** (``columns=`` a list or ``{column: key}``, or ``uniform=True``) is
Parquet modular encryption, which only pyarrow writes: the frame goes through Arrow
(:mod:`kmsnb.arrow`), as ``write_parquet(use_pyarrow=True)`` would send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

from kmsnb import _whole_file_io
from kmsnb._context import check_encryption_context
from kmsnb._defaults import resolve_key, resolve_kms
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb._pme_inspect import encryption_mode
from kmsnb._progress import check_progress, progress_bar
from kmsnb._whole_file_io import PathOrFile, progress_name
from kmsnb._whole_file_read import decrypt_whole, decrypting_seekable, decrypting_stream
from kmsnb.envelope import inspect
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

try:
    import polars as pl
except ImportError as _error:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "kmsnb.polars needs polars; did you forget to install kmsnb[polars]?"
    ) from _error

__all__ = ["read_csv", "read_parquet", "write_csv", "write_parquet"]

_READERS = {
    CONTENT_TYPE_PARQUET: "kmsnb.polars.read_parquet",
    CONTENT_TYPE_CSV: "kmsnb.polars.read_csv",
}
_CSV_READ_SIZE = 1 << 20


def _check_frame(df: object) -> pl.DataFrame:
    if isinstance(df, pl.LazyFrame):
        raise TypeError("expected a polars DataFrame, got a LazyFrame; call .collect() first")
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"expected a polars DataFrame, not {type(df).__name__}")
    return df


def write_parquet(
    df: pl.DataFrame,
    path: PathOrFile,
    key: str | None = None,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    uniform: bool = False,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **write_options: Any,
) -> None:
    """Write ``df`` as encrypted Parquet, the whole file or column level.

    Args:
        df: a polars ``DataFrame``.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by
            ``df.estimated_size()``, ``True`` always, ``False`` never.
        write_options: whole file: for ``DataFrame.write_parquet`` (``compression``,
            ``statistics``...); column level: for ``pyarrow.parquet.write_table``.
        Others: as for :func:`kmsnb.arrow.write_table`.

    Raises:
        TypeError, ValueError, FileExistsError, KmsError: as for
            :func:`kmsnb.arrow.write_table`.
        ImportError: column level without pyarrow (``kmsnb[arrow]``).
    """
    df = _check_frame(df)
    show = check_progress(progress)
    if columns is not None or uniform:
        from kmsnb import arrow

        arrow.write_table(
            df.to_arrow(),
            path,
            key,
            kms=kms,
            columns=columns,
            uniform=uniform,
            encryption_context=encryption_context,
            overwrite=overwrite,
            storage_options=storage_options,
            progress=show,
            **write_options,
        )
        return
    if "use_pyarrow" in write_options or "partition_by" in write_options:
        raise ValueError("use_pyarrow and partition_by are not supported here")
    # polars writes Python files in small pieces: below the sized-write limit (the Parquet
    # is rarely larger than the frame) it writes into memory, natively, first.
    estimate = int(df.estimated_size())
    small = estimate <= _whole_file_io.SIZED_WRITE_LIMIT
    write = _whole_file_io.write_from_memory if small else _whole_file_io.write_whole_file
    key_id, client = resolve_key(key), resolve_kms(kms)
    context = check_encryption_context(encryption_context)
    with progress_bar(estimate, f"encrypt {progress_name(path)}", show=show) as advance:
        write(
            path,
            key_id,
            kms=client,
            encryption_context=context,
            content_type=CONTENT_TYPE_PARQUET,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: df.write_parquet(sink, **write_options),
            advance=advance,
        )


def write_csv(
    df: pl.DataFrame,
    path: PathOrFile,
    key: str | None = None,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **write_options: Any,
) -> None:
    """Write ``df`` as encrypted CSV (whole file; lossy, as CSV is).

    Args:
        write_options: for ``DataFrame.write_csv`` (``separator``...).
        Others: as for :func:`write_parquet`.
    """
    df = _check_frame(df)
    show = check_progress(progress)
    key_id, client = resolve_key(key), resolve_kms(kms)
    context = check_encryption_context(encryption_context)
    label = f"encrypt {progress_name(path)}"
    with progress_bar(int(df.estimated_size()), label, show=show) as advance:
        _whole_file_io.write_whole_file(
            path,
            key_id,
            kms=client,
            encryption_context=context,
            content_type=CONTENT_TYPE_CSV,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: df.write_csv(sink, **write_options),
            advance=advance,
        )


def read_parquet(
    path: PathOrFile,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **read_options: Any,
) -> pl.DataFrame:
    """Read a DataFrame that :func:`write_parquet` (or kmsnb's pandas or Arrow writer) wrote.

    Args:
        read_options: for ``pl.read_parquet`` (``n_rows``, ``row_index_name``...).
        Others: as for :func:`kmsnb.arrow.read_table`.

    Raises:
        FormatError, ContextMismatchError, WrongKeyError, KmsError, IntegrityError: as for
            :func:`kmsnb.arrow.read_table`.
    """
    show = check_progress(progress)
    label = f"decrypt {progress_name(path)}"
    kms = resolve_kms(kms)
    with _whole_file_io.open_input(path, storage_options=storage_options) as source:
        kind = encryption_mode(source)
        if kind == "plain":
            raise FormatError(
                "this is a plain, unencrypted Parquet file; read it with pl.read_parquet "
                "(and encrypt it with kmsnb.polars.write_parquet)"
            )
        if kind == "columns":
            from kmsnb import arrow

            table = arrow.read_table(
                source,
                kms=kms,
                columns=columns,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                progress=show,
            )
            return _from_arrow(table, read_options)
        _check_content(source, CONTENT_TYPE_PARQUET)
        if columns is not None and _has_pyarrow():
            # polars reads a file object whole; pyarrow's reader fetches only the footer
            # and the columns' chunks, so only those are decrypted (and authenticated).
            with decrypting_seekable(
                source,
                kms=kms,
                encryption_context=encryption_context,
                allowed_keys=allowed_keys,
                progress=show,
                label=label,
            ) as reader:
                return pl.read_parquet(
                    reader, columns=list(columns), use_pyarrow=True, **read_options
                )
        selected = None if columns is None else list(columns)
        return pl.read_parquet(
            _decrypt_to_memory(source, kms, encryption_context, allowed_keys, show, label),
            columns=selected,
            **read_options,
        )


def read_csv(
    path: PathOrFile,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **read_options: Any,
) -> pl.DataFrame:
    """Read a DataFrame that :func:`write_csv` (or ``df.kms.to_csv``) wrote.

    Args:
        read_options: for ``pl.read_csv`` (``columns``, ``schema_overrides``...).
        Others: as for :func:`read_parquet`.
    """
    show = check_progress(progress)
    kms = resolve_kms(kms)
    with _whole_file_io.open_input(path, storage_options=storage_options) as source:
        if encryption_mode(source) != "file":
            raise FormatError("this is a Parquet file, not encrypted CSV; use read_parquet")
        _check_content(source, CONTENT_TYPE_CSV)
        with decrypting_stream(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            buffer_size=_CSV_READ_SIZE,
            progress=show,
            label=f"decrypt {progress_name(path)}",
        ) as plaintext:
            # polars reads a file object to its end before parsing: it sees only verified
            # bytes, and a truncated or altered file raises before any frame exists.
            return pl.read_csv(plaintext, **read_options)


def _check_content(source: BinaryIO, wanted: str) -> None:
    start = source.tell()
    found = inspect(source).content_type
    source.seek(start)
    _whole_file_io.check_content_type(found, wanted, readers=_READERS)


def _decrypt_to_memory(
    source: BinaryIO,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    progress: bool | None,
    label: str,
) -> Any:
    """The verified plaintext, as something polars reads: from Arrow's memory pool when
    pyarrow is there (it reuses freed memory, where a fresh buffer this big costs more in
    page faults than the decryption), else ``bytes``."""
    if _has_pyarrow():
        import pyarrow as pa

        buffer, size = decrypt_whole(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            allocate=pa.allocate_buffer,
            progress=progress,
            label=label,
        )
        return pa.BufferReader(buffer.slice(0, size))
    plain, size = decrypt_whole(
        source,
        kms=kms,
        encryption_context=encryption_context,
        allowed_keys=allowed_keys,
        allocate=bytearray,
        progress=progress,
        label=label,
    )
    return bytes(memoryview(plain)[:size])  # polars reads bytes in place, copies the rest


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _from_arrow(table: Any, read_options: Mapping[str, Any]) -> pl.DataFrame:
    if read_options:
        raise ValueError(
            f"{', '.join(sorted(read_options))} not supported for column-level files "
            "(pyarrow reads them); select columns with columns="
        )
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):
        raise AssertionError("kmsnb: internal error: a table converted to a Series")
    return frame
