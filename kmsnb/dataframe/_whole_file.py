"""Whole-file mode: the plaintext sink into the envelope encryptor, and whole-file reads.

Writing, the Parquet or CSV bytes go to the envelope encryptor: the first
:data:`SIZED_WRITE_LIMIT` bytes are held in memory so that a small file's exact size is
known (which lets a :class:`~kmsnb.kms.CachingKms` reuse a data key, as the ESDK does only
for sized messages); beyond that the rest streams through. Reading Parquet needs a seekable
file, so the verified plaintext is held in memory (:func:`decrypt_to_memory`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb.dataframe._paths import PathOrFile, open_output
from kmsnb.envelope import EncryptWriter, open_decrypt, open_encrypt
from kmsnb.errors import FormatError
from kmsnb.kms._base import Kms, wipe

if TYPE_CHECKING:
    import pyarrow as pa
    from _typeshed import ReadableBuffer

#: Plaintext bytes held in memory before a write starts streaming (see the docstring).
SIZED_WRITE_LIMIT = 64 * 1024 * 1024

_CONTENT_NAMES = {CONTENT_TYPE_PARQUET: "Parquet", CONTENT_TYPE_CSV: "CSV"}
_READERS = {CONTENT_TYPE_PARQUET: "kmsnb.read_parquet", CONTENT_TYPE_CSV: "kmsnb.read_csv"}


class PlaintextSink(io.RawIOBase):
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


def write_whole_file(
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


def seekable(source: BinaryIO) -> BinaryIO:
    """``source`` if it can seek, else its ciphertext read into memory."""
    can_seek = getattr(source, "seekable", None)
    if callable(can_seek) and can_seek():
        return source
    return io.BytesIO(source.read())  # ciphertext only: a pipe or a socket


def check_content_type(found: str, wanted: str) -> None:
    """Refuse a kmsnb file that holds other content than ``wanted``, naming its reader."""
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


def decrypt_to_memory(
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
