"""Round trips over age's boundary grid, and Hypothesis round trips.

CS = 16384 is both the payload's chunk size and, with ``buffer_size=CS``, the I/O step;
each size is written through ``open_encrypt`` in steps and read back through
``open_decrypt`` with ``read(n)`` in steps, with that small buffer and the default one.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import encryption_contexts, plaintexts, splits

import kmsnb
from kmsnb._format.stream import CHUNK_SIZE, DEFAULT_BUFFER_SIZE, encrypted_payload_size
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CS = CHUNK_SIZE
GRID_SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS + 500]
STEPS = [1, 512, CS - 1, CS, CS + 1]
BUFFER_SIZES = {"buffer-CS": CS, "buffer-default": DEFAULT_BUFFER_SIZE}

# One master key for the whole module: the grid makes hundreds of files.
_KMS = InMemoryKms()
_KEY_ID = _KMS.create_key()
_SLOW_CASES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plaintext(size: int) -> bytes:
    return hashlib.shake_128(b"grid %d" % size).digest(size)


def _encrypt_in_steps(plaintext: bytes, step: int, buffer_size: int) -> bytes:
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, _KEY_ID, kms=_KMS, buffer_size=buffer_size) as writer:
        for start in range(0, len(plaintext), step):
            assert len(plaintext[start : start + step]) == writer.write(
                plaintext[start : start + step]
            )
        assert len(plaintext) == writer.plaintext_size
    return sink.getvalue()


def _decrypt_in_steps(message: bytes, step: int, buffer_size: int) -> bytes:
    pieces = []
    with kmsnb.open_decrypt(io.BytesIO(message), kms=_KMS, buffer_size=buffer_size) as reader:
        while piece := reader.read(step):
            assert len(piece) <= step
            pieces.append(piece)
        assert reader.read(step) == b""  # and it stays at the end
    return b"".join(pieces)


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES.values(), ids=BUFFER_SIZES.keys())
@pytest.mark.parametrize("read_step", STEPS, ids=lambda step: f"read-{step}")
@pytest.mark.parametrize("write_step", STEPS, ids=lambda step: f"write-{step}")
@pytest.mark.parametrize("size", GRID_SIZES, ids=lambda size: f"size-{size}")
def test_boundary_grid_round_trip(
    size: int, write_step: int, read_step: int, buffer_size: int
) -> None:
    """Every size, write step, read step and buffer decrypts to the plaintext, and the
    payload has exactly the size C2SP gives (the final chunk is always short)."""
    plaintext = _plaintext(size)
    message = _encrypt_in_steps(plaintext, write_step, buffer_size)
    header_size = kmsnb.inspect(io.BytesIO(message)).header_size
    assert encrypted_payload_size(size) == len(message) - header_size
    assert plaintext == _decrypt_in_steps(message, read_step, buffer_size)


@pytest.mark.parametrize("size", GRID_SIZES, ids=lambda size: f"size-{size}")
def test_encrypted_payload_size_follows_c2sp(size: int) -> None:
    """Salt and commitment (56 bytes), full chunks, then one short final chunk (maybe
    empty), each with a 16-byte tag: the grid test checks real payloads against this."""
    full_chunks, final_size = divmod(size, CS)
    expected = 56 + full_chunks * (CS + 16) + final_size + 16
    assert expected == encrypted_payload_size(size)


@_SLOW_CASES
@given(plaintext=plaintexts(), context=encryption_contexts())
def test_bytes_round_trip(plaintext: bytes, context: dict[str, str]) -> None:
    """``decrypt_bytes(encrypt_bytes(x)) == x`` for any plaintext and context."""
    message = kmsnb.encrypt_bytes(plaintext, _KEY_ID, kms=_KMS, encryption_context=context)
    assert plaintext == kmsnb.decrypt_bytes(message, kms=_KMS, encryption_context=context)
    assert len(plaintext) == kmsnb.inspect(io.BytesIO(message)).plaintext_size


@_SLOW_CASES
@given(
    data=st.data(),
    plaintext=plaintexts(),
    buffer_size=st.sampled_from([1, CS, 3 * CS, DEFAULT_BUFFER_SIZE]),
    read_size=st.integers(1, 3 * CS),
)
def test_stream_round_trip_with_random_writes(
    data: st.DataObject, plaintext: bytes, buffer_size: int, read_size: int
) -> None:
    """Writes cut anywhere, any buffer size, any read size: the plaintext comes back."""
    pieces = data.draw(splits(plaintext))
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, _KEY_ID, kms=_KMS, buffer_size=buffer_size) as writer:
        for piece in pieces:
            writer.write(piece)
    assert plaintext == _decrypt_in_steps(sink.getvalue(), read_size, buffer_size)
    assert None is kmsnb.inspect(io.BytesIO(sink.getvalue())).plaintext_size
