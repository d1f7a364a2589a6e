"""Whole-file mode, without pandas: where a table's plaintext goes (the encrypting sink),
where the ciphertext goes (an atomic output) and comes from (a seekable input), and the
checks of what a file holds. :mod:`kmsnb.dataframe`, :mod:`kmsnb.arrow`, :mod:`kmsnb.polars`
and the ``kmsnb::`` file system (:mod:`kmsnb.fsspec_kmsnb`) all write and read through it.

No plaintext touches a disk. Writing, the Parquet or CSV bytes go to the envelope
encryptor: the first :data:`SIZED_WRITE_LIMIT` plaintext bytes are held in memory so that
a small file's exact size is known (which lets a :class:`~kmsnb.kms.CachingKms` reuse a
data key, as the ESDK does only for sized messages); beyond that the rest streams. Paths
and URLs go through :mod:`kmsnb.storage`: the ciphertext becomes the destination only once
complete (an unnamed local file named when done, an object published whole); a caller's
file object is written as it is, its atomicity the caller's.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from kmsnb import storage
from kmsnb._format.header import CONTENT_TYPE_BYTES, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb._progress import Advance, ignore_progress
from kmsnb.envelope import EncryptWriter, open_encrypt
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "SIZED_WRITE_LIMIT",
    "PathOrFile",
    "PlaintextSink",
    "check_binary",
    "check_content_type",
    "content_type_for_name",
    "local_path",
    "open_input",
    "open_output",
    "progress_name",
    "remaining_size",
    "seekable",
    "write_from_memory",
    "write_plaintext",
    "write_whole_file",
]

#: Plaintext bytes held in memory before a write starts streaming (see the docstring).
SIZED_WRITE_LIMIT = 64 * 1024 * 1024
#: Plaintext bytes encrypted per call from memory: steps for a progress bar to count.
_MEMORY_STEP_SIZE = 8 * 1024 * 1024

PathOrFile = str | os.PathLike[str] | BinaryIO

_CONTENT_NAMES = {CONTENT_TYPE_PARQUET: "Parquet", CONTENT_TYPE_CSV: "CSV"}
_SUFFIX_CONTENT = {
    ".parquet": CONTENT_TYPE_PARQUET,
    ".pq": CONTENT_TYPE_PARQUET,
    ".csv": CONTENT_TYPE_CSV,
}


def content_type_for_name(name: str) -> str:
    """The content type a file's name implies: ``x.parquet.kms`` holds Parquet."""
    stem = name[: -len(".kms")] if name.endswith(".kms") else name
    return _SUFFIX_CONTENT.get(os.path.splitext(stem)[1].lower(), CONTENT_TYPE_BYTES)


def check_content_type(found: str, wanted: str, *, readers: Mapping[str, str]) -> None:
    """Refuse a whole-file kmsnb file that holds something else than ``wanted``, naming
    the reader (``readers``: content type to function name) that reads what it holds."""
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


def _check_storage_options(path: object, storage_options: Mapping[str, Any] | None) -> None:
    if isinstance(path, str) and path.startswith("kmsnb::"):
        # Through the kmsnb:: file system these readers would see plaintext, and call it
        # unencrypted; they decrypt (and encrypt) themselves.
        raise ValueError(
            f"kmsnb's readers and writers decrypt and encrypt themselves: drop 'kmsnb::' "
            f"from {path!r} (it is for other libraries' readers)"
        )
    if storage_options is not None and not storage.is_url(path):
        raise ValueError(
            "storage_options is only for fsspec URLs (s3://..., memory://...), "
            "not for local paths or file objects"
        )


def check_binary(fileobj: object) -> None:
    """Refuse a text file where bytes are read or written."""
    if isinstance(fileobj, io.TextIOBase):
        raise TypeError(
            "path must be a binary file (open it with 'rb' or 'wb', or use io.BytesIO), "
            f"not a text file ({type(fileobj).__name__})"
        )


def _wrong_type(path: object) -> TypeError:
    return TypeError(
        f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
    )


def local_path(path: PathOrFile, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``path`` (a path or a ``file://`` URL), if any."""
    if not isinstance(path, str | os.PathLike):
        return None
    location = storage.resolve(path, storage_options=storage_options, writing=False)
    return location.path if location.is_local else None


@contextlib.contextmanager
def open_input(
    path: PathOrFile, *, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A seekable binary file of ``path``'s bytes (a pipe's are read into memory)."""
    _check_storage_options(path, storage_options)
    if callable(getattr(path, "read", None)):
        check_binary(path)
        yield seekable(path)  # type: ignore[arg-type]
    elif isinstance(path, str | os.PathLike):
        with storage.open_input(path, storage_options=storage_options) as source:
            yield seekable(source)
    else:
        raise _wrong_type(path)


def remaining_size(source: BinaryIO) -> int:
    """Bytes from ``source``'s position to its end; the position is kept."""
    start = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(start)
    return end - start


def progress_name(path: object) -> str:
    """What a table's progress bar calls ``path``: its last component (or a file object's
    name's), never data."""
    name = path if isinstance(path, str | os.PathLike) else getattr(path, "name", None)
    if not isinstance(name, str | os.PathLike):
        return "table"
    text = os.fspath(name)
    if not isinstance(text, str):
        return "table"
    return text.rstrip("/").rsplit("/", 1)[-1] or "table"


def seekable(source: BinaryIO) -> BinaryIO:
    """``source`` if it can seek, else its ciphertext read into memory."""
    can_seek = getattr(source, "seekable", None)
    if callable(can_seek) and can_seek():
        return source
    return io.BytesIO(source.read())  # ciphertext only: a pipe or a socket


# -- where the bytes go ---------------------------------------------------------------------


@contextlib.contextmanager
def open_output(
    path: PathOrFile, *, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A binary file for the ciphertext, that becomes ``path`` only if the block completes
    (:func:`kmsnb.storage.open_output`); a caller's file object is used as it is."""
    _check_storage_options(path, storage_options)
    if callable(getattr(path, "write", None)):
        check_binary(path)
        yield path  # type: ignore[misc]  # the caller's file: atomicity is theirs
    elif isinstance(path, str | os.PathLike):
        with storage.open_output(
            path, overwrite=overwrite, storage_options=storage_options
        ) as output:
            yield output
    else:
        raise _wrong_type(path)


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
    writes the final chunk, and :meth:`abort` leaves the output unreadable. ``advance``
    counts every byte written, all of which the encryptor gets.
    """

    def __init__(
        self,
        output: BinaryIO,
        key_id: str,
        *,
        kms: Kms,
        encryption_context: Mapping[str, str] | None,
        content_type: str,
        limit: int | None = None,
        advance: Advance = ignore_progress,
    ) -> None:
        super().__init__()
        self._output = output
        self._key_id = key_id
        self._kms = kms
        self._context = encryption_context
        self._content_type = content_type
        # Read now, not at import: a test may lower the module's limit.
        self._limit = SIZED_WRITE_LIMIT if limit is None else limit
        # Held as the serialiser wrote it, one copy per write: joining into one growing
        # buffer would copy it several times over.
        self._held: list[bytearray] = []
        self._held_size = 0
        self._writer: EncryptWriter | None = None
        self._position = 0
        self._advance = advance

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
        self._advance(size)
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
    advance: Advance = ignore_progress,
) -> None:
    """Encrypt a plaintext already serialised in memory (its size known) into ``path``,
    in steps that ``advance`` counts."""
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
            for start in range(0, len(plaintext), _MEMORY_STEP_SIZE):
                step = plaintext[start : start + _MEMORY_STEP_SIZE]
                writer.write(step)
                advance(len(step))
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
    advance: Advance = ignore_progress,
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
                    advance=advance,
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
    advance: Advance = ignore_progress,
) -> None:
    """Encrypt what ``serialize`` writes into one kmsnb file at ``path``; ``advance``
    counts the plaintext bytes."""
    with open_output(path, overwrite=overwrite, storage_options=storage_options) as output:
        sink = PlaintextSink(
            output,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            content_type=content_type,
            advance=advance,
        )
        try:
            serialize(sink)  # type: ignore[arg-type]  # a binary file, as far as they care
            sink.finish()
        except BaseException:
            sink.abort()
            raise
