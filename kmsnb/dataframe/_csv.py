"""Encrypted CSV for pandas: :func:`to_csv` and :func:`read_csv`, whole-file only.

Lossy, as CSV is: dtypes, categoricals, time zones beyond the text, nullable types and the
index (unless read back with ``index_col=0``) are not kept. The plaintext streams into
pandas, which sees only authenticated chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from kmsnb._context import check_encryption_context
from kmsnb._defaults import resolve_key, resolve_kms
from kmsnb._format.header import CONTENT_TYPE_CSV
from kmsnb._pme_inspect import encryption_mode
from kmsnb._progress import check_progress, progress_bar
from kmsnb._whole_file_io import (
    PathOrFile,
    check_content_type,
    open_input,
    progress_name,
    write_whole_file,
)
from kmsnb._whole_file_read import decrypting_stream
from kmsnb.dataframe._checks import check_frame
from kmsnb.dataframe._parquet import READERS
from kmsnb.envelope import inspect
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

#: The buffer between the decrypting reader and pandas, which asks for 256 KiB at a time: a
#: read of whole buffers goes straight from the reader into pandas' bytes, where a buffer
#: larger than the request (1 MiB, before) took every byte through it, one more copy. The
#: reader decrypts 1 MiB steps whatever this is (kmsnb._format.payload.DEFAULT_BUFFER_SIZE).
_CSV_READ_SIZE = 128 << 10
#: Bytes a cell counts for in the estimate that decides on a bar (a float, a pointer).
_CELL_SIZE = 8


def _check_csv_dtypes(df: pd.DataFrame) -> None:
    """Refuse values CSV would write as text that no reader turns back into them."""
    index = df.index
    series: list[tuple[object, pd.Series[Any] | pd.Index[Any]]] = [
        (name, index.get_level_values(i)) for i, name in enumerate(index.names)
    ]
    series += list(df.items())
    for name, values in series:
        if values.dtype.kind == "c":
            raise TypeError(
                f"column {name!r} holds complex numbers, which CSV cannot round-trip; "
                "use df.kms.to_parquet, or split it into real and imaginary columns"
            )
        if values.dtype == object:  # str and other extension dtypes cannot hold bytes
            inferred = pd.api.types.infer_dtype(values, skipna=True)
            if inferred == "bytes" or (
                inferred.startswith("mixed") and any(isinstance(v, bytes) for v in values)
            ):
                raise TypeError(
                    f"column {name!r} holds bytes, which CSV cannot round-trip; "
                    "use df.kms.to_parquet, or decode them to str first"
                )


def to_csv(
    df: pd.DataFrame,
    path: PathOrFile,
    key_id: str | None = None,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **pandas_kwargs: Any,
) -> None:
    """Write ``df`` as encrypted CSV (also ``df.kms.to_csv``); lossy, as CSV is.

    Only what CSV text holds comes back: dtypes are re-inferred, and categoricals, time
    zones, nullable types and the index (unless read with ``index_col=0``) are lost.
    Prefer :func:`to_parquet` to round-trip a DataFrame.

    Args:
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            frame's cells at 8 bytes each (its shallow size: a string counts as a
            pointer), ``True`` always, ``False`` never. It counts the CSV bytes encrypted.
        pandas_kwargs: as for ``DataFrame.to_csv`` (``index``, ``sep``, ``encoding``...).
        Others: as for :func:`to_parquet`.

    Raises:
        TypeError: ``df`` is not a DataFrame, or holds complex numbers or bytes.
        ValueError, FileExistsError, KmsError: as for :func:`to_parquet`.
    """
    df = check_frame(df)
    show = check_progress(progress)
    for name in ("path_or_buf", "mode"):
        if name in pandas_kwargs:
            raise ValueError(f"{name} is not supported here; kmsnb writes one whole file")
    _check_csv_dtypes(df)
    key_id = resolve_key(key_id)
    context = check_encryption_context(encryption_context) or {}
    kms = resolve_kms(kms)
    # Eight bytes a cell, as a shallow count (a string as its pointer) would say, without
    # pandas' memory_usage (0.2 ms, as much as a small write; a deep one reads every string).
    estimate = df.size * _CELL_SIZE
    with progress_bar(estimate, f"encrypt {progress_name(path)}", show=show) as advance:
        write_whole_file(
            path,
            key_id,
            kms=kms,
            encryption_context=context,
            content_type=CONTENT_TYPE_CSV,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: df.to_csv(sink, **pandas_kwargs),
            advance=advance,
        )


def read_csv(
    path: PathOrFile,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    allowed_keys: Iterable[str] | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a DataFrame that :func:`to_csv` wrote; the plaintext streams into pandas.

    Args:
        kwargs: as for ``pandas.read_csv`` (``index_col``, ``dtype``, ``parse_dates``...).
        Others: as for :func:`read_parquet` (``progress``: judged by the plaintext size
            the header declares, else the payload's).

    Raises:
        FormatError: not a kmsnb file, or it holds Parquet.
        ContextMismatchError, WrongKeyError, KmsError, IntegrityError: see
            :func:`kmsnb.open_decrypt`.
    """
    show = check_progress(progress)
    kms = resolve_kms(kms)
    with open_input(path, storage_options=storage_options) as source:
        if encryption_mode(source) != "file":
            raise FormatError("this is a Parquet file, not encrypted CSV; use kmsnb.read_parquet")
        start = source.tell()
        check_content_type(inspect(source).content_type, CONTENT_TYPE_CSV, readers=READERS)
        source.seek(start)
        with decrypting_stream(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            buffer_size=_CSV_READ_SIZE,
            progress=show,
            label=f"decrypt {progress_name(path)}",
        ) as plaintext:
            return pd.read_csv(plaintext, **kwargs)
