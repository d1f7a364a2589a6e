"""The payload: C2SP chunked encryption (``cryptography.cobblestone``) over file objects.

The construction is not ours: Cobblestone-256 splits the plaintext into 16 KiB chunks
sealed with AES-256-GCM under a key derived (HKDF-SHA-512) from the data key, a random
24-byte salt and the ``context``, and prefixes a 32-byte key commitment. Its final chunk is
always shorter than 16 KiB (possibly empty), so a stream cut at a chunk boundary is
detected without a flag. This module only moves bytes between file objects and it, keeps
memory constant, and turns its single ``InvalidTag`` into errors that say where and why.

The writer is :mod:`kmsnb._format.writer`, the sizes :mod:`kmsnb._format.payload`; both
are re-exported here, so the payload's whole vocabulary is importable from this module.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

from cryptography.cobblestone import Cobblestone256Decryptor
from cryptography.exceptions import InvalidTag

from kmsnb._format.header import Header, VerifiedKeySlot
from kmsnb._format.payload import (
    CHUNK_SIZE,
    DEFAULT_BUFFER_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    PAYLOAD_PREFIX_SIZE,
    ZEROS,
    check_data_key,
    decrypt_buffer_sizes,
    encrypted_payload_size,
    read_into,
    step_for_message,
    stream_position,
)
from kmsnb._format.writer import EncryptWriter
from kmsnb.errors import IntegrityError, KmsnbError, TruncatedError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_BUFFER_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "PAYLOAD_PREFIX_SIZE",
    "DecryptReader",
    "EncryptWriter",
    "encrypted_payload_size",
]


class DecryptReader(io.RawIOBase):
    """A readable binary file of the verified plaintext of the payload in ``source``.

    ``source`` is positioned just after ``header``. The key slot is verified at once
    (unless ``verified_slot``, from :meth:`Header.verify_key_slot`, shows it was); a
    chunk's plaintext is handed out only once its tag has verified, and the last bytes
    only once the final chunk has; every failure is raised again on later reads.

    Cobblestone writes a chunk's plaintext into its output before it checks the tag, so a
    block is decrypted into a scratch buffer that no view handed out by
    :meth:`read_verified` points into: two buffers take turns, and the one a block is
    decrypted into becomes visible only once the block has verified. On a failure, and on
    :meth:`close`, both are zeroed, so no view ever shows unverified bytes afterwards.
    """

    def __init__(
        self,
        source: BinaryIO,
        header: Header,
        key: bytes | bytearray,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        close_source: bool = False,
        verified_slot: VerifiedKeySlot | None = None,
    ) -> None:
        super().__init__()
        check_data_key(key)
        # Checked here unless the caller already did, with this header and key.
        header.require_verified_key_slot(key, verified_slot)
        self._source = source
        self._close_source = close_source
        self._header = header
        self._decryptor: Cobblestone256Decryptor | None = Cobblestone256Decryptor(
            key, header.payload_context
        )
        # Made now, while the key is at hand, to name the failing chunk if a block fails.
        self._spare: Cobblestone256Decryptor | None = Cobblestone256Decryptor(
            key, header.payload_context
        )
        self._payload_start = stream_position(source)
        step = step_for_message(buffer_size, header.plaintext_size)
        ciphertext_size, plaintext_size = decrypt_buffer_sizes(step, header.plaintext_size)
        self._in = bytearray(ciphertext_size)
        self._out = (bytearray(plaintext_size), bytearray(plaintext_size))
        self._out_written = [0, 0]  # how much of each may hold plaintext: what to zero
        self._scratch_index = 0  # the buffer the next block is decrypted into
        self._pending = memoryview(b"")
        self._expected_payload_size = (
            None if header.plaintext_size is None else encrypted_payload_size(header.plaintext_size)
        )
        self._payload_read = 0  # payload bytes fed to the decryptor
        self._verified_chunk_count = 0
        self._plaintext_size = 0
        self._error: KmsnbError | None = None
        self._started = False
        self._done = False

    def readable(self) -> bool:
        return True

    @property
    def header(self) -> Header:
        return self._header

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._pending:
            if self._done:
                self._raise_if_failed()
                return 0
            self._pending = self._next_block()
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def readall(self) -> bytes:
        self._raise_if_failed()
        parts = []
        if self._pending:
            parts.append(bytes(self._pending))
            self._pending = memoryview(b"")
        while not self._done:
            parts.append(bytes(self._next_block()))
        return b"".join(parts)

    def read_verified(self) -> memoryview:
        """The next run of verified plaintext, valid until the next call; empty at the end.

        A copy-free alternative to ``read`` for callers that write the bytes straight out.
        The view is into the reader's buffer: after the next call (``close`` included) it
        may show other verified plaintext, or zeros, but never unverified bytes.
        """
        if self._pending:
            block, self._pending = self._pending, memoryview(b"")
            return block
        self._raise_if_failed()
        while not self._done:
            block = self._next_block()
            if block:
                return block
        return memoryview(b"")

    def _raise_if_failed(self) -> None:
        """Errors are sticky: a caller that reads on after one gets it again, never EOF."""
        if self._error is not None:
            raise self._error

    def _next_block(self) -> memoryview:
        self._raise_if_failed()
        try:
            return self._decrypt_next_block()
        except KmsnbError as error:
            self._fail(error)
            raise

    def _fail(self, error: KmsnbError) -> None:
        self._error = error
        self._decryptor = self._spare = None
        self._done = True
        # Nothing more is handed out, and the buffers, which may hold the failed chunk's
        # plaintext (written before its tag was checked), are zeroed.
        self._pending = memoryview(b"")
        self._wipe_buffers()

    def _wipe_buffers(self) -> None:
        # getattr: close() also runs (from __del__) when __init__ failed before the buffers.
        for index, written in enumerate(getattr(self, "_out_written", ())):
            view = memoryview(self._out[index])
            # In place, a chunk at a time: no megabyte of zeros allocated to wipe with.
            for start in range(0, written, CHUNK_SIZE):
                end = min(written, start + CHUNK_SIZE)
                view[start:end] = ZEROS[: end - start]
            self._out_written[index] = 0

    def _offset(self) -> int:
        return self._header.size + self._payload_read

    def _decrypt_next_block(self) -> memoryview:
        decryptor = self._decryptor
        if decryptor is None:
            raise AssertionError("kmsnb: internal error: read after the end of the payload")
        if not self._started:
            self._check_commitment(decryptor)
        size = self._fill()
        if size == 0:
            return self._finish(decryptor)
        view = memoryview(self._in)[:size]
        first_chunk = self._verified_chunk_count
        index = self._scratch_index
        scratch = self._out[index]
        # One call per block: per-chunk calls cost ~5 % of the throughput. A failure then
        # only says "somewhere in this block", so _locate_failure finds the chunk after.
        try:
            produced = decryptor.update_into(view, scratch)
        except InvalidTag:
            self._out_written[index] = len(scratch)  # how much was written is not said
            raise self._locate_failure(first_chunk, size, scratch) from None
        self._out_written[index] = max(self._out_written[index], produced)
        # Verified: this buffer is handed out, and the other one is the next scratch.
        self._scratch_index = 1 - index
        self._payload_read += size
        self._verified_chunk_count += produced // CHUNK_SIZE
        self._plaintext_size += produced
        return memoryview(scratch)[:produced]

    def _locate_failure(
        self, first_chunk: int, block_size: int, scratch: bytearray
    ) -> IntegrityError:
        """The error for a block that failed, naming its chunk when that can be found.

        A seekable source is replayed from the payload's start through the spare
        decryptor, chunk by chunk within the failed block; this costs a second read of
        the file, on the failure path only. Nothing it decrypts is released: it goes to
        ``scratch``, which the failure zeroes.
        """
        last_chunk = first_chunk + (block_size - 1) // ENCRYPTED_CHUNK_SIZE
        block_offset = self._offset()
        spare, self._spare = self._spare, None
        index = None
        if spare is not None and self._payload_start is not None:
            try:
                index = self._replay_to_failure(spare, first_chunk, last_chunk, scratch)
            except (OSError, ValueError):
                index = None  # the source changed or cannot be re-read: report the range
        if index is None:
            return IntegrityError(
                f"a chunk in {first_chunk}..{last_chunk} failed authentication; "
                "the file is corrupted or was tampered with",
                offset=block_offset,
            )
        return IntegrityError(
            f"chunk {index} failed authentication; the file is corrupted or was tampered with",
            chunk_index=index,
            offset=block_offset + (index - first_chunk) * ENCRYPTED_CHUNK_SIZE,
        )

    def _replay_to_failure(
        self,
        spare: Cobblestone256Decryptor,
        first_chunk: int,
        last_chunk: int,
        scratch_buffer: bytearray,
    ) -> int | None:
        if self._payload_start is None:
            return None
        self._source.seek(self._payload_start)
        scratch = memoryview(scratch_buffer)
        buffer = memoryview(self._in)
        before = PAYLOAD_PREFIX_SIZE + first_chunk * ENCRYPTED_CHUNK_SIZE
        while before:
            count = read_into(self._source, buffer[: min(len(buffer), before)])
            if not count:
                return None
            spare.update_into(buffer[:count], scratch)
            before -= count
        for index in range(first_chunk, last_chunk + 1):
            count = read_into(self._source, buffer[:ENCRYPTED_CHUNK_SIZE])
            try:
                spare.update_into(buffer[:count], scratch)
            except InvalidTag:
                return index
        return None

    def _check_commitment(self, decryptor: Cobblestone256Decryptor) -> None:
        self._started = True
        prefix = self._source.read(PAYLOAD_PREFIX_SIZE) or b""
        while 0 < len(prefix) < PAYLOAD_PREFIX_SIZE:
            more = self._source.read(PAYLOAD_PREFIX_SIZE - len(prefix))
            if not more:
                break
            prefix += more
        if len(prefix) < PAYLOAD_PREFIX_SIZE:
            raise TruncatedError(
                "the file ends before its payload begins; it was truncated",
                offset=self._header.size + len(prefix),
            )
        try:
            # The salt and commitment alone produce no plaintext.
            decryptor.update_into(prefix, self._out[self._scratch_index])
        except InvalidTag:
            # The key slot verified under this data key, so the key is the file's own; a
            # commitment mismatch means the bound header or the payload's start changed.
            raise IntegrityError(
                "the header failed authentication (key commitment mismatch); the header or "
                "the start of the payload was altered",
                offset=self._header.size,
            ) from None
        self._payload_read = PAYLOAD_PREFIX_SIZE

    def _fill(self) -> int:
        """Read up to a buffer of ciphertext; fewer bytes only at the end of the source."""
        view = memoryview(self._in)
        filled = 0
        while filled < len(view):
            count = read_into(self._source, view[filled:])
            if not count:
                break
            filled += count
        expected = self._expected_payload_size
        if expected is not None and self._payload_read + filled > expected:
            raise TruncatedError(
                "data follows the final chunk; the file was altered or concatenated",
                chunk_index=(expected - PAYLOAD_PREFIX_SIZE) // ENCRYPTED_CHUNK_SIZE,
                offset=self._header.size + expected,
            )
        return filled

    def _finish(self, decryptor: Cobblestone256Decryptor) -> memoryview:
        self._done = True
        self._decryptor = self._spare = None
        expected = self._expected_payload_size
        if expected is not None and self._payload_read < expected:
            raise TruncatedError(
                f"the file ends {expected - self._payload_read} bytes early; it was truncated",
                chunk_index=self._verified_chunk_count,
                offset=self._offset(),
            )
        try:
            final = decryptor.finalize()
        except InvalidTag:
            at_boundary = (self._payload_read - PAYLOAD_PREFIX_SIZE) % ENCRYPTED_CHUNK_SIZE == 0
            if at_boundary:
                raise TruncatedError(
                    "the file ends without its final chunk; it was truncated",
                    chunk_index=self._verified_chunk_count,
                    offset=self._offset(),
                ) from None
            raise IntegrityError(
                f"the final chunk ({self._verified_chunk_count}) failed authentication; "
                "the file was truncated, corrupted or tampered with",
                chunk_index=self._verified_chunk_count,
                offset=self._offset(),
            ) from None
        self._plaintext_size += len(final)
        declared = self._header.plaintext_size
        if declared is not None and declared != self._plaintext_size:
            raise AssertionError("kmsnb: internal error: verified size differs from the header's")
        return memoryview(final)

    def close(self) -> None:
        """Zero the plaintext buffers (views from :meth:`read_verified` show zeros) and
        close the source if this reader owns it."""
        if self.closed:
            return
        self._decryptor = self._spare = None
        self._pending = memoryview(b"")
        self._wipe_buffers()
        try:
            if self._close_source:
                self._source.close()
        finally:
            super().close()
