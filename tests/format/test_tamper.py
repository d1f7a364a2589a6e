"""The tamper grid: every field of a 3-chunk file damaged, through ``decrypt_file``.

Which error is "right" for each field follows docs/FORMAT.md "Decoding":

* structure the parser checks (magic, version, lengths, sizes) → FormatError, or
  TruncatedError when a changed header size points past the end of the file;
* text the parser checks (content type printable ASCII, UTF-8, sorted context keys)
  → FormatError when the flip breaks the rule;
* the encryption context, which the KMS authenticates → WrongKeyError from the KMS;
* the wrapped key → whatever the KMS says of the damaged blob (not found, cannot decrypt),
  or IntegrityError when it still unwraps (base64 has spare bits);
* everything else in the header (the slot MAC covers it), the salt and commitment, and
  any chunk → IntegrityError; cuts → TruncatedError; trailing data → TruncatedError.

Every failure leaves no destination and no temporary file; an existing destination is
untouched even with ``overwrite=True``. Through ``open_decrypt``, no byte of a failing
chunk is ever returned.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import kmsnb
from kmsnb._format.header import MAX_HEADER_SIZE, MIN_HEADER_SIZE
from kmsnb._format.stream import CHUNK_SIZE, DEFAULT_BUFFER_SIZE, ENCRYPTED_CHUNK_SIZE
from kmsnb.errors import (
    FormatError,
    IntegrityError,
    KmsnbError,
    TruncatedError,
    WrongKeyError,
)
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CS = CHUNK_SIZE
PLAINTEXT_SIZE = 2 * CS + 500  # chunks 0 and 1 full, chunk 2 final
CONTEXT = {"dataset": "sales", "owner": "ana"}


@dataclass(frozen=True)
class Sample:
    """One encrypted file, the KMS that made it, and where its fields lie."""

    kms: InMemoryKms
    plaintext: bytes
    data: bytes
    fields: dict[str, range]
    context_lengths: list[int]  # the offsets of the u16 lengths inside the context
    context_pairs: list[tuple[range, range]]  # (key bytes, value bytes) per pair
    header_size: int

    def chunk_start(self, index: int) -> int:
        return self.header_size + 56 + index * ENCRYPTED_CHUNK_SIZE


def _walk_header(data: bytes) -> tuple[dict[str, range], list[int], list[tuple[range, range]]]:
    """The byte ranges of every header field, read from the layout in FORMAT.md."""
    fields: dict[str, range] = {}
    position = 0

    def take(name: str, size: int) -> bytes:
        nonlocal position
        fields[name] = range(position, position + size)
        position += size
        return data[position - size : position]

    def text(name: str, length_size: int) -> None:
        (size,) = struct.unpack(
            ">B" if length_size == 1 else ">H", take(f"{name}_length", length_size)
        )
        take(name, size)

    take("magic", 8)
    take("version", 1)
    take("header_size", 4)
    take("algorithm", 1)
    text("content_type", 1)
    take("plaintext_size", 8)
    (context_size,) = struct.unpack(">I", take("context_size", 4))
    context_start = position
    (count,) = struct.unpack(">H", take("context_count", 2))
    pairs: list[tuple[range, range]] = []
    lengths: list[int] = []
    for _ in range(count):
        key_length = data[position : position + 2]
        lengths.extend(range(position, position + 2))
        position += 2
        key = range(position, position + struct.unpack(">H", key_length)[0])
        position = key.stop
        lengths.extend(range(position, position + 2))
        value = range(
            position + 2, position + 2 + struct.unpack(">H", data[position : position + 2])[0]
        )
        position = value.stop
        pairs.append((key, value))
    assert context_start + context_size == position
    text("key_id", 2)
    text("key_version_id", 2)
    text("wrapped_key", 2)
    take("slot_mac", 32)
    if position < struct.unpack(">I", data[9:13])[0]:  # the reserved field: u16 len || zeros
        (reserved_size,) = struct.unpack(">H", take("reserved_length", 2))
        take("reserved", reserved_size)
    assert struct.unpack(">I", data[9:13])[0] == position
    return fields, lengths, pairs


@pytest.fixture(scope="module")
def sample() -> Sample:
    kms = InMemoryKms()
    key_id = kms.create_key()
    plaintext = os.urandom(PLAINTEXT_SIZE)
    data = kmsnb.encrypt_bytes(plaintext, key_id, kms=kms, encryption_context=CONTEXT)
    fields, lengths, pairs = _walk_header(data)
    header_size = kmsnb.inspect(io.BytesIO(data)).header_size
    assert fields["reserved"].stop == header_size
    return Sample(kms, plaintext, data, fields, lengths, pairs, header_size)


def _flip(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def _decrypt_file_error(tmp_path: Path, kms: InMemoryKms, data: bytes) -> KmsnbError:
    """Decrypt ``data`` as a file; return the error, after checking that nothing was left."""
    source = tmp_path / "src.kmsnb"
    source.write_bytes(data)
    destination = tmp_path / "plain.bin"
    try:
        kmsnb.decrypt_file(source, destination, kms=kms)
    except KmsnbError as error:
        assert sorted(os.listdir(tmp_path)) == ["src.kmsnb"], "a file was left behind"
        return error
    raise AssertionError("damaged file decrypted without an error")


# -- the expected error of each header field, per flipped byte ----------------------------

STRUCTURE = {
    "magic",
    "version",
    "algorithm",
    "content_type_length",
    "context_size",
    "context_count",
    "context_lengths",
    "key_id_length",
    "key_version_id_length",
    "wrapped_key_length",
    "reserved_length",  # any other length runs past the header or leaves bytes after it
    "reserved",  # reserved bytes are zero
}


def _expected(sample: Sample, field: str, offset: int, bit: int) -> type[KmsnbError]:
    changed = sample.data[offset] ^ (1 << bit)
    if field in STRUCTURE:
        return FormatError
    if field == "header_size":
        declared = struct.unpack(">I", _flip(sample.data, offset, bit)[9:13])[0]
        if MIN_HEADER_SIZE <= declared <= MAX_HEADER_SIZE and declared > len(sample.data):
            return TruncatedError
        return FormatError
    if field == "content_type":
        return IntegrityError if 0x20 <= changed <= 0x7E else FormatError
    if field in {"key_id", "key_version_id"}:
        return IntegrityError if changed < 0x80 else FormatError  # else: not UTF-8
    if field == "wrapped_key":
        if changed >= 0x80:
            return FormatError
        start = sample.fields["wrapped_key"].start
        blob = _flip(sample.data, offset, bit)[start : sample.fields["wrapped_key"].stop]
        try:
            sample.kms.decrypt_data_key(blob.decode("ascii"), CONTEXT)
        except KmsnbError as error:
            return type(error)
        return IntegrityError  # the same key came back: the slot MAC sees the change
    if field == "context_text":
        mutated = _flip(sample.data, offset, bit)
        try:
            keys = [
                mutated[key.start : key.stop].decode("utf-8") for key, _ in sample.context_pairs
            ]
            for _, value in sample.context_pairs:
                mutated[value.start : value.stop].decode("utf-8")
        except UnicodeDecodeError:
            return FormatError
        encoded = [key.encode() for key in keys]
        if encoded != sorted(set(encoded)):
            return FormatError
        return WrongKeyError  # a different context: the KMS refuses to unwrap
    return IntegrityError  # plaintext_size, slot_mac


def _header_targets(sample: Sample, field: str) -> Iterator[int]:
    if field == "context_text":
        for key, value in sample.context_pairs:
            yield from key
            yield from value
    elif field == "context_lengths":
        yield from sample.context_lengths
    else:
        yield from sample.fields[field]


HEADER_FIELDS = [
    "magic",
    "version",
    "header_size",
    "algorithm",
    "content_type_length",
    "content_type",
    "plaintext_size",
    "context_size",
    "context_count",
    "context_lengths",
    "context_text",
    "key_id_length",
    "key_id",
    "key_version_id_length",
    "key_version_id",
    "wrapped_key_length",
    "wrapped_key",
    "slot_mac",
    "reserved_length",
    "reserved",
]


@pytest.mark.parametrize("field", HEADER_FIELDS)
def test_header_bit_flips(sample: Sample, field: str, tmp_path: Path) -> None:
    """Every bit of every byte of the field, flipped alone, fails with the field's error."""
    mismatches = []
    for offset in _header_targets(sample, field):
        for bit in range(8):
            expected = _expected(sample, field, offset, bit)
            error = _decrypt_file_error(tmp_path, sample.kms, _flip(sample.data, offset, bit))
            if type(error) is not expected:
                mismatches.append(
                    f"byte {offset} bit {bit}: {error!r}, expected {expected.__name__}"
                )
    assert mismatches == []


def test_every_header_byte_is_covered(sample: Sample) -> None:
    """The fields above tile the whole header, so no header byte escapes the grid."""
    covered = sorted(offset for field in HEADER_FIELDS for offset in _header_targets(sample, field))
    assert list(range(sample.header_size)) == covered


# -- payload -------------------------------------------------------------------------------


def _payload_targets(sample: Sample) -> Iterator[tuple[str, int, int | None]]:
    """(name, offset, chunk index) for the salt, commitment, and first/middle/last byte of
    every chunk's ciphertext and tag."""
    start = sample.header_size
    for name, offset in [("salt", start), ("salt-end", start + 23), ("commitment", start + 24)]:
        yield name, offset, None
    yield "commitment-end", start + 55, None
    sizes = [CS, CS, PLAINTEXT_SIZE - 2 * CS]
    for index, size in enumerate(sizes):
        chunk = sample.chunk_start(index)
        for where, offset in [("first", 0), ("middle", size // 2), ("last", size - 1)]:
            yield f"chunk{index}-ciphertext-{where}", chunk + offset, index
        for where, offset in [("first", 0), ("middle", 8), ("last", 15)]:
            yield f"chunk{index}-tag-{where}", chunk + size + offset, index


def test_payload_targets_reach_the_end(sample: Sample) -> None:
    """The last tag byte of the final chunk is the file's last byte."""
    assert len(sample.data) - 1 == max(offset for _, offset, _ in _payload_targets(sample))


@pytest.mark.parametrize("bit", [0, 7])
def test_payload_bit_flips(sample: Sample, bit: int, tmp_path: Path) -> None:
    """Salt, commitment, and any chunk byte: IntegrityError naming the chunk (not a
    truncation: the length is right)."""
    mismatches = []
    for name, offset, chunk_index in _payload_targets(sample):
        error = _decrypt_file_error(tmp_path, sample.kms, _flip(sample.data, offset, bit))
        if type(error) is not IntegrityError or error.chunk_index != chunk_index:
            mismatches.append(f"{name}: {error!r} (chunk {getattr(error, 'chunk_index', '-')})")
    assert mismatches == []


# -- truncation, reordering, extension -----------------------------------------------------


def _cuts(sample: Sample) -> dict[str, int]:
    header_end = sample.header_size
    final_end = len(sample.data)
    return {
        "in-header": header_end // 2,
        "at-header-end": header_end,
        "in-salt": header_end + 10,
        "in-commitment": header_end + 40,
        "at-chunk0": sample.chunk_start(0),
        "mid-chunk0": sample.chunk_start(0) + CS // 2,
        "at-chunk1": sample.chunk_start(1),
        "mid-chunk1": sample.chunk_start(1) + 1,
        "at-chunk2": sample.chunk_start(2),
        "mid-chunk2": sample.chunk_start(2) + 250,
        "in-final-tag": final_end - 1,
    }


@pytest.mark.parametrize(
    "cut",
    [
        "in-header",
        "at-header-end",
        "in-salt",
        "in-commitment",
        "at-chunk0",
        "mid-chunk0",
        "at-chunk1",
        "mid-chunk1",
        "at-chunk2",
        "mid-chunk2",
        "in-final-tag",
    ],
)
def test_truncation_is_detected(sample: Sample, cut: str, tmp_path: Path) -> None:
    """A file cut at any chunk boundary or inside any part raises TruncatedError."""
    size = _cuts(sample)[cut]
    error = _decrypt_file_error(tmp_path, sample.kms, sample.data[:size])
    assert TruncatedError is type(error), repr(error)


def _chunk(sample: Sample, index: int) -> bytes:
    return sample.data[sample.chunk_start(index) : sample.chunk_start(index + 1)]


def test_swapped_chunks(sample: Sample, tmp_path: Path) -> None:
    """Chunks 0 and 1 swapped: chunk 0 fails authentication (its nonce counter differs)."""
    data = (
        sample.data[: sample.chunk_start(0)]
        + _chunk(sample, 1)
        + _chunk(sample, 0)
        + sample.data[sample.chunk_start(2) :]
    )
    error = _decrypt_file_error(tmp_path, sample.kms, data)
    assert (IntegrityError, 0) == (type(error), error.chunk_index)  # type: ignore[attr-defined]


@pytest.mark.parametrize("position", [0, 1, 2])
def test_duplicated_chunk(sample: Sample, position: int, tmp_path: Path) -> None:
    """A full chunk repeated anywhere fails: the file is longer than its header says, or
    (read in smaller steps) the copy fails authentication."""
    at = sample.chunk_start(position)
    data = sample.data[:at] + _chunk(sample, 0) + sample.data[at:]
    error = _decrypt_file_error(tmp_path, sample.kms, data)
    assert isinstance(error, IntegrityError), repr(error)


@pytest.mark.parametrize("extra", [b"\x00", bytes(16), bytes(ENCRYPTED_CHUNK_SIZE)])
def test_appended_bytes(sample: Sample, extra: bytes, tmp_path: Path) -> None:
    """Bytes after the final chunk: TruncatedError (data follows the final chunk)."""
    error = _decrypt_file_error(tmp_path, sample.kms, sample.data + extra)
    assert TruncatedError is type(error), repr(error)


def test_header_from_another_file(sample: Sample, tmp_path: Path) -> None:
    """One file's header on another's payload, same key and context: the commitment fails."""
    other = kmsnb.encrypt_bytes(
        sample.plaintext, sample.kms.create_key(), kms=sample.kms, encryption_context=CONTEXT
    )
    other_header = kmsnb.inspect(io.BytesIO(other)).header_size
    data = other[:other_header] + sample.data[sample.header_size :]
    error = _decrypt_file_error(tmp_path, sample.kms, data)
    assert IntegrityError is type(error), repr(error)


# -- what is left on disk, and what is released -------------------------------------------


def _damaged_samples(sample: Sample) -> dict[str, bytes]:
    fields = sample.fields
    return {
        "magic": _flip(sample.data, 0, 0),
        "content-type": _flip(sample.data, fields["content_type"].start, 5),
        "context": _flip(sample.data, sample.context_pairs[0][1].start, 0),
        "wrapped-key": _flip(sample.data, fields["wrapped_key"].start + 70, 0),
        "slot-mac": _flip(sample.data, fields["slot_mac"].start, 0),
        "commitment": _flip(sample.data, sample.header_size + 30, 0),
        "final-chunk": _flip(sample.data, len(sample.data) - 1, 0),
        "truncated": sample.data[: sample.chunk_start(2)],
        "trailing": sample.data + b"\x00",
    }


@pytest.mark.parametrize(
    "damage",
    [
        "magic",
        "content-type",
        "context",
        "wrapped-key",
        "slot-mac",
        "commitment",
        "final-chunk",
        "truncated",
        "trailing",
    ],
)
def test_existing_destination_untouched(sample: Sample, damage: str, tmp_path: Path) -> None:
    """With ``overwrite=True``, a failed decryption leaves the old destination as it was
    and no temporary file beside it."""
    source = tmp_path / "src.kmsnb"
    source.write_bytes(_damaged_samples(sample)[damage])
    destination = tmp_path / "plain.bin"
    destination.write_bytes(b"previous contents")
    with pytest.raises(KmsnbError):
        kmsnb.decrypt_file(source, destination, kms=sample.kms, overwrite=True)
    assert destination.read_bytes() == b"previous contents"
    assert sorted(os.listdir(tmp_path)) == ["plain.bin", "src.kmsnb"]


def _released_before_error(sample: Sample, data: bytes, buffer_size: int, step: int) -> bytes:
    released = bytearray()
    reader = kmsnb.open_decrypt(io.BytesIO(data), kms=sample.kms, buffer_size=buffer_size)
    with pytest.raises(IntegrityError), reader:  # noqa: PT012 - any read may raise
        while piece := reader.read(step):
            released += piece
    return bytes(released)


@pytest.mark.parametrize(
    "buffer_size", [CS, DEFAULT_BUFFER_SIZE], ids=["buffer-CS", "buffer-default"]
)
@pytest.mark.parametrize("step", [1000, CS, 3 * CS])
def test_no_byte_of_a_failing_chunk_is_released(
    sample: Sample, buffer_size: int, step: int
) -> None:
    """Before the error, ``read`` returns a prefix of the plaintext that ends at or before
    the failing chunk: never a byte of it, nor of any chunk after it."""
    damaged = {}
    for index, size in enumerate([CS, CS, 500]):
        damaged[index] = _flip(sample.data, sample.chunk_start(index) + size // 2, 3)
    cuts = {1: sample.data[: sample.chunk_start(1) + 100], 2: sample.data[: sample.chunk_start(2)]}
    for failing_chunk, data in [*damaged.items(), *cuts.items()]:
        released = _released_before_error(sample, data, buffer_size, step)
        assert sample.plaintext[: len(released)] == released
        assert len(released) <= failing_chunk * CS


@pytest.mark.parametrize("method", ["read", "readall", "read_verified"])
def test_failure_is_raised_again_on_later_reads(sample: Sample, method: str) -> None:
    """Once a chunk has failed, every later read raises again: a caller that catches the
    first error and reads on must never see a clean end of file after a partial plaintext.

    BUG: ``DecryptReader._fail`` (and ``_finish``) set ``_done``, and ``readinto``,
    ``readall`` and ``read_verified`` test ``_done`` before calling ``_next_block``, the only
    place that re-raises the stored error, so they return ``b""`` (end of file) instead.
    """
    damaged = _flip(sample.data, sample.chunk_start(1) + 5, 0)
    reader = kmsnb.open_decrypt(io.BytesIO(damaged), kms=sample.kms, buffer_size=CS)
    assert sample.plaintext[:CS] == reader.read(CS)
    with pytest.raises(IntegrityError):
        reader.read(CS)
    later_reads: dict[str, Callable[[], bytes]] = {
        "read": lambda: reader.read(CS),
        "readall": reader.readall,
        "read_verified": lambda: bytes(reader.read_verified()),
    }
    with pytest.raises(IntegrityError):
        later_reads[method]()
