"""The key slot is verified once per decrypt: a reader takes the proof, never a flag.

``Header.verify_key_slot`` returns a :class:`VerifiedKeySlot` that only it can make; the
readers accept it for the very header and key it was made with, and check the slot
themselves when given none.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import kmsnb
from kmsnb._format.header import Header, VerifiedKeySlot, read_header, serialize_header
from kmsnb._format.seekable import SeekableDecryptReader
from kmsnb._format.stream import DecryptReader, EncryptWriter
from kmsnb.errors import IntegrityError
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

READERS = [DecryptReader, SeekableDecryptReader]


def _message(key: bytearray, plaintext: bytes) -> bytes:
    header = serialize_header(
        data_key=key,
        key_id="key-1",
        key_version_id="v1",
        wrapped_key="d3JhcHBlZA==",
        encryption_context={"k": "v"},
        plaintext_size=len(plaintext),
    )
    sink = io.BytesIO()
    with EncryptWriter(sink, header, key) as writer:
        writer.write(plaintext)
    return sink.getvalue()


def _parsed(message: bytes) -> tuple[io.BytesIO, Header]:
    source = io.BytesIO(message)
    return source, read_header(source)


@pytest.mark.parametrize("reader_type", READERS)
def test_a_reader_given_the_proof_reads_without_checking_again(
    reader_type: type[DecryptReader] | type[SeekableDecryptReader],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, plaintext = bytearray(os.urandom(32)), os.urandom(5000)
    source, header = _parsed(_message(key, plaintext))
    proof = header.verify_key_slot(key)
    calls: list[Header] = []
    original = Header.verify_key_slot

    def counting(self: Header, data_key: bytes | bytearray) -> VerifiedKeySlot:
        calls.append(self)
        return original(self, data_key)

    monkeypatch.setattr(Header, "verify_key_slot", counting)
    with reader_type(source, header, key, verified_slot=proof) as reader:
        assert reader.read() == plaintext
    assert calls == []


@pytest.mark.parametrize("reader_type", READERS)
def test_a_reader_refuses_a_proof_for_another_header_or_key(
    reader_type: type[DecryptReader] | type[SeekableDecryptReader],
) -> None:
    key, other_key = bytearray(os.urandom(32)), bytearray(os.urandom(32))
    source, header = _parsed(_message(key, b"data"))
    _, other_header = _parsed(_message(other_key, b"data"))
    for proof, data_key in [
        (other_header.verify_key_slot(other_key), key),  # another header's proof
        (header.verify_key_slot(key), bytearray(key)),  # an equal key, not the one checked
    ]:
        with pytest.raises(ValueError, match="verified_slot"):
            reader_type(
                io.BytesIO(source.getvalue()[header.size :]), header, data_key, verified_slot=proof
            )


@pytest.mark.parametrize("reader_type", READERS)
def test_a_reader_without_a_proof_still_checks_the_slot(
    reader_type: type[DecryptReader] | type[SeekableDecryptReader],
) -> None:
    key = bytearray(os.urandom(32))
    source, header = _parsed(_message(key, b"data"))
    with pytest.raises(IntegrityError, match="key slot"):
        reader_type(source, header, bytearray(os.urandom(32)))


def test_a_proof_cannot_be_made_by_hand_nor_faked_with_a_flag() -> None:
    key = bytearray(os.urandom(32))
    source, header = _parsed(_message(key, b"data"))
    with pytest.raises(TypeError, match="verify_key_slot"):
        VerifiedKeySlot(header, key, _seal=object())
    with pytest.raises(ValueError, match="verified_slot"):
        DecryptReader(source, header, key, verified_slot=True)  # type: ignore[arg-type]
    assert "key-1" in repr(header.verify_key_slot(key))


def test_decrypt_file_verifies_the_key_slot_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = InMemoryKms()
    key_id = kms.create_key()
    source, encrypted, decrypted = tmp_path / "a", tmp_path / "a.kms", tmp_path / "b"
    source.write_bytes(os.urandom(4096))
    kmsnb.encrypt_file(source, encrypted, key_id, kms=kms)
    calls: list[Header] = []
    original = Header.verify_key_slot

    def counting(self: Header, data_key: bytes | bytearray) -> VerifiedKeySlot:
        calls.append(self)
        return original(self, data_key)

    monkeypatch.setattr(Header, "verify_key_slot", counting)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms)
    assert decrypted.read_bytes() == source.read_bytes()
    assert len(calls) == 1
    with kmsnb.envelope.open_decrypt_seekable(encrypted.open("rb"), kms=kms) as reader:
        assert reader.read() == source.read_bytes()
    assert len(calls) == 2
