"""The payload's geometry, and the I/O helpers its readers and writers share.

Chunk, tag, salt and commitment sizes of Cobblestone-256 (C2SP chunked encryption with
AES-256-GCM), the payload size for a plaintext size, the step a message is read or written
in, and small helpers over file objects. :mod:`kmsnb._format.stream` (the sequential writer
and reader) and :mod:`kmsnb._format.seekable` (the random-access reader) use them; the
spec is ``docs/FORMAT.md``, "Payload".
"""

from __future__ import annotations

from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE",
    "COMMITMENT_SIZE",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_CACHE_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "KEY_SIZE",
    "PAYLOAD_PREFIX_SIZE",
    "SALT_SIZE",
    "TAG_SIZE",
    "ZEROS",
    "check_data_key",
    "decrypt_buffer_sizes",
    "encrypt_buffer_size",
    "encrypted_payload_size",
    "plaintext_size_for_payload",
    "read_into",
    "step_for_message",
    "step_size",
    "stream_position",
]

CHUNK_SIZE = 16384
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
SALT_SIZE = 24
COMMITMENT_SIZE = 32
PAYLOAD_PREFIX_SIZE = SALT_SIZE + COMMITMENT_SIZE
KEY_SIZE = 32

#: One chunk of zeros, to wipe plaintext buffers in place a chunk at a time.
ZEROS = bytes(CHUNK_SIZE)

#: Plaintext bytes handled per step: 64 chunks. The anchors' measurements put the sweet
#: spot of a Python read/encrypt/write loop between 64 KiB and 1 MiB.
DEFAULT_BUFFER_SIZE = 64 * CHUNK_SIZE

#: Decrypted plaintext the seekable reader keeps for re-reads (64 chunks). Parquet readers
#: come back to the chunks at the edges of column chunks and to the footer; more buys
#: little. Here, not in :mod:`kmsnb._format.seekable`, so that a default argument of
#: :func:`kmsnb.envelope.open_decrypt_seekable` does not load that module.
DEFAULT_CACHE_SIZE = 64 * CHUNK_SIZE


def encrypted_payload_size(plaintext_size: int) -> int:
    """Size of the payload that encrypts ``plaintext_size`` bytes (the final chunk is short)."""
    full_chunk_count, final_chunk_size = divmod(plaintext_size, CHUNK_SIZE)
    return (
        PAYLOAD_PREFIX_SIZE + full_chunk_count * ENCRYPTED_CHUNK_SIZE + final_chunk_size + TAG_SIZE
    )


def plaintext_size_for_payload(payload_size: int) -> int | None:
    """The plaintext size a payload of ``payload_size`` bytes holds, by the final-chunk rule:
    the inverse of :func:`encrypted_payload_size`, for a stream whose header declares no size.

    Every payload ends with its one short chunk (fewer than ``CHUNK_SIZE`` plaintext bytes,
    and a tag), so the size alone says where the final chunk starts. ``None`` when no
    plaintext has a payload of this size: it ends on a chunk boundary (the final chunk is
    missing) or its final chunk is shorter than a tag; the file was truncated or altered.
    Unauthenticated: only the final chunk's tag, at its index, proves the size.
    """
    if payload_size < PAYLOAD_PREFIX_SIZE + TAG_SIZE:
        return None
    full_chunk_count, final_chunk_size = divmod(
        payload_size - PAYLOAD_PREFIX_SIZE, ENCRYPTED_CHUNK_SIZE
    )
    if final_chunk_size < TAG_SIZE:
        return None
    return full_chunk_count * CHUNK_SIZE + final_chunk_size - TAG_SIZE


def step_size(buffer_size: int) -> int:
    """Round a requested I/O buffer size to a whole number of chunks (at least one)."""
    if not isinstance(buffer_size, int) or buffer_size <= 0:
        raise ValueError("buffer_size must be a positive integer")
    return max(1, buffer_size // CHUNK_SIZE) * CHUNK_SIZE


def step_for_message(buffer_size: int, plaintext_size: int | None) -> int:
    """The step for a message: ``buffer_size`` in whole chunks, but no more than a message
    of known size fills. Buffers are zeroed when made, and a 4 KiB file's megabyte of
    them cost more than the rest of its encryption (issue 16): it gets one chunk's."""
    step = step_size(buffer_size)
    if plaintext_size is None:
        return step
    # Every message ends with a short chunk, so it has plaintext_size // CS + 1 of them.
    return min(step, (plaintext_size // CHUNK_SIZE + 1) * CHUNK_SIZE)


def encrypt_buffer_size(step: int, plaintext_size: int | None) -> int:
    """Room for what Cobblestone's ``update_into`` makes of ``step`` plaintext bytes: the
    salt and commitment on the first call, and every chunk the step completes.

    A message of declared size completes no more chunks than it has (the writer refuses
    more bytes before encrypting them); one under a chunk completes none, its only chunk
    being the final one, which ``finalize`` returns. Cobblestone refuses (ValueError) a
    buffer too small for what it would write, so the bound is checked, never overrun.
    """
    size = step + PAYLOAD_PREFIX_SIZE + TAG_SIZE * (step // CHUNK_SIZE + 2)
    if plaintext_size is None:
        return size
    return min(size, PAYLOAD_PREFIX_SIZE + plaintext_size // CHUNK_SIZE * ENCRYPTED_CHUNK_SIZE)


def decrypt_buffer_sizes(step: int, plaintext_size: int | None) -> tuple[int, int]:
    """The ciphertext a sequential reader reads per block, and the plaintext one block can
    make: ``step`` in whole chunks, or less for a message of declared size that fits.

    Such a message is read in one block of exactly its payload after the prefix (a byte
    more, or the end, comes with the next read), and its full chunks are all ``update_into``
    can release: the final chunk comes from ``finalize``, and the reader never feeds more
    than the declared payload. A 4 KiB file then zeroes 4 KiB of buffers, not 48 (issue 16).
    """
    chunk_count = step // CHUNK_SIZE
    ciphertext, plaintext = chunk_count * ENCRYPTED_CHUNK_SIZE, chunk_count * CHUNK_SIZE
    if plaintext_size is None:
        return ciphertext, plaintext
    rest = encrypted_payload_size(plaintext_size) - PAYLOAD_PREFIX_SIZE
    return min(ciphertext, rest), min(plaintext, plaintext_size // CHUNK_SIZE * CHUNK_SIZE)


def check_data_key(key: bytes | bytearray) -> None:
    """Refuse a data key of the wrong type (TypeError) or size (ValueError)."""
    if not isinstance(key, bytes | bytearray):
        raise TypeError("the data key must be bytes or bytearray")
    if len(key) != KEY_SIZE:
        raise ValueError(f"the data key must be {KEY_SIZE} bytes")


def read_into(source: BinaryIO, view: memoryview) -> int:
    """``source.readinto(view)``, or a ``read`` and a copy for file objects without it."""
    readinto = getattr(source, "readinto", None)
    if readinto is not None:
        return int(readinto(view) or 0)
    data = source.read(len(view))
    if not data:
        return 0
    view[: len(data)] = data
    return len(data)


def stream_position(source: BinaryIO) -> int | None:
    """Where a seekable source stands now; ``None`` if it cannot seek back there."""
    try:
        return source.tell() if source.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None
