"""``kmsnb.save``: encrypt a value into a file, whatever the value is, and say what was written.

One verb for every face (Python, ``%%encrypt``, ``kmsnb encrypt``, the widgets): a table
(a pandas or polars DataFrame, a pyarrow Table: :mod:`kmsnb._tables`) becomes encrypted
Parquet (or CSV), written by its own library, ``bytes`` are saved as they are, a ``str`` as
UTF-8 text that :func:`kmsnb.load` gives back as a ``str``, and a binary file object is
streamed. The receipt, :class:`Saved`, describes the ciphertext (key, sizes, digest) and
never holds the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from kmsnb._context import check_encryption_context
from kmsnb._defaults import resolve_key
from kmsnb._format.header import CONTENT_TYPE_BYTES, CONTENT_TYPE_TEXT
from kmsnb._inspect import inspect
from kmsnb._keynames import ALIAS_PREFIX
from kmsnb._progress import check_progress, progress_bar
from kmsnb._render import Rendered, Rows, cell_text, format_size
from kmsnb._tables import csv_losses, library_of, write
from kmsnb.connection import open_kms
from kmsnb.envelope import FileInfo, open_encrypt
from kmsnb.kms._base import Kms
from kmsnb.storage import is_url, open_output

if TYPE_CHECKING:
    from kmsnb._pme_inspect import ParquetInfo

__all__ = ["FORMATS", "Content", "Saved", "save"]

Content = Literal["parquet", "csv", "bytes", "text"]
#: What ``format=`` may name.
FORMATS: tuple[str, ...] = ("parquet", "csv", "bytes", "text")

_SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_STREAM_STEP_SIZE = 1024 * 1024

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Saved(Rendered):
    """The receipt of :func:`kmsnb.save`: what was written where, never the data.

    Attributes:
        path: the file (or object URL) written.
        key_id: the master key, as the KMS named it (for column mode: as the footer does).
        key_alias: the alias the key was asked for by, when it was one.
        key_version: the master key's version (``None`` in column mode, where each
            wrapped key names its own).
        content: ``"parquet"``, ``"csv"``, ``"bytes"`` or ``"text"``.
        shape: ``(rows, columns)`` of a table (a pandas or polars DataFrame, an Arrow
            Table), else ``None``.
        plaintext_size: bytes of plaintext, when known.
        ciphertext_size: the file's size in bytes.
        sha256: the file's SHA-256, hex: what to compare a copy with.
        encryption_context: the context bound to the key (not secret).
        column_mode: Parquet with column-level encryption (``columns=``).
        notes: what the format could not keep (CSV), in words.
    """

    path: str
    key_id: str
    key_alias: str | None
    key_version: str | None
    content: Content
    shape: tuple[int, int] | None
    plaintext_size: int | None
    ciphertext_size: int
    sha256: str
    encryption_context: Mapping[str, str] = field(default_factory=dict)
    column_mode: bool = False
    notes: tuple[str, ...] = ()

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        key = self.key_id if self.key_alias is None else f"{self.key_id} ({self.key_alias})"
        if self.shape is not None:
            what = f"table, {self.shape[0]} rows x {self.shape[1]} columns"
        else:
            what = format_size(self.plaintext_size)
        rows = [
            ["path", self.path],
            ["key", key],
            ["key version", self.key_version or "in each wrapped key (column mode)"],
            ["content", self.content + (", column mode" if self.column_mode else "")],
            ["plaintext", what],
            ["ciphertext", format_size(self.ciphertext_size)],
            ["sha256", self.sha256],
        ]
        if self.encryption_context:
            rows.append(["encryption context", cell_text(self.encryption_context)])
        rows.extend(["note", note] for note in self.notes)
        return "saved", None, [[cell_text(name), cell_text(value)] for name, value in rows]

    def __repr__(self) -> str:
        if self.shape is not None:
            shown = f"{self.shape[0]}x{self.shape[1]}"
        else:
            shown = format_size(self.plaintext_size)
        return f"Saved({self.path!r}, {self.content}, {shown}, key={self.key_id!r})"


def save(
    value: object,
    path: StrPath,
    key: str | None = None,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    format: str | None = None,  # the word pandas and the issue use
    columns: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> Saved:
    """Encrypt ``value`` into the file ``path`` under the master key ``key``.

    Args:
        value: a table, saved as Parquet (or CSV): a pandas or polars DataFrame or a
            ``pyarrow.Table``, written by its own library (so its types round-trip as that
            library's Parquet writer keeps them); ``bytes``/``bytearray``/``memoryview``
            (saved as they are), a ``str`` (UTF-8 text, loaded back as ``str``) or a
            binary file open for reading (streamed from where it is).
        path: the local file or the object (``s3://bucket/key``, ``oss://...``) to write;
            it appears only once complete (see :func:`kmsnb.encrypt_file`), an object
            streamed out in parts and published whole at the end.
        key: the master key: an id, ``alias/NAME``, a bare ``NAME`` (``alias/NAME``) or an
            ARN; ``None``: the session's default key (``kmsnb.session.set_default_key``).
        kms: a KMS client or URI (:func:`kmsnb.connect`); ``None``: the session's.
        encryption_context: strings bound to the data key; a reader may demand them.
        format: for a table ``"parquet"`` or ``"csv"``, else from the suffix of
            ``path`` (``.parquet``, ``.pq``, ``.csv``, before any ``.kms``), else Parquet.
            ``"bytes"`` and ``"text"`` only confirm what the value is.
        columns: column-level encryption of a table as Parquet, as
            :func:`kmsnb.dataframe.to_parquet` takes it: ``{"ssn": "alias/pii"}`` or a
            list of columns under ``key``.
        overwrite: replace an existing file; otherwise an object is created only if none
            is there (a conditional create, refereed by the store).
        progress: a progress bar (``tqdm``): ``None`` from the session's threshold
            (:func:`kmsnb._progress.set_progress_threshold`), ``True`` always, ``False``
            never. A table's is judged by its size in memory (as its library's writer
            says: :func:`kmsnb.arrow.write_table`, :func:`kmsnb.dataframe.to_csv`...).
        options: passed to the writer: ``DataFrame.to_parquet``/``to_csv`` options
            (``index``, ``compression``, ``uniform=True``...); for Arrow and polars those of
            :func:`kmsnb.arrow.write_table`, :func:`kmsnb.polars.write_parquet`/``write_csv``.
        storage_options: for a URL ``path``, as in pandas (s3fs's options, or
            :mod:`kmsnb.storage._oss`'s for ``oss://``).

    Returns:
        the receipt, :class:`Saved`.

    Raises:
        TypeError: ``value`` is none of those, or does not fit ``format``.
        ValueError: no key and no default key, an unknown ``format``, options for a value
            that takes none, ``storage_options`` with a local path.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        UnsupportedStorageError: a URL kmsnb cannot write atomically (or whose store is
            not installed), before any KMS call.
        KmsError: the KMS refused (``KmsAccessDeniedError`` for an unknown alias).
    """
    show = check_progress(progress)
    key_id = _key(key)
    context = check_encryption_context(encryption_context)
    destination = _destination(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    frame = _is_dataframe(value)
    if not frame:
        if columns is not None:
            raise TypeError("columns= encrypts the columns of a DataFrame")
        if options:
            raise ValueError(f"options {', '.join(sorted(options))} apply to DataFrames")
    # The destination is opened before the KMS is asked anything: a refused one costs
    # no call, and the bytes are counted and hashed as they go (an object is not re-read).
    with (
        open_kms(kms) as client,
        _digesting_output(destination, overwrite, storage_options) as output,
    ):
        sink, name = cast(BinaryIO, output), _name(destination)
        if frame:
            content, shape, notes = _save_frame(
                value, sink, name, key_id, client, context, format, columns, show, options
            )
            plaintext_size = None
        else:
            content, plaintext_size = _save_stream(
                value, sink, name, key_id, client, context, format, show
            )
            shape, notes = None, ()
    info = inspect(destination, storage_options=storage_options)  # no KMS call
    return _receipt(
        destination, info, output, key_id, content, shape, plaintext_size, context, notes
    )


def _key(key: str | None) -> str:
    return resolve_key(key)


def _destination(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a path, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError("path must be a str or a path of str, not bytes")
    return text


def _name(destination: str) -> str:
    """The last component of a path or URL: what the suffix and the progress bar use."""
    return (
        destination.rstrip("/").rsplit("/", 1)[-1]
        if is_url(destination)
        else Path(destination).name
    )


class _DigestingWriter(io.RawIOBase):
    """Passes bytes on to ``output``, counting and hashing them on the way: the receipt's
    size and SHA-256, without reading the file (or fetching the object) back. Its
    ``name``, the destination's last component, is what a table writer's bar shows."""

    def __init__(self, output: BinaryIO, name: str) -> None:
        super().__init__()
        self._output = output
        self._digest = hashlib.sha256()
        self.size = 0
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._digest.update(view)
        remaining = view
        while remaining:
            remaining = remaining[self._output.write(remaining) :]
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


@contextlib.contextmanager
def _digesting_output(
    destination: str, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> Iterator[_DigestingWriter]:
    with open_output(destination, overwrite=overwrite, storage_options=storage_options) as raw:
        yield _DigestingWriter(raw, _name(destination))


def _is_dataframe(value: object) -> bool:
    """Whether ``value`` is a table: a pandas or polars DataFrame, a pyarrow Table."""
    return library_of(value) is not None


def _frame_format(name: str, format: str | None) -> str:
    if format in ("bytes", "text"):
        raise TypeError(f"a table is saved as parquet or csv, not {format}")
    if format is not None:
        return format
    stem = name.lower().removesuffix(".kms")
    return _SUFFIX_FORMATS.get(Path(stem).suffix, "parquet")


def _save_frame(
    frame: Any,
    output: BinaryIO,
    name: str,
    key_id: str,
    kms: Kms,
    context: Mapping[str, str] | None,
    format: str | None,
    columns: Sequence[str] | Mapping[str, str] | None,
    show: bool | None,
    options: dict[str, Any],
) -> tuple[Content, tuple[int, int], tuple[str, ...]]:
    chosen = _frame_format(name, format)
    shape = (int(frame.shape[0]), int(frame.shape[1]))
    # The output is already open (atomic, exclusive unless overwrite): the writers get it.
    common: dict[str, Any] = {"kms": kms, "encryption_context": context, "progress": show}
    if chosen == "parquet":
        write(frame, output, key_id, format="parquet", columns=columns, **common, **options)
        return "parquet", shape, ()
    if columns is not None or options.get("uniform"):
        raise TypeError("column-level encryption (columns=, uniform=) writes Parquet, not CSV")
    if library_of(frame) == "pandas":
        # The index is left out by default: pandas reads it back as an "Unnamed: 0" column.
        options.setdefault("index", False)
        notes = _csv_losses(frame, keeps_index=bool(options["index"]))
    else:
        notes = csv_losses(frame)
    if notes:
        warnings.warn(
            "CSV keeps only text: " + "; ".join(notes) + "; save as Parquet to keep them",
            UserWarning,
            stacklevel=3,
        )
    write(frame, output, key_id, format="csv", columns=None, **common, **options)
    return "csv", shape, notes


def _csv_losses(frame: Any, *, keeps_index: bool) -> tuple[str, ...]:
    """What a CSV of ``frame`` will not give back, in words (column names, never values)."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    notes: list[str] = []
    changed = [
        f"{name!r} ({dtype})"
        for name, dtype in frame.dtypes.items()
        if dtype.kind in "mM" or isinstance(dtype, pd.CategoricalDtype | pd.DatetimeTZDtype)
    ]
    if changed:
        notes.append(f"column(s) {', '.join(changed)} come back as text or plain types")
    default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.equals(
        pd.RangeIndex(len(frame))
    )
    if not keeps_index and not default_index:
        notes.append("the index is not saved (pass index=True to keep it as a column)")
    return tuple(notes)


def _save_stream(
    value: object,
    output: BinaryIO,
    name: str,
    key_id: str,
    kms: Kms,
    context: Mapping[str, str] | None,
    format: str | None,
    show: bool | None,
) -> tuple[Content, int]:
    if isinstance(value, str):
        _check_format(format, "text", value)
        data: memoryview | None = memoryview(value.encode("utf-8"))
        content: Content = "text"
    elif isinstance(value, bytes | bytearray | memoryview):
        _check_format(format, "bytes", value)
        data, content = memoryview(value).cast("B"), "bytes"
    elif callable(getattr(value, "read", None)):
        _check_format(format, "bytes", value)
        data, content = None, "bytes"
    else:
        raise TypeError(
            f"cannot save a {type(value).__name__}; give a table (a pandas or polars "
            "DataFrame, a pyarrow Table), bytes, str or a binary file open for reading"
        )
    size = len(data) if data is not None else _remaining_size(value)
    content_type = CONTENT_TYPE_TEXT if content == "text" else CONTENT_TYPE_BYTES
    with progress_bar(size, f"save {name}", show=show) as advance:
        writer = open_encrypt(
            output,
            key_id,
            kms=kms,
            encryption_context=context,
            content_type=content_type,
            plaintext_size=size,
        )
        with writer:
            if data is not None:
                for start in range(0, len(data), _STREAM_STEP_SIZE):
                    step = data[start : start + _STREAM_STEP_SIZE]
                    writer.write(step)
                    advance(len(step))
            else:
                _stream(value, writer, advance)  # type: ignore[arg-type]
        written = writer.plaintext_size
    if size is not None and written != size:
        raise AssertionError("kmsnb: internal error: saved size differs from the value's")
    return content, written


def _check_format(format: str | None, content: str, value: object) -> None:
    if format is not None and format != content:
        raise TypeError(f"a {type(value).__name__} is saved as {content}, not {format}")


def _remaining_size(fileobj: Any) -> int | None:
    """Bytes left in a regular file from its position; ``None`` for pipes and the like."""
    try:
        status = os.fstat(fileobj.fileno())
        position = fileobj.tell()
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return max(status.st_size - int(position), 0)


def _stream(source: BinaryIO, writer: Any, advance: Callable[[int], None]) -> None:
    while block := source.read(_STREAM_STEP_SIZE):
        if not isinstance(block, bytes | bytearray | memoryview):
            raise TypeError(
                f"the file must be opened in binary mode ('rb'), it gave a {type(block).__name__}"
            )
        writer.write(block)
        advance(len(block))


def _receipt(
    path: str,
    info: FileInfo | ParquetInfo,
    output: _DigestingWriter,
    key_id: str,
    content: Content,
    shape: tuple[int, int] | None,
    plaintext_size: int | None,
    context: Mapping[str, str] | None,
    notes: tuple[str, ...],
) -> Saved:
    alias = key_id if key_id.startswith(ALIAS_PREFIX) else None
    column_mode = not isinstance(info, FileInfo)
    if isinstance(info, FileInfo):
        found_key, version = info.key_id, info.key_version_id
        plaintext_size = info.plaintext_size if plaintext_size is None else plaintext_size
    else:
        found_key, version = info.footer_key_id, None
    return Saved(
        path=path,
        key_id=found_key,
        key_alias=alias,
        key_version=version,
        content=content,
        shape=shape,
        plaintext_size=plaintext_size,
        ciphertext_size=output.size,
        sha256=output.sha256,
        encryption_context=dict(context or {}),
        column_mode=column_mode,
        notes=notes,
    )
