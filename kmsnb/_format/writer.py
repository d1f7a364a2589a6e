"""Encrypting into a file object: the header, then the C2SP chunked-encryption payload.

:class:`EncryptWriter` feeds ``cryptography.cobblestone``'s encryptor a step at a time, so
memory stays constant whatever the message's size, and writes the final chunk only on
:meth:`~EncryptWriter.close`: a writer that fails or is dropped leaves a message that can
never be read back as a whole one. The reader is in :mod:`kmsnb._format.stream`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

from cryptography.cobblestone import Cobblestone256Encryptor

from kmsnb._format.header import Header
from kmsnb._format.payload import (
    DEFAULT_BUFFER_SIZE,
    check_data_key,
    encrypt_buffer_size,
    step_for_message,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["EncryptWriter"]


class EncryptWriter(io.RawIOBase):
    """A writable binary file that encrypts into ``sink``: the header, then the payload.

    Nothing is complete until :meth:`close`, which writes the final chunk. Leaving a
    ``with`` block on an exception calls :meth:`abort` instead, so a half-written stream
    can never be read back as a whole one: it lacks its final chunk.

    The data key is copied into the Cobblestone encryptor at construction; the caller
    wipes its own copy right after.
    """

    def __init__(
        self,
        sink: BinaryIO,
        header: Header,
        key: bytes | bytearray,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        close_sink: bool = False,
    ) -> None:
        super().__init__()
        check_data_key(key)
        self._step = step_for_message(buffer_size, header.plaintext_size)
        self._header = header
        self._sink = sink
        self._close_sink = close_sink
        self._encryptor: Cobblestone256Encryptor | None = Cobblestone256Encryptor(
            key, header.payload_context
        )
        self._out = bytearray(encrypt_buffer_size(self._step, header.plaintext_size))
        self._plaintext_size = 0
        self._declared_size = header.plaintext_size
        sink.write(header.raw)

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes written so far."""
        return self._plaintext_size

    @property
    def header(self) -> Header:
        return self._header

    @property
    def step_size(self) -> int:
        """Plaintext bytes encrypted per step: a good size for the caller's writes (for a
        message of declared size, no larger than the message needs)."""
        return self._step

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self._encryptor is None:
            raise ValueError("write to a closed or aborted kmsnb stream")
        view = memoryview(data).cast("B")
        size = len(view)
        declared = self._declared_size
        if declared is not None and self._plaintext_size + size > declared:
            self.abort()
            raise ValueError(
                f"more than the declared plaintext_size of {declared} bytes was written"
            )
        out = self._out
        for start in range(0, size, self._step):
            produced = self._encryptor.update_into(view[start : start + self._step], out)
            if produced:
                self._sink.write(memoryview(out)[:produced])
        self._plaintext_size += size
        return size

    def close(self) -> None:
        """Write the final chunk and flush; close the sink if this writer owns it."""
        if self.closed:
            return
        declared = self._declared_size
        if self._encryptor is not None and declared not in (None, self._plaintext_size):
            self.abort()
            raise ValueError(
                f"{self._plaintext_size} bytes were written, not the declared plaintext_size "
                f"of {declared}; the stream was left unfinished"
            )
        try:
            if self._encryptor is not None:
                final = self._encryptor.finalize()
                self._encryptor = None
                self._sink.write(final)
                self._sink.flush()
        finally:
            self._release()

    def abort(self) -> None:
        """Stop without writing the final chunk: what was written stays unreadable."""
        self._encryptor = None
        self._release()

    def _release(self) -> None:
        try:
            if self._close_sink:
                self._sink.close()
        finally:
            super().close()

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # io.IOBase.__del__ would close(), sealing whatever was written as a whole
        # message; a writer dropped without close() must stay unreadable instead.
        if not self.closed:
            self.abort()
