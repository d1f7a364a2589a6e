"""Buffers sized to the message (issue 16, item 2): a message of declared size gets no more
buffer than it fills, one of unknown size the whole step; either way every size round-trips
byte for byte, errors still name the failing chunk, and nothing of it is released.

Sizes: age's boundary grid around the chunk size (CS) for small files, and the same grid
around the default step (64 chunks) for large ones, through the file functions and through
streams of declared size written and read in odd steps."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

import kmsnb
from kmsnb._format.stream import (
    CHUNK_SIZE,
    DEFAULT_BUFFER_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    PAYLOAD_PREFIX_SIZE,
    encrypted_payload_size,
)
from kmsnb.errors import IntegrityError
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CS = CHUNK_SIZE
STEP = DEFAULT_BUFFER_SIZE
SMALL_SIZES = [0, 1, 4096, CS - 1, CS, CS + 1, 2 * CS + 500]
LARGE_SIZES = [STEP - CS - 1, STEP - 1, STEP, STEP + 1, 2 * STEP + CS + 7]
BUFFER_SIZES = {"buffer-CS": CS, "buffer-3CS": 3 * CS, "buffer-default": STEP}

_KMS = InMemoryKms()
_KEY_ID = _KMS.create_key()


def _plaintext(size: int) -> bytes:
    return hashlib.shake_128(b"sizing %d" % size).digest(size)


def _chunks_for(size: int, buffer_size: int) -> int:
    """The chunks per step a message of ``size`` bytes gets: what it fills, at most a step."""
    return min(buffer_size // CS, size // CS + 1)


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES.values(), ids=BUFFER_SIZES.keys())
@pytest.mark.parametrize("size", SMALL_SIZES + LARGE_SIZES, ids=lambda size: f"size-{size}")
def test_files_of_every_size_round_trip(tmp_path: Path, size: int, buffer_size: int) -> None:
    plaintext = _plaintext(size)
    source, encrypted, decrypted = tmp_path / "p", tmp_path / "p.kms", tmp_path / "d"
    source.write_bytes(plaintext)
    info = kmsnb.encrypt_file(source, encrypted, _KEY_ID, kms=_KMS, buffer_size=buffer_size)
    assert info.file_size == info.header_size + encrypted_payload_size(size)
    assert encrypted.stat().st_size == info.file_size
    kmsnb.decrypt_file(encrypted, decrypted, kms=_KMS, buffer_size=buffer_size)
    assert decrypted.read_bytes() == plaintext


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES.values(), ids=BUFFER_SIZES.keys())
@pytest.mark.parametrize("size", SMALL_SIZES + LARGE_SIZES, ids=lambda size: f"size-{size}")
def test_buffers_are_no_larger_than_the_message(size: int, buffer_size: int) -> None:
    """The writer's step and the reader's buffers, for a declared size: no megabyte for a
    4 KiB file; a large file keeps the step it asked for (constant memory)."""
    chunks = _chunks_for(size, buffer_size)
    sink = io.BytesIO()
    writer = kmsnb.open_encrypt(
        sink, _KEY_ID, kms=_KMS, plaintext_size=size, buffer_size=buffer_size
    )
    with writer:
        assert writer.step_size == chunks * CS
        assert len(writer._out) < chunks * CS + PAYLOAD_PREFIX_SIZE + 16 * (chunks + 3)
        writer.write(_plaintext(size))
    reader = kmsnb.open_decrypt(io.BytesIO(sink.getvalue()), kms=_KMS, buffer_size=buffer_size)
    # A message that fits in a step is read in one block of its payload, and only its full
    # chunks come out of that block (the final one comes from finalize): no more buffer.
    payload_rest = encrypted_payload_size(size) - PAYLOAD_PREFIX_SIZE
    full_chunks = size // CS * CS
    with reader:
        assert len(reader._in) == min(chunks * ENCRYPTED_CHUNK_SIZE, payload_rest)
        assert [len(buffer) for buffer in reader._out] == [min(chunks * CS, full_chunks)] * 2
        assert reader.read() == _plaintext(size)


def test_a_stream_of_unknown_size_gets_the_whole_step() -> None:
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, _KEY_ID, kms=_KMS) as writer:
        assert writer.step_size == STEP
        writer.write(b"short")
    with kmsnb.open_decrypt(io.BytesIO(sink.getvalue()), kms=_KMS) as reader:
        assert len(reader._in) == (STEP // CS) * ENCRYPTED_CHUNK_SIZE
        assert reader.read() == b"short"


STEPS = [1, 4096, CS - 1, CS + 1, 3 * CS + 5]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: f"step-{step}")
@pytest.mark.parametrize("size", [*SMALL_SIZES, STEP + 1], ids=lambda size: f"size-{size}")
def test_declared_sizes_written_and_read_in_odd_steps(size: int, step: int) -> None:
    """Writes and reads that do not line up with the sized buffers."""
    plaintext = _plaintext(size)
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, _KEY_ID, kms=_KMS, plaintext_size=size) as writer:
        for start in range(0, size, step):
            writer.write(plaintext[start : start + step])
    pieces = []
    with kmsnb.open_decrypt(io.BytesIO(sink.getvalue()), kms=_KMS) as reader:
        while piece := reader.read(step):
            pieces.append(piece)
    assert b"".join(pieces) == plaintext


def _with_bad_tag(message: bytes, chunk: int) -> bytes:
    """Flip a bit of chunk ``chunk``'s tag (the final chunk's when it is the last)."""
    header_size = kmsnb.inspect(io.BytesIO(message)).header_size
    tag_end = min(
        len(message), header_size + PAYLOAD_PREFIX_SIZE + (chunk + 1) * ENCRYPTED_CHUNK_SIZE
    )
    damaged = bytearray(message)
    damaged[tag_end - 1] ^= 0x01
    return bytes(damaged)


@pytest.mark.parametrize(
    ("size", "failing"),
    [(2 * CS + 500, 0), (2 * CS + 500, 1), (5 * CS, 3), (STEP + CS + 9, 64)],
    ids=["first-of-3", "middle-of-3", "4th-of-6", "first-of-the-2nd-step"],
)
def test_a_failing_chunk_is_named_and_nothing_of_its_block_is_released(
    size: int, failing: int
) -> None:
    """A small file is one block now: a bad chunk anywhere in it releases nothing at all,
    and the error still names it (found by replaying the block chunk by chunk)."""
    plaintext = _plaintext(size)
    damaged = _with_bad_tag(kmsnb.encrypt_bytes(plaintext, _KEY_ID, kms=_KMS), failing)
    released = []
    reader = kmsnb.open_decrypt(io.BytesIO(damaged), kms=_KMS)
    with pytest.raises(IntegrityError) as caught:  # noqa: PT012 - fails on a later read
        while view := reader.read_verified():
            released.append(bytes(view))
    assert caught.value.chunk_index == failing
    first_of_block = failing - failing % (STEP // CS)
    assert b"".join(released) == plaintext[: first_of_block * CS]
    with pytest.raises(IntegrityError):  # sticky
        reader.read_verified()
    secret = plaintext[failing * CS : failing * CS + 64]
    assert all(secret not in bytes(buffer) for buffer in reader._out)
    reader.close()


def test_a_truncated_small_file_is_refused(tmp_path: Path) -> None:
    """The sized buffers still see a payload cut short, and data after the final chunk."""
    message = kmsnb.encrypt_bytes(_plaintext(2 * CS + 500), _KEY_ID, kms=_KMS)
    for altered, expected in ((message[:-1], "ends 1 bytes early"), (message + b"x", "follows")):
        with pytest.raises(kmsnb.errors.TruncatedError, match=expected):
            kmsnb.decrypt_bytes(altered, kms=_KMS)


@pytest.mark.parametrize("size", [0, 1, 4096, CS - 1, CS, CS + 1], ids=lambda size: f"size-{size}")
def test_a_message_read_in_one_block_still_sees_its_end(size: int) -> None:
    """A message read in one block of exactly its payload: a byte more, or a byte less,
    is still refused, and its buffers hold only its full chunks."""
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, _KEY_ID, kms=_KMS, plaintext_size=size) as writer:
        # The salt, the commitment and the full chunks: the final one comes from finalize.
        assert len(writer._out) == PAYLOAD_PREFIX_SIZE + size // CS * ENCRYPTED_CHUNK_SIZE
        writer.write(_plaintext(size))
    message = sink.getvalue()
    with kmsnb.open_decrypt(io.BytesIO(message), kms=_KMS) as reader:
        assert len(reader._in) == encrypted_payload_size(size) - PAYLOAD_PREFIX_SIZE
        assert [len(buffer) for buffer in reader._out] == [size // CS * CS] * 2
        assert reader.read() == _plaintext(size)
    with pytest.raises(kmsnb.errors.TruncatedError, match="follows the final chunk"):
        kmsnb.decrypt_bytes(message + b"x", kms=_KMS)
    with pytest.raises(kmsnb.errors.TruncatedError, match="ends 1 bytes early"):
        kmsnb.decrypt_bytes(message[:-1], kms=_KMS)


@pytest.mark.parametrize("size", [0, 4096], ids=lambda size: f"size-{size}")
def test_a_source_longer_than_its_size_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """encrypt_file reads a file of known size with a buffer of that size and a byte: a
    file that grew after its size was taken (here: said to be one byte shorter, or empty)
    is still caught, and nothing is written."""
    source, encrypted = tmp_path / "p", tmp_path / "p.kms"
    source.write_bytes(_plaintext(size + 1))
    monkeypatch.setattr("kmsnb._file_ops.regular_file_size", lambda fileobj: size)
    with pytest.raises(kmsnb.errors.KmsnbError, match="changed size while it was read"):
        kmsnb.encrypt_file(source, encrypted, _KEY_ID, kms=_KMS)
    assert not encrypted.exists()
