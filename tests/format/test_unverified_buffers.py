"""After an IntegrityError no buffer shows unverified plaintext (issue 9, item 6).

Cobblestone writes a chunk's plaintext into its output before it checks the tag. A tag
damaged (the ciphertext intact) decrypts to the real plaintext of the chunk, so the test
looks for that plaintext: in every view ``read_verified()`` handed out, and in the reader's
own buffers, after the failure and after ``close()``.
"""

from __future__ import annotations

import io

import pytest

import kmsnb
from kmsnb._format.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, PAYLOAD_PREFIX_SIZE
from kmsnb.errors import IntegrityError
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

# Each chunk a distinct byte, so a stray copy of chunk N is recognizable.
PLAINTEXT = b"".join(bytes([0x41 + index]) * CHUNK_SIZE for index in range(6)) + b"end"


def _with_bad_tag(message: bytes, header_size: int, chunk: int) -> bytes:
    """Flip a bit of chunk ``chunk``'s tag only: its ciphertext still decrypts to the truth."""
    tag_end = header_size + PAYLOAD_PREFIX_SIZE + (chunk + 1) * ENCRYPTED_CHUNK_SIZE
    damaged = bytearray(message)
    damaged[tag_end - 1] ^= 0x01
    return bytes(damaged)


def _reader_buffers(reader: kmsnb.DecryptReader) -> list[bytes]:
    found: list[bytes] = []
    for value in vars(reader).values():
        items = value if isinstance(value, tuple | list) else [value]
        found += [bytes(item) for item in items if isinstance(item, bytearray | memoryview)]
    return found


@pytest.mark.parametrize(("chunks_per_block", "failing"), [(1, 1), (1, 3), (2, 2), (4, 4)])
def test_no_view_or_buffer_shows_the_failed_chunk(
    kms: InMemoryKms, key_id: str, chunks_per_block: int, failing: int
) -> None:
    message = kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=kms)
    header_size = kmsnb.inspect(io.BytesIO(message)).header_size
    damaged = _with_bad_tag(message, header_size, failing)
    secret = PLAINTEXT[failing * CHUNK_SIZE : failing * CHUNK_SIZE + 64]
    reader = kmsnb.open_decrypt(
        io.BytesIO(damaged), kms=kms, buffer_size=chunks_per_block * CHUNK_SIZE
    )
    views = []
    with pytest.raises(IntegrityError):  # noqa: PT012 - the failing read is not the first
        while view := reader.read_verified():
            views.append(view)
    assert len(views) == failing // chunks_per_block  # every block before the failing one
    for view in views:
        assert secret not in bytes(view)
    for buffer in _reader_buffers(reader):
        assert secret not in buffer
    reader.close()
    for view in views:
        assert secret not in bytes(view)


def test_views_stay_valid_until_the_next_call(kms: InMemoryKms, key_id: str) -> None:
    """As documented: a view holds its verified bytes until the next read; close zeroes."""
    message = kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=kms)
    reader = kmsnb.open_decrypt(io.BytesIO(message), kms=kms, buffer_size=CHUNK_SIZE)
    first = reader.read_verified()
    assert bytes(first) == PLAINTEXT[:CHUNK_SIZE]
    second = reader.read_verified()
    assert bytes(second) == PLAINTEXT[CHUNK_SIZE : 2 * CHUNK_SIZE]
    assert bytes(first) == PLAINTEXT[:CHUNK_SIZE]  # still: two buffers take turns
    reader.close()
    assert bytes(second) == bytes(CHUNK_SIZE)  # close() wipes what it decrypted


def test_readinto_and_readall_never_copy_the_failed_chunk(kms: InMemoryKms, key_id: str) -> None:
    message = kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=kms)
    header_size = kmsnb.inspect(io.BytesIO(message)).header_size
    damaged = _with_bad_tag(message, header_size, 2)
    secret = PLAINTEXT[2 * CHUNK_SIZE : 2 * CHUNK_SIZE + 64]
    target = bytearray(len(PLAINTEXT))
    reader = kmsnb.open_decrypt(io.BytesIO(damaged), kms=kms, buffer_size=CHUNK_SIZE)
    filled = 0
    with pytest.raises(IntegrityError):  # noqa: PT012
        while count := reader.readinto(memoryview(target)[filled:]):
            filled += count
    assert filled == 2 * CHUNK_SIZE
    assert secret not in bytes(target)
    assert all(secret not in buffer for buffer in _reader_buffers(reader))
