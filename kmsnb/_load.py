"""``kmsnb.load``: decrypt a file and give back what was saved.

The file says what it holds: column-encrypted Parquet by its magic, a kmsnb file by its
header's content type. Parquet and CSV come back as a table, a pandas DataFrame unless
``into=`` names Arrow or polars (:mod:`kmsnb._tables`), a saved ``str`` as a ``str``,
anything else as ``bytes``. Every read is verified as :func:`kmsnb.open_decrypt`
verifies it: nothing unauthenticated is returned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from kmsnb._context import check_encryption_context
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET, CONTENT_TYPE_TEXT
from kmsnb._progress import check_progress, progress_bar
from kmsnb._tables import Library, check_into, read
from kmsnb._whole_file_io import progress_name, remaining_size
from kmsnb._whole_file_read import plaintext_total
from kmsnb.connection import open_kms
from kmsnb.envelope import inspect, open_decrypt
from kmsnb.kms._base import Kms
from kmsnb.storage import is_url, open_input

__all__ = ["load"]

# Parquet's magic: PARE for an encrypted footer (column mode), PAR1 for a plaintext one.
_PARQUET_MAGICS = (b"PARE", b"PAR1")
# What pandas names a header cell left empty: the index that DataFrame.to_csv writes.
_UNNAMED_INDEX = "Unnamed: 0"


def load(
    path: str | os.PathLike[str],
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    into: Library = "pandas",
    storage_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Any:
    """Decrypt the file ``path`` and return what :func:`kmsnb.save` saved.

    Args:
        path: a kmsnb file, or Parquet with column-level encryption: a local path or an
            fsspec URL (``s3://bucket/key``, ``oss://...``), read by ranged requests.
        kms: a KMS client or URI (:func:`kmsnb.connect`); ``None``: the session's.
        encryption_context: the context the file must carry; ``None`` accepts its own.
        columns: for Parquet and CSV, the columns to read (a Parquet projection reads
            and decrypts only those).
        allowed_keys: the master keys the file may be under (ids, aliases, bare names,
            ARNs); ``None`` accepts the key it names.
        into: the library of the table returned for Parquet and CSV content:
            ``"pandas"`` (a DataFrame), ``"arrow"`` (a ``pyarrow.Table``) or ``"polars"``
            (a polars DataFrame), read by that library as its own Parquet reader reads;
            bytes and text come back as they are whatever it says.
        storage_options: for a URL ``path``, as in pandas.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), judged by the
            plaintext size the header declares (else the payload's; column-level
            Parquet: the file's size), ``True`` always, ``False`` never.
        options: passed to the reader: ``pandas.read_parquet`` / ``pandas.read_csv``; for
            Arrow and polars those of :func:`kmsnb.arrow.read_table`,
            :func:`kmsnb.polars.read_parquet` / ``read_csv``.

    Returns:
        a table for Parquet and CSV content (see ``into``), ``str`` for text saved from a
        ``str``, ``bytes`` otherwise. Into pandas, a CSV whose first header cell is empty (a
        DataFrame's index, as ``df.to_csv`` writes it) gets that column back as the index.

    Raises:
        ValueError: ``columns`` or ``options`` given for a file that is not a table; an
            ``into`` that names no library.
        FormatError, ContextMismatchError, WrongKeyError, KmsError, IntegrityError: see
            :func:`kmsnb.open_decrypt`.
    """
    expected = check_encryption_context(encryption_context)
    library = check_into(into)
    show = check_progress(progress)
    if isinstance(columns, str):
        raise TypeError(f"columns must be a list of names; write columns=[{columns!r}]")
    with _open_source(path, storage_options) as source, open_kms(kms) as client:
        column_mode = source.read(4) in _PARQUET_MAGICS
        source.seek(0)
        # Column-encrypted Parquet has no kmsnb header; read_parquet reads both kinds.
        content_type = CONTENT_TYPE_PARQUET if column_mode else inspect(source).content_type
        source.seek(0)
        # A local file is read by pandas from its path (memory-mapped, in native code);
        # an object through the open, ranged reader.
        table = source if is_url(path) else os.fspath(path)
        common: dict[str, Any] = {
            "kms": client,
            "encryption_context": expected,
            "allowed_keys": allowed_keys,
        }
        if content_type in (CONTENT_TYPE_PARQUET, CONTENT_TYPE_CSV):
            common["progress"] = show
        if library != "pandas" and content_type in (CONTENT_TYPE_PARQUET, CONTENT_TYPE_CSV):
            return read(library, table, content_type, columns=columns, **common, **options)
        if content_type == CONTENT_TYPE_PARQUET:
            from kmsnb.dataframe import read_parquet

            wanted = list(columns) if columns is not None else None
            return read_parquet(table, columns=wanted, **common, **options)
        if content_type == CONTENT_TYPE_CSV:
            from kmsnb.dataframe import read_csv

            if columns is not None:
                options["usecols"] = list(columns)
            frame = read_csv(table, **common, **options)
            if "index_col" not in options and _UNNAMED_INDEX in frame.columns[:1]:
                frame = frame.set_index(_UNNAMED_INDEX)
                frame.index.name = None
            return frame
        if columns is not None or options:
            raise ValueError(
                f"columns= and reader options apply to Parquet and CSV; this file holds "
                f"{content_type or 'bytes'}"
            )
        data = _read_all(source, common, show, f"load {progress_name(path)}")
    return data.decode("utf-8") if content_type == CONTENT_TYPE_TEXT else data


def _read_all(source: BinaryIO, common: dict[str, Any], show: bool | None, label: str) -> bytes:
    """The verified plaintext of ``source``, whole, with a bar counting it as it verifies."""
    size = remaining_size(source)
    with open_decrypt(source, **common) as reader:
        parts: list[bytes] = []
        with progress_bar(plaintext_total(reader.header, size), label, show=show) as advance:
            # As readall does, with a count: only verified runs; an error, not data, if
            # the file was altered or cut short.
            while run := reader.read_verified():
                parts.append(bytes(run))
                advance(len(run))
    return b"".join(parts)


@contextlib.contextmanager
def _open_source(
    path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    if not is_url(path):
        if storage_options:
            raise ValueError("storage_options is only for fsspec URLs (s3://..., oss://...)")
        with open(path, "rb") as local:
            yield local
        return
    with open_input(path, storage_options=storage_options) as remote:
        yield remote
