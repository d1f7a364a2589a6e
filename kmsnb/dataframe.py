"""pandas helpers: the ``df.kms`` accessor, and :func:`read_parquet` / :func:`read_csv`.

Importing this module registers the accessor (``import pandas; import kmsnb`` does it
too)::

    df.kms.to_parquet("sales.parquet.kms", "alias/Apollo/WorkKey")
    df = kmsnb.read_parquet("sales.parquet.kms")

Two ways to encrypt a Parquet file:

- **whole file** (default, ``columns=None``): the Parquet bytes inside a kmsnb file
  (content type ``application/vnd.apache.parquet``). Column names, row counts and
  ``df.attrs`` stay inside the encrypted part; only the header (key id, encryption
  context, content type) is in clear. Any reader needs the key for everything.
- **column level** (``columns=...``): Parquet modular encryption (see :mod:`kmsnb._pme`).
  Every column and the footer are encrypted; the named columns under their own master
  keys, so a reader without the PII key still reads the other columns. The KMS's own
  Encrypt wraps each key, so pyarrow (:class:`ParquetKmsClient`, loaded on first access,
  or a KMS client of its own) and Spark read these files (``docs/column-keys.md``);
  ``uniform=True`` puts every column under the footer's key (:mod:`kmsnb.duckdb`).

CSV is whole-file only and lossy, as CSV is: dtypes, categoricals, time zones beyond the
text, nullable types and the index (unless read back with ``index_col=0``) are not kept.
Use Parquet to round-trip a DataFrame.

No plaintext ever touches a disk. Writing, the Parquet or CSV bytes go to the envelope
encryptor: the first :data:`SIZED_WRITE_LIMIT` bytes are held in memory so that a small
file's exact size is known (which lets a :class:`~kmsnb.kms.CachingKms` reuse a data key,
as the ESDK does only for sized messages); beyond that the rest streams through. The
ciphertext goes to an unnamed file in the destination's folder, fsynced and named only when
complete (see :mod:`kmsnb._files`); for remote fsspec URLs it is assembled in memory (the
file's size) and stored in one call once complete.

Reading Parquet needs a seekable file, so the verified plaintext of a whole-file Parquet
file is held in memory: about the Parquet file's size, on top of the DataFrame. With
``columns=`` it is read through a seekable decrypting reader instead, which decrypts only
the chunks holding the footer and those columns (``docs/FORMAT.md``, "Random access"). CSV
streams into pandas, which sees only authenticated chunks and gets an error, not a
DataFrame, if the file was truncated or altered.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from kmsnb._files import atomic_output
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET, MAGIC
from kmsnb._pme_footer import read_tail
from kmsnb.envelope import (
    EncryptWriter,
    inspect,
    open_decrypt,
    open_decrypt_seekable,
    open_encrypt,
)
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms, canonical_context, wipe

if TYPE_CHECKING:
    import pyarrow as pa
    from _typeshed import ReadableBuffer

__all__ = [
    "SIZED_WRITE_LIMIT",
    "KmsAccessor",
    "read_csv",
    "read_parquet",
    "to_csv",
    "to_parquet",
]

#: Plaintext bytes held in memory before a write starts streaming (see the docstring).
SIZED_WRITE_LIMIT = 64 * 1024 * 1024

PathOrFile = str | os.PathLike[str] | BinaryIO

_CSV_READ_SIZE = 1 << 20  # pandas asks for 256 KiB at a time; decrypt in bigger steps
_PARQUET_MAGIC = b"PAR1"
_PME_MAGIC = b"PARE"  # Parquet with an encrypted footer
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z0-9+.\-]+)*://")
_CONTENT_NAMES = {CONTENT_TYPE_PARQUET: "Parquet", CONTENT_TYPE_CSV: "CSV"}
_READERS = {CONTENT_TYPE_PARQUET: "kmsnb.read_parquet", CONTENT_TYPE_CSV: "kmsnb.read_csv"}


def __getattr__(name: str) -> Any:
    # pyarrow loads only when column-level encryption is used.
    if name == "ParquetKmsClient":
        from kmsnb._pme import ParquetKmsClient

        return ParquetKmsClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- defaults and checks ----------------------------------------------------------------------


def _resolve_kms(kms: Kms | None) -> Kms:
    if kms is not None:
        return kms
    from kmsnb import session

    return session.get_kms()


def _resolve_key(key_id: str | None) -> str:
    if key_id is None:
        from kmsnb import session

        key_id = session.get_default_key()
        if key_id is None:
            raise ValueError(
                "no key_id given and no default key set; pass key_id='alias/...' or call "
                "kmsnb.session.set_default_key('alias/...')"
            )
    if not isinstance(key_id, str):
        raise TypeError(f"key_id must be str, not {type(key_id).__name__}")
    if not key_id:
        raise ValueError("key_id must not be empty")
    return key_id


def _check_frame(df: object) -> pd.DataFrame:
    if isinstance(df, pd.Series):
        raise TypeError("expected a DataFrame, got a Series; convert it with series.to_frame()")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, not {type(df).__name__}")
    return df


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


# -- where the bytes go -------------------------------------------------------------------


def _is_url(path: object) -> bool:
    return isinstance(path, str) and _URL.match(path) is not None


def _url_to_fs(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec.core

    return fsspec.core.url_to_fs(url, **dict(storage_options or {}))  # type: ignore[no-any-return]


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _check_storage_options(path: object, storage_options: Mapping[str, Any] | None) -> None:
    if storage_options is not None and not _is_url(path):
        raise ValueError(
            "storage_options is only for fsspec URLs (s3://..., memory://...), "
            "not for local paths or file objects"
        )


@contextlib.contextmanager
def _open_output(
    path: PathOrFile, *, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A binary file for the ciphertext, that becomes ``path`` only if the block completes."""
    _check_storage_options(path, storage_options)
    if callable(getattr(path, "write", None)):
        _check_binary(path)
        yield path  # type: ignore[misc]  # the caller's file: atomicity is theirs
    elif _is_url(path):
        fs, fs_path = _url_to_fs(str(path), storage_options)
        if _is_local(fs):
            with atomic_output(fs_path, overwrite=overwrite) as output:
                yield output
        else:
            with _remote_output(fs, fs_path, overwrite=overwrite) as output:
                yield output
    elif isinstance(path, str | os.PathLike):
        with atomic_output(path, overwrite=overwrite) as output:
            yield output
    else:
        raise TypeError(
            f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
        )


def _check_binary(fileobj: object) -> None:
    if isinstance(fileobj, io.TextIOBase):
        raise TypeError(
            f"path must be a binary file (open it with 'rb' or 'wb', or use io.BytesIO), "
            f"not a text file ({type(fileobj).__name__})"
        )


@contextlib.contextmanager
def _remote_output(fs: Any, fs_path: str, *, overwrite: bool) -> Iterator[BinaryIO]:
    # Object stores have no rename, and fsspec backends differ on deferring a commit
    # (memory:// and others write through at open), so the ciphertext is assembled in
    # memory and stored in one call once complete: a failure stores nothing.
    if not overwrite and fs.exists(fs_path):
        raise FileExistsError(f"{fs_path} exists; pass overwrite=True to replace it")
    ciphertext = io.BytesIO()
    yield ciphertext
    fs.pipe_file(fs_path, ciphertext.getvalue())


@contextlib.contextmanager
def _open_input(
    path: PathOrFile, *, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    _check_storage_options(path, storage_options)
    if callable(getattr(path, "read", None)):
        _check_binary(path)
        yield path  # type: ignore[misc]
    elif _is_url(path):
        fs, fs_path = _url_to_fs(str(path), storage_options)
        with fs.open(fs_path, "rb") as source:
            yield source
    elif isinstance(path, str | os.PathLike):
        with open(path, "rb") as source:
            yield source
    else:
        raise TypeError(
            f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
        )


def _local_path(path: PathOrFile, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``path``, if it has one."""
    if isinstance(path, str | os.PathLike) and not _is_url(path):
        return os.fspath(path)
    if _is_url(path):
        fs, fs_path = _url_to_fs(str(path), storage_options)
        if _is_local(fs):
            return str(fs_path)
    return None


# -- whole-file mode -------------------------------------------------------------------------


class _PlaintextSink(io.RawIOBase):
    """Where pyarrow or pandas write plaintext: into the envelope encryptor, nowhere else.

    The first ``limit`` bytes wait in memory; if the serialiser finishes by then, the
    message is encrypted with its size known, else the encryptor starts (size unknown)
    and the rest streams. ``close()`` from a serialiser is harmless: only :meth:`finish`
    writes the final chunk, and :meth:`abort` leaves the output unreadable.
    """

    def __init__(
        self,
        output: BinaryIO,
        key_id: str,
        *,
        kms: Kms,
        encryption_context: Mapping[str, str],
        content_type: str,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self._output = output
        self._key_id = key_id
        self._kms = kms
        self._context = encryption_context
        self._content_type = content_type
        self._limit = SIZED_WRITE_LIMIT if limit is None else limit
        # Held as the serialiser wrote it, one copy per write: joining into one growing
        # buffer would copy it several times over.
        self._held: list[bytearray] = []
        self._held_size = 0
        self._writer: EncryptWriter | None = None
        self._position = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self._writer is not None:
            self._writer.write(view)
        else:
            self._held.append(bytearray(view))
            self._held_size += size
            if self._held_size > self._limit:
                self._start(plaintext_size=None)
        self._position += size
        return size

    def _start(self, *, plaintext_size: int | None) -> None:
        writer = open_encrypt(
            self._output,
            self._key_id,
            kms=self._kms,
            encryption_context=self._context,
            content_type=self._content_type,
            plaintext_size=plaintext_size,
        )
        self._writer = writer
        for piece in self._held:
            writer.write(piece)
        self._drop_held()

    def _drop_held(self) -> None:
        for piece in self._held:
            wipe(piece)
        self._held = []
        self._held_size = 0

    def finish(self) -> None:
        """Encrypt what is held, write the final chunk."""
        if self._writer is None:
            self._start(plaintext_size=self._held_size)
        if self._writer is None:
            raise AssertionError("kmsnb: internal error: no encryptor after start")
        self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        self._drop_held()


def _write_whole_file(
    path: PathOrFile,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str],
    content_type: str,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
    serialize: Callable[[BinaryIO], None],
) -> None:
    with _open_output(path, overwrite=overwrite, storage_options=storage_options) as output:
        sink = _PlaintextSink(
            output,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            content_type=content_type,
        )
        try:
            serialize(sink)  # type: ignore[arg-type]  # a binary file, as far as they care
            sink.finish()
        except BaseException:
            sink.abort()
            raise


def _seekable(source: BinaryIO) -> BinaryIO:
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        return source
    return io.BytesIO(source.read())  # ciphertext only: a pipe or a socket


def _check_content_type(found: str, wanted: str) -> None:
    if found == wanted:
        return
    wanted_name = _CONTENT_NAMES[wanted]
    if found in _CONTENT_NAMES:
        raise FormatError(
            f"this kmsnb file holds {_CONTENT_NAMES[found]}, not {wanted_name}; "
            f"read it with {_READERS[found]}"
        )
    raise FormatError(
        f"this kmsnb file holds {found!r}, not a DataFrame; decrypt it with "
        "kmsnb.decrypt_file or kmsnb.open_decrypt"
    )


def _decrypt_to_memory(
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
) -> pa.Buffer:
    """The verified plaintext of a kmsnb whole-file Parquet file, in one Arrow buffer."""
    import pyarrow as pa

    start = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(start)
    reader = open_decrypt(
        source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    )
    with reader:
        declared = reader.header.plaintext_size
        # The plaintext is never longer than the payload, so one allocation suffices. It
        # comes from Arrow's pool, which reuses freed memory: a fresh bytearray this big
        # costs more in page faults than the decryption does. It is freed, not zeroed:
        # Arrow may keep slices of it in the table, and the DataFrame holds the same data.
        capacity = declared if declared is not None else end - start - reader.header.size
        buffer = pa.allocate_buffer(capacity + 1)  # a spare byte, to see the end of the data
        view = memoryview(buffer).cast("B")
        filled = 0
        while count := reader.readinto(view[filled:]):
            filled += count
            if filled == len(view):
                raise AssertionError("kmsnb: internal error: plaintext longer than payload")
    # readinto returned 0: the final chunk has verified.
    return buffer.slice(0, filled)


# -- Parquet --------------------------------------------------------------------------------


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


def _leaf_paths(table: pa.Table, write_kwargs: Mapping[str, Any]) -> list[str]:
    """The Parquet column paths pyarrow will write (PME names columns by them)."""
    import pyarrow.parquet as pq

    probe = io.BytesIO()
    pq.write_table(table.schema.empty_table(), probe, **write_kwargs)
    schema = pq.read_metadata(io.BytesIO(probe.getvalue())).schema
    return [schema.column(i).path for i in range(len(schema))]


def to_parquet(
    df: pd.DataFrame,
    path: PathOrFile,
    key_id: str | None = None,
    *,
    kms: Kms | None = None,
    encryption_context: Mapping[str, str] | None = None,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    uniform: bool = False,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    **pandas_kwargs: Any,
) -> None:
    """Write ``df`` as encrypted Parquet (also ``df.kms.to_parquet``).

    Args:
        df: the DataFrame.
        path: a local path, an fsspec URL (``s3://``, ``memory://``...) or a binary file.
        key_id: the master key; ``None`` uses ``kmsnb.session.get_default_key()``.
        kms: the KMS; ``None`` uses ``kmsnb.session.get_kms()``.
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
        pandas_kwargs: as for ``DataFrame.to_parquet`` (``index``, ``compression``,
            ``schema``) and, beyond them, ``pyarrow.parquet.write_table``.

    Raises:
        TypeError: ``df`` is not a DataFrame, or holds values Parquet cannot store.
        ValueError: no key, an unknown column in ``columns``, an unsupported option.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        KmsError: the KMS refused (a disabled or unknown key: ``KmsAccessDeniedError``).
        ImportError: ``columns`` given, but pyarrow lacks Parquet modular encryption.
    """
    import pyarrow.parquet as pq

    df = _check_frame(df)
    key_id = _resolve_key(key_id)
    context = canonical_context(encryption_context)
    table, write_kwargs = _to_arrow(df, pandas_kwargs)
    kms = _resolve_kms(kms)
    if columns is None and not uniform:
        _write_whole_file(
            path,
            key_id,
            kms=kms,
            encryption_context=context,
            content_type=CONTENT_TYPE_PARQUET,
            overwrite=overwrite,
            storage_options=storage_options,
            serialize=lambda sink: pq.write_table(table, sink, **write_kwargs),
        )
        return
    from kmsnb import _pme, _pme_io

    _pme.check_support()
    with _pme.translated_errors():
        table, properties = _pme_io.prepare_write(
            table,
            _leaf_paths(table, write_kwargs),
            key_id,
            kms=kms,
            encryption_context=context,
            columns=columns,
            uniform=uniform,
        )
        with _open_output(path, overwrite=overwrite, storage_options=storage_options) as out:
            pq.write_table(table, out, encryption_properties=properties, **write_kwargs)


def read_parquet(
    path: PathOrFile,
    *,
    kms: Kms | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    mode: Literal["file", "columns"] | None = None,
    allowed_keys: Iterable[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a DataFrame that :func:`to_parquet` wrote, in either mode.

    Args:
        path: a local path, an fsspec URL or a binary file.
        kms: the KMS; ``None`` uses ``kmsnb.session.get_kms()``.
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
    kms = _resolve_kms(kms)
    with _open_input(path, storage_options=storage_options) as opened:
        source = _seekable(opened)
        start = source.tell()
        magic = source.read(len(MAGIC))
        source.seek(start)
        # PAR1 may still be column-encrypted, with a plaintext (signed) footer.
        if magic.startswith(_PME_MAGIC) or (
            magic.startswith(_PARQUET_MAGIC) and read_tail(source) is not None
        ):
            _expect_mode(mode, "columns")
            from kmsnb import _pme, _pme_io

            _pme.check_support()
            local = _local_path(path, storage_options)
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
            )
        if magic == MAGIC:
            _expect_mode(mode, "file")
            _check_content_type(inspect(source).content_type, CONTENT_TYPE_PARQUET)
            source.seek(start)
            if columns is not None:
                # A projection reads the footer and its own column chunks: decrypt only
                # those chunks (docs/FORMAT.md, "Random access").
                with open_decrypt_seekable(
                    source,
                    kms=kms,
                    encryption_context=encryption_context,
                    allowed_keys=allowed_keys,
                ) as reader:
                    return pd.read_parquet(reader, columns=columns, **kwargs)
            plaintext = _decrypt_to_memory(
                source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
            )
            return pd.read_parquet(pa.BufferReader(plaintext), columns=columns, **kwargs)
        if magic.startswith(_PARQUET_MAGIC):
            raise FormatError(
                "this is a plain, unencrypted Parquet file; read it with "
                "pandas.read_parquet (and encrypt it with df.kms.to_parquet)"
            )
        raise FormatError("not an encrypted DataFrame (neither a kmsnb file nor Parquet)")


def _expect_mode(mode: str | None, found: str) -> None:
    if mode is not None and mode != found:
        names = {"file": "whole-file encrypted", "columns": "column-encrypted"}
        raise FormatError(
            f"this Parquet file is {names[found]}, not {names[mode]}; "
            f"read it with mode={found!r} or mode=None"
        )


# -- CSV ------------------------------------------------------------------------------------


def to_csv(
    df: pd.DataFrame,
    path: PathOrFile,
    key_id: str | None = None,
    *,
    kms: Kms | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    **pandas_kwargs: Any,
) -> None:
    """Write ``df`` as encrypted CSV (also ``df.kms.to_csv``); lossy, as CSV is.

    Only what CSV text holds comes back: dtypes are re-inferred, and categoricals, time
    zones, nullable types and the index (unless read with ``index_col=0``) are lost.
    Prefer :func:`to_parquet` to round-trip a DataFrame.

    Args:
        pandas_kwargs: as for ``DataFrame.to_csv`` (``index``, ``sep``, ``encoding``...).
        Others: as for :func:`to_parquet`.

    Raises:
        TypeError: ``df`` is not a DataFrame, or holds complex numbers or bytes.
        ValueError, FileExistsError, KmsError: as for :func:`to_parquet`.
    """
    df = _check_frame(df)
    for name in ("path_or_buf", "mode"):
        if name in pandas_kwargs:
            raise ValueError(f"{name} is not supported here; kmsnb writes one whole file")
    _check_csv_dtypes(df)
    key_id = _resolve_key(key_id)
    context = canonical_context(encryption_context)
    kms = _resolve_kms(kms)
    _write_whole_file(
        path,
        key_id,
        kms=kms,
        encryption_context=context,
        content_type=CONTENT_TYPE_CSV,
        overwrite=overwrite,
        storage_options=storage_options,
        serialize=lambda sink: df.to_csv(sink, **pandas_kwargs),
    )


def read_csv(
    path: PathOrFile,
    *,
    kms: Kms | None = None,
    encryption_context: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    allowed_keys: Iterable[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a DataFrame that :func:`to_csv` wrote; the plaintext streams into pandas.

    Args:
        kwargs: as for ``pandas.read_csv`` (``index_col``, ``dtype``, ``parse_dates``...).
        Others: as for :func:`read_parquet`.

    Raises:
        FormatError: not a kmsnb file, or it holds Parquet.
        ContextMismatchError, WrongKeyError, KmsError, IntegrityError: see
            :func:`kmsnb.open_decrypt`.
    """
    kms = _resolve_kms(kms)
    with _open_input(path, storage_options=storage_options) as opened:
        source = _seekable(opened)
        start = source.tell()
        magic = source.read(len(MAGIC))
        source.seek(start)
        if magic.startswith((_PME_MAGIC, _PARQUET_MAGIC)):
            raise FormatError("this is a Parquet file, not encrypted CSV; use kmsnb.read_parquet")
        _check_content_type(inspect(source).content_type, CONTENT_TYPE_CSV)
        source.seek(start)
        reader = open_decrypt(
            source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
        )
        with reader:
            return pd.read_csv(io.BufferedReader(reader, _CSV_READ_SIZE), **kwargs)


# -- the accessor ---------------------------------------------------------------------------


@pd.api.extensions.register_dataframe_accessor("kms")
class KmsAccessor:
    """``df.kms``: write the DataFrame encrypted with a KMS key.

    pandas 3 makes a new accessor on every access, so it holds nothing but the frame;
    the KMS and the default key live in :mod:`kmsnb.session`.
    """

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        if not isinstance(pandas_obj, pd.DataFrame):
            raise AttributeError("the kms accessor is only for DataFrames")
        self._df = pandas_obj

    def to_parquet(
        self,
        path: PathOrFile,
        key_id: str | None = None,
        *,
        kms: Kms | None = None,
        encryption_context: Mapping[str, str] | None = None,
        columns: Sequence[str] | Mapping[str, str] | None = None,
        uniform: bool = False,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        **pandas_kwargs: Any,
    ) -> None:
        """Write the DataFrame as encrypted Parquet; see :func:`kmsnb.dataframe.to_parquet`."""
        to_parquet(
            self._df,
            path,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            columns=columns,
            uniform=uniform,
            overwrite=overwrite,
            storage_options=storage_options,
            **pandas_kwargs,
        )

    def to_csv(
        self,
        path: PathOrFile,
        key_id: str | None = None,
        *,
        kms: Kms | None = None,
        encryption_context: Mapping[str, str] | None = None,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        **pandas_kwargs: Any,
    ) -> None:
        """Write the DataFrame as encrypted CSV (lossy); see :func:`kmsnb.dataframe.to_csv`."""
        to_csv(
            self._df,
            path,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            overwrite=overwrite,
            storage_options=storage_options,
            **pandas_kwargs,
        )
