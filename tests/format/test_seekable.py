"""The seekable reader (``kmsnb/_format/seekable.py``) against Cobblestone's stream reader.

The seekable reader is built from the C2SP text with HKDF and AESGCM; the sequential
``DecryptReader`` is ``cryptography.cobblestone``. Every test vector and random files
(sizes on age's boundary grid and drawn by Hypothesis, known and unknown sizes) must give
the same plaintext at any offset, and every damaged file the same error class: at open for
the header, the commitment, the size and the final chunk; when a read touches it for any
other chunk. See docs/FORMAT.md, "Random access".
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import plaintexts

import kmsnb
from kmsnb._format.header import read_header, serialize_header
from kmsnb._format.seekable import SeekableDecryptReader
from kmsnb._format.stream import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    PAYLOAD_PREFIX_SIZE,
    DecryptReader,
    EncryptWriter,
)
from kmsnb.errors import ContextMismatchError, IntegrityError, KmsnbError, TruncatedError
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CS = CHUNK_SIZE
GRID = [0, 1, CS - 1, CS, CS + 1, 2 * CS + 500]
VECTORS = sorted((Path(__file__).resolve().parents[1] / "vectors").glob("*.json"))
DATA_KEY = bytes(range(32))
_SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encrypt(plaintext: bytes, *, known_size: bool = True, key: bytes = DATA_KEY) -> bytes:
    header = serialize_header(
        data_key=key,
        key_id="key",
        key_version_id="v1",
        wrapped_key="d3JhcHBlZA==",
        encryption_context={"dataset": "sales", "é": "ü"},
        plaintext_size=len(plaintext) if known_size else None,
    )
    sink = io.BytesIO()
    with EncryptWriter(sink, header, key) as writer:
        writer.write(plaintext)
    return sink.getvalue()


def _open_seekable(data: bytes, key: bytes = DATA_KEY, **options: Any) -> SeekableDecryptReader:
    source = io.BytesIO(data)
    return SeekableDecryptReader(source, read_header(source), key, **options)


def _sequential(data: bytes, key: bytes = DATA_KEY) -> bytes | type[KmsnbError]:
    """Cobblestone's verdict on ``data``: the plaintext, or the class of its error."""
    try:
        source = io.BytesIO(data)
        with DecryptReader(source, read_header(source), key) as reader:
            return reader.readall()
    except KmsnbError as error:
        return type(error)


def _seekable_verdict(data: bytes, key: bytes = DATA_KEY) -> bytes | type[KmsnbError]:
    """The seekable reader's verdict, reading every chunk in a shuffled order."""
    try:
        with _open_seekable(data, key) as reader:
            size = reader.plaintext_size
            out = bytearray(size)
            indices = list(range(size // CS + 1))
            random.Random(size).shuffle(indices)
            for index in indices:
                reader.seek(index * CS)
                piece = reader.read(CS)
                out[index * CS : index * CS + len(piece)] = piece
            return bytes(out)
    except KmsnbError as error:
        return type(error)


def _random_reads(reader: SeekableDecryptReader, plaintext: bytes, seed: int) -> None:
    rng = random.Random(seed)
    size = len(plaintext)
    for _ in range(40):
        whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
        base = {io.SEEK_SET: 0, io.SEEK_CUR: reader.tell(), io.SEEK_END: size}[whence]
        target = rng.randrange(0, size + 3)
        assert target == reader.seek(target - base, whence)
        count = rng.choice([0, 1, 15, CS - 1, CS, CS + 1, 3 * CS + 7, rng.randrange(0, size + 2)])
        if rng.random() < 0.5:
            assert plaintext[target : target + count] == reader.read(count)
        else:
            buffer = bytearray(count)
            got = reader.readinto(buffer)
            assert plaintext[target : target + count] == bytes(buffer[:got])
        assert target + min(count, max(0, size - target)) == reader.tell()


def _vector(path: Path) -> tuple[dict[str, Any], bytes, bytes]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector, base64.b64decode(vector["file"]), bytes.fromhex(vector["data_key"])


# -- every test vector, against Cobblestone -----------------------------------------------------


@pytest.mark.parametrize("path", VECTORS, ids=lambda path: path.stem)
def test_vector_gives_cobblestones_verdict(path: Path) -> None:
    """Success vectors decrypt to Cobblestone's plaintext at random offsets; failure vectors
    fail with exactly the class Cobblestone's reader raises (and the vector names)."""
    vector, data, key = _vector(path)
    expected = _sequential(data, key)
    assert expected == _seekable_verdict(data, key)
    if vector["expect"] == "success":
        assert isinstance(expected, bytes)
        with _open_seekable(data, key) as reader:
            assert len(expected) == reader.plaintext_size
            _random_reads(reader, expected, seed=len(expected))
    else:
        assert isinstance(expected, type)
        assert issubclass(expected, getattr(kmsnb.errors, vector["expect"]))


# -- random files --------------------------------------------------------------------------


@pytest.mark.parametrize("size", GRID)
@pytest.mark.parametrize("known_size", [True, False], ids=["known-size", "unknown-size"])
@pytest.mark.parametrize("cache_size", [CS, 4 * CS, 1 << 20], ids=["1", "4", "64"])
def test_boundary_grid_random_seeks(size: int, known_size: bool, cache_size: int) -> None:
    """age's grid of sizes, every cache size, random seek/read sequences."""
    plaintext = random.Random(size).randbytes(size)
    data = _encrypt(plaintext, known_size=known_size)
    assert plaintext == _sequential(data)
    with _open_seekable(data, cache_size=cache_size) as reader:
        assert size == reader.plaintext_size
        assert plaintext == reader.read()
        assert reader.read() == b""
        _random_reads(reader, plaintext, seed=size)


@_SLOW
@given(plaintext=plaintexts(max_chunks=4), known_size=st.booleans(), seed=st.integers(0, 2**16))
def test_random_files_random_seeks(plaintext: bytes, known_size: bool, seed: int) -> None:
    """Hypothesis: any size, any sequence of seeks and reads returns the plaintext's bytes."""
    data = _encrypt(plaintext, known_size=known_size)
    with _open_seekable(data, cache_size=2 * CS) as reader:
        _random_reads(reader, plaintext, seed)


def _chunk_of(data: bytes, position: int) -> int | None:
    """The index of the chunk holding byte ``position`` of the file; ``None`` for the
    header, the salt and the commitment."""
    payload_start = read_header(io.BytesIO(data)).size + PAYLOAD_PREFIX_SIZE
    if position < payload_start:
        return None
    return (position - payload_start) // ENCRYPTED_CHUNK_SIZE


@_SLOW
@given(
    plaintext=plaintexts(max_chunks=4),
    known_size=st.booleans(),
    where=st.floats(0, 1),
    bit=st.integers(0, 7),
)
def test_single_bit_flip(plaintext: bytes, known_size: bool, where: float, bit: int) -> None:
    """A flipped bit fails at open (header, commitment, final chunk: Cobblestone's class) or
    when a read touches its chunk (IntegrityError naming it), and is sticky; the other
    chunks read as before, and no byte of the damaged chunk comes out."""
    data = bytearray(_encrypt(plaintext, known_size=known_size))
    position = min(len(data) - 1, int(where * len(data)))
    chunk = _chunk_of(bytes(data), position)
    data[position] ^= 1 << bit
    expected = _sequential(bytes(data))
    assert isinstance(expected, type)
    final_index = len(plaintext) // CS
    event("flip at open" if chunk is None or chunk == final_index else "flip in a chunk")
    if chunk is None or chunk == final_index:
        with pytest.raises(KmsnbError) as caught:
            _open_seekable(bytes(data))
        assert expected is type(caught.value)
        return
    assert expected is IntegrityError
    with _open_seekable(bytes(data)) as reader:
        for index in range(final_index + 1):
            if index != chunk:
                reader.seek(index * CS)
                assert plaintext[index * CS : (index + 1) * CS] == reader.read(CS)
        buffer = bytearray(b"\xaa" * CS)
        reader.seek(chunk * CS)
        with pytest.raises(IntegrityError, match=f"chunk {chunk} failed") as caught:
            reader.readinto(buffer)
        assert chunk == caught.value.chunk_index
        assert bytes(b"\xaa" * CS) == buffer
        reader.seek(0)
        with pytest.raises(IntegrityError):  # sticky, even for a chunk that verified
            reader.read(1)


@_SLOW
@given(plaintext=plaintexts(max_chunks=3), known_size=st.booleans(), data=st.data())
def test_truncation_or_append_detected_at_open(
    plaintext: bytes, known_size: bool, data: st.DataObject
) -> None:
    """Any cut after the header, or bytes appended, fails at open with Cobblestone's class."""
    file = _encrypt(plaintext, known_size=known_size)
    header_size = read_header(io.BytesIO(file)).size
    if data.draw(st.booleans(), label="append"):
        extra = data.draw(st.integers(1, ENCRYPTED_CHUNK_SIZE + 20), label="appended")
        damaged = file + random.Random(extra).randbytes(extra)
    else:
        damaged = file[: data.draw(st.integers(header_size, len(file) - 1), label="cut")]
    expected = _sequential(damaged)
    assert isinstance(expected, type)
    with pytest.raises(KmsnbError) as caught:
        _open_seekable(damaged)
    assert expected is type(caught.value)


# -- the reader itself ------------------------------------------------------------------------


def test_only_touched_chunks_are_decrypted() -> None:
    """Reading one byte of chunk 5 of 10 decrypts that chunk (and the final one, on open)."""
    plaintext = random.Random(1).randbytes(10 * CS + 3)
    with _open_seekable(_encrypt(plaintext), cache_size=CS) as reader:
        calls: list[int] = []
        reader_any: Any = reader
        real = reader_any._decrypt_run
        reader_any._decrypt_run = lambda first, last: calls.append(first) or real(first, last)
        reader.seek(5 * CS + 100)
        assert plaintext[5 * CS + 100 : 5 * CS + 101] == reader.read(1)
        assert calls == [5]


def test_close_wipes_key_material_and_plaintext() -> None:
    """After close the derived key buffer is zero and no decrypted chunk is held."""
    plaintext = random.Random(2).randbytes(3 * CS)
    reader = _open_seekable(_encrypt(plaintext))
    assert plaintext == reader.read()
    state: Any = reader
    held = list(state._cache.values())
    reader.close()
    assert bytes(len(state._derived)) == state._derived
    assert state._aead is None
    assert all(not any(chunk) for chunk in held)
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_unseekable_source_is_refused() -> None:
    """A pipe-like source gets a clear UnsupportedOperation, not a late failure."""

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._inner.readinto(buffer)

    data = _encrypt(b"x" * 100)
    source = Pipe(data)
    header = read_header(source)
    with pytest.raises(io.UnsupportedOperation, match="open_decrypt"):
        SeekableDecryptReader(source, header, DATA_KEY)


def test_threads_share_one_reader() -> None:
    """Concurrent seek+read pairs (as a Parquet reader's threads might do) stay consistent."""
    plaintext = random.Random(3).randbytes(20 * CS + 11)
    failures: list[str] = []
    with _open_seekable(_encrypt(plaintext), cache_size=2 * CS) as reader:
        lock = threading.Lock()

        def work(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(50):
                start, count = rng.randrange(len(plaintext)), rng.randrange(3 * CS)
                with lock:  # seek and read as one step, as pyarrow's PythonFile does
                    reader.seek(start)
                    got = reader.read(count)
                if got != plaintext[start : start + count]:
                    failures.append(f"{start}+{count}")

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


# -- through the envelope -----------------------------------------------------------------


def test_open_decrypt_seekable_through_the_kms(kms: InMemoryKms, key_id: str) -> None:
    """The envelope's seekable reader unwraps the key like open_decrypt and checks the
    context before calling the KMS."""
    plaintext = random.Random(4).randbytes(5 * CS + 9)
    data = kmsnb.encrypt_bytes(plaintext, key_id, kms=kms, encryption_context={"a": "1"})
    with kmsnb.open_decrypt_seekable(io.BytesIO(data), kms=kms) as reader:
        reader.seek(-10, io.SEEK_END)
        assert plaintext[-10:] == reader.read()
        assert key_id == reader.header.key_id
    calls = dict(kms.calls)
    with pytest.raises(ContextMismatchError):
        kmsnb.open_decrypt_seekable(io.BytesIO(data), kms=kms, encryption_context={"a": "2"})
    assert calls == dict(kms.calls)


def test_open_decrypt_seekable_refuses_a_pipe_before_the_kms(kms: InMemoryKms, key_id: str) -> None:
    """An unseekable file is refused before any KMS call."""
    data = kmsnb.encrypt_bytes(b"abc", key_id, kms=kms)

    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

    calls = dict(kms.calls)
    with pytest.raises(io.UnsupportedOperation):
        kmsnb.open_decrypt_seekable(Pipe(data), kms=kms)
    assert calls == dict(kms.calls)


def test_truncated_file_through_the_envelope(kms: InMemoryKms, key_id: str) -> None:
    """A file cut at a chunk boundary fails at open, before any read."""
    data = kmsnb.encrypt_bytes(b"z" * (3 * CS), key_id, kms=kms)
    header_size = kmsnb.inspect(io.BytesIO(data)).header_size
    cut = data[: header_size + PAYLOAD_PREFIX_SIZE + 2 * ENCRYPTED_CHUNK_SIZE]
    with pytest.raises(TruncatedError):
        kmsnb.open_decrypt_seekable(io.BytesIO(cut), kms=kms)
