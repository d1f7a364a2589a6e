"""Where the bytes of :mod:`kmsnb.arrow`, :mod:`kmsnb.polars` and the ``kmsnb::`` file system
come from and go to, without pandas: the KMS and key defaults, the encrypting plaintext
sink, atomic outputs, seekable inputs, and what kind of file a source is.

The rules are those of :mod:`kmsnb.dataframe` (whose private helpers of the same names these
mirror, so that an engine never imports pandas): no plaintext on disk; the first
:data:`SIZED_WRITE_LIMIT` plaintext bytes are held so that a small file's size is known
(a :class:`~kmsnb.kms.CachingKms` may then reuse a data key), the rest streams; the
ciphertext becomes the destination only once complete (:func:`kmsnb._files.atomic_output`
locally; for remote fsspec URLs assembled in memory and stored in one call).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

from kmsnb._files import atomic_output
from kmsnb._format.header import CONTENT_TYPE_BYTES, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET, MAGIC
from kmsnb._pme_footer import read_tail
from kmsnb.envelope import EncryptWriter, open_decrypt, open_encrypt
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "SIZED_WRITE_LIMIT",
    "PathOrFile",
    "PlaintextSink",
    "check_content_type",
    "content_type_for_name",
    "decrypt_whole",
    "kind_of",
    "local_path",
    "open_input",
    "open_output",
    "resolve_key",
    "resolve_kms",
    "write_from_memory",
    "write_plaintext",
    "write_whole_file",
]

#: Plaintext bytes held in memory before a write starts streaming (as kmsnb.dataframe).
SIZED_WRITE_LIMIT = 64 * 1024 * 1024

PathOrFile = str | os.PathLike[str] | BinaryIO
Kind = Literal["file", "columns", "plain"]
B = TypeVar("B")

_PARQUET_MAGIC = b"PAR1"
_PME_MAGIC = b"PARE"  # Parquet with an encrypted footer
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z0-9+.\-]+)*://")
_CONTENT_NAMES = {CONTENT_TYPE_PARQUET: "Parquet", CONTENT_TYPE_CSV: "CSV"}
_SUFFIX_CONTENT = {
    ".parquet": CONTENT_TYPE_PARQUET,
    ".pq": CONTENT_TYPE_PARQUET,
    ".csv": CONTENT_TYPE_CSV,
}


def resolve_kms(kms: Kms | str | None) -> Kms:
    """``kms`` itself, a client for a KMS URI, or the session's KMS for ``None``."""
    if isinstance(kms, str):
        import kmsnb

        return kmsnb.connect(kms)
    if kms is not None:
        return kms
    from kmsnb import session

    return session.get_kms()


def resolve_key(key_id: str | None) -> str:
    """``key_id``, or the session's default key for ``None``."""
    if key_id is None:
        from kmsnb import session

        key_id = session.get_default_key()
        if key_id is None:
            raise ValueError(
                "no key given and no default key set; pass key='alias/...' or call "
                "kmsnb.session.set_default_key('alias/...')"
            )
    if not isinstance(key_id, str):
        raise TypeError(f"key must be str, not {type(key_id).__name__}")
    if not key_id:
        raise ValueError("key must not be empty")
    return key_id


def content_type_for_name(name: str) -> str:
    """The content type a file's name implies: ``x.parquet.kms`` holds Parquet."""
    stem = name[: -len(".kms")] if name.endswith(".kms") else name
    return _SUFFIX_CONTENT.get(os.path.splitext(stem)[1].lower(), CONTENT_TYPE_BYTES)


def check_content_type(found: str, wanted: str, *, readers: Mapping[str, str]) -> None:
    """Refuse a whole-file kmsnb file that holds something else than ``wanted``."""
    if found == wanted:
        return
    if found in readers:
        raise FormatError(
            f"this kmsnb file holds {_CONTENT_NAMES[found]}, not {_CONTENT_NAMES[wanted]}; "
            f"read it with {readers[found]}"
        )
    raise FormatError(
        f"this kmsnb file holds {found!r}, not a table; decrypt it with "
        "kmsnb.decrypt_file or kmsnb.open_decrypt"
    )


# -- where the bytes come from --------------------------------------------------------------


def _is_url(path: object) -> bool:
    return isinstance(path, str) and _URL.match(path) is not None


def _url_to_fs(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec.core

    return fsspec.core.url_to_fs(url, **dict(storage_options or {}))  # type: ignore[no-any-return]


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _check_storage_options(path: object, storage_options: Mapping[str, Any] | None) -> None:
    if isinstance(path, str) and path.startswith("kmsnb::"):
        # Through the kmsnb:: file system these readers would see plaintext, and call it
        # unencrypted; they decrypt (and encrypt) themselves.
        raise ValueError(
            f"kmsnb's readers and writers decrypt and encrypt themselves: drop 'kmsnb::' "
            f"from {path!r} (it is for other libraries' readers)"
        )
    if storage_options is not None and not _is_url(path):
        raise ValueError(
            "storage_options is only for fsspec URLs (s3://..., memory://...), "
            "not for local paths or file objects"
        )


def _check_binary(fileobj: object) -> None:
    if isinstance(fileobj, io.TextIOBase):
        raise TypeError(
            "path must be a binary file (open it with 'rb' or 'wb', or use io.BytesIO), "
            f"not a text file ({type(fileobj).__name__})"
        )


def local_path(path: PathOrFile, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``path``, if it has one."""
    if isinstance(path, str | os.PathLike) and not _is_url(path):
        return os.fspath(path)
    if _is_url(path):
        fs, fs_path = _url_to_fs(str(path), storage_options)
        if _is_local(fs):
            return str(fs_path)
    return None


@contextlib.contextmanager
def open_input(
    path: PathOrFile, *, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A seekable binary file of ``path``'s bytes (a pipe's are read into memory)."""
    _check_storage_options(path, storage_options)
    if callable(getattr(path, "read", None)):
        _check_binary(path)
        yield _seekable(path)  # type: ignore[arg-type]
    elif _is_url(path):
        fs, fs_path = _url_to_fs(str(path), storage_options)
        with fs.open(fs_path, "rb") as source:
            yield _seekable(source)
    elif isinstance(path, str | os.PathLike):
        with open(path, "rb") as source:
            yield source
    else:
        raise TypeError(
            f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
        )


def _seekable(source: BinaryIO) -> BinaryIO:
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        return source
    return io.BytesIO(source.read())  # ciphertext only: a pipe or a socket


def kind_of(source: BinaryIO) -> Kind:
    """How a seekable source is encrypted: a whole kmsnb file, column-level, or not at all.

    Raises:
        FormatError: neither a kmsnb file nor Parquet.
    """
    start = source.tell()
    magic = source.read(len(MAGIC))
    source.seek(start)
    if magic == MAGIC:
        return "file"
    # PAR1 may still be column-encrypted, with a plaintext (signed) footer.
    if magic.startswith(_PME_MAGIC) or (
        magic.startswith(_PARQUET_MAGIC) and read_tail(source) is not None
    ):
        return "columns"
    if magic.startswith(_PARQUET_MAGIC):
        return "plain"
    raise FormatError("not an encrypted table (neither a kmsnb file nor Parquet)")


# -- where the bytes go ---------------------------------------------------------------------


@contextlib.contextmanager
def open_output(
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
            with remote_output(fs, fs_path, overwrite=overwrite) as output:
                yield output
    elif isinstance(path, str | os.PathLike):
        with atomic_output(path, overwrite=overwrite) as output:
            yield output
    else:
        raise TypeError(
            f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
        )


@contextlib.contextmanager
def remote_output(fs: Any, fs_path: str, *, overwrite: bool) -> Iterator[BinaryIO]:
    """A file whose bytes are stored at ``fs_path`` in one call once the block completes."""
    # Object stores have no rename, and fsspec backends differ on deferring a commit
    # (memory:// and others write through at open), so the ciphertext is assembled in
    # memory and stored in one call once complete: a failure stores nothing.
    if not overwrite and fs.exists(fs_path):
        raise FileExistsError(f"{fs_path} exists; pass overwrite=True to replace it")
    ciphertext = io.BytesIO()
    yield ciphertext
    fs.pipe_file(fs_path, ciphertext.getvalue())


def _zero(buffer: bytearray | memoryview) -> None:
    """Overwrite ``buffer`` with zeros in place, as ``wipe`` does, without allocating a
    buffer of zeros as large (the held plaintext runs to :data:`SIZED_WRITE_LIMIT`)."""
    if buffer:
        ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))


class PlaintextSink(io.RawIOBase):
    """Where a serialiser writes plaintext: into the envelope encryptor, nowhere else.

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
        encryption_context: Mapping[str, str] | None,
        content_type: str,
        limit: int = SIZED_WRITE_LIMIT,
    ) -> None:
        super().__init__()
        self._output = output
        self._key_id = key_id
        self._kms = kms
        self._context = encryption_context
        self._content_type = content_type
        self._limit = limit
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
            _zero(piece)
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
        """Leave the output without its final chunk (unreadable), and wipe what is held."""
        if self._writer is not None:
            self._writer.abort()
        self._drop_held()


def decrypt_whole(
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    allocate: Callable[[int], B],
) -> tuple[B, int]:
    """The verified plaintext of a whole-file kmsnb file, in one buffer from ``allocate``,
    and its size. The buffer is one byte longer than the payload could hold, so that
    the end of the data shows; it is not zeroed afterwards (the table holds the data)."""
    start = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(start)
    reader = open_decrypt(
        source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    )
    with reader:
        declared = reader.header.plaintext_size
        capacity = declared if declared is not None else end - start - reader.header.size
        buffer = allocate(capacity + 1)
        view = memoryview(buffer).cast("B")  # type: ignore[arg-type]
        filled = 0
        while count := reader.readinto(view[filled:]):
            filled += count
            if filled == len(view):
                raise AssertionError("kmsnb: internal error: plaintext longer than payload")
    # readinto returned 0: the final chunk has verified.
    return buffer, filled


def write_plaintext(
    path: PathOrFile,
    key_id: str,
    plaintext: memoryview,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    content_type: str,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
) -> None:
    """Encrypt a plaintext already serialised in memory (its size known) into ``path``."""
    with open_output(path, overwrite=overwrite, storage_options=storage_options) as output:
        writer = open_encrypt(
            output,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            content_type=content_type,
            plaintext_size=len(plaintext),
        )
        try:
            writer.write(plaintext)
            writer.close()
        except BaseException:
            writer.abort()
            raise


def write_from_memory(
    path: PathOrFile,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    content_type: str,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
    serialize: Callable[[BinaryIO], None],
) -> None:
    """As :func:`write_whole_file`, for a plaintext known to be small: serialised into
    memory first (the serialiser's writes then stay cheap, and the size is known), then
    encrypted, then zeroed."""
    buffer = io.BytesIO()
    try:
        serialize(buffer)
        with buffer.getbuffer() as view:
            try:
                write_plaintext(
                    path,
                    key_id,
                    view,
                    kms=kms,
                    encryption_context=encryption_context,
                    content_type=content_type,
                    overwrite=overwrite,
                    storage_options=storage_options,
                )
            finally:
                _zero(view)
    except BaseException:
        with buffer.getbuffer() as view:
            _zero(view)
        raise
    finally:
        buffer.close()


def write_whole_file(
    path: PathOrFile,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    content_type: str,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
    serialize: Callable[[BinaryIO], None],
) -> None:
    """Encrypt what ``serialize`` writes into one kmsnb file at ``path``."""
    with open_output(path, overwrite=overwrite, storage_options=storage_options) as output:
        sink = PlaintextSink(
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
