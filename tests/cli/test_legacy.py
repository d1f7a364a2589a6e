"""The tutorial's .cipher files: parsing, decryption through the KMS, conversion."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from kmsnb import decrypt_file, inspect
from kmsnb.errors import FormatError, IntegrityError, WrongKeyError
from kmsnb.kms._base import KmsClient
from kmsnb.legacy import (
    convert_legacy_file,
    decrypt_legacy,
    decrypt_legacy_file,
    looks_like_legacy,
    master_key_of,
    parse_legacy,
    read_legacy,
)
from kmsnb.testing import InMemoryKms

from .conftest import tutorial_cipher

pytestmark = pytest.mark.unit

SALES = b"region,units\ncn-hangzhou,1200\ncn-shanghai,980\n"


@pytest.fixture
def cipher_file(tmp_path: Path, kms: KmsClient, key_id: str) -> Path:
    path = tmp_path / "sales.csv.cipher"
    path.write_bytes(tutorial_cipher(kms, key_id, SALES))
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:4]


def _write_lines(path: Path, lines: list[bytes], ending: bytes = b"\n") -> None:
    path.write_bytes(b"".join(line + ending for line in lines))


@pytest.mark.parametrize("size", [0, 1, 16, 100_000])
def test_decrypts_what_the_tutorial_wrote(
    tmp_path: Path, kms: KmsClient, key_id: str, size: int
) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    source = tmp_path / "in.cipher"
    source.write_bytes(tutorial_cipher(kms, key_id, plaintext))
    assert size == decrypt_legacy_file(source, tmp_path / "out", kms=kms)
    assert plaintext == (tmp_path / "out").read_bytes()


@pytest.mark.parametrize(
    ("ending", "trailer"), [(b"\r\n", b""), (b"  \n", b"\n\n"), (b"\n", b"")], ids=str
)
def test_tolerates_line_endings_and_trailing_blank_lines(
    cipher_file: Path, kms: KmsClient, ending: bytes, trailer: bytes
) -> None:
    _write_lines(cipher_file, _lines(cipher_file), ending)
    cipher_file.write_bytes(cipher_file.read_bytes() + trailer)
    assert decrypt_legacy(read_legacy(cipher_file), kms=kms) == SALES


def test_no_final_newline(cipher_file: Path, kms: KmsClient) -> None:
    cipher_file.write_bytes(cipher_file.read_bytes().rstrip(b"\n"))
    assert decrypt_legacy(read_legacy(cipher_file), kms=kms) == SALES


@pytest.mark.parametrize("count", [1, 3, 5])
def test_wrong_line_count_is_a_format_error(cipher_file: Path, count: int) -> None:
    lines = (_lines(cipher_file) * 2)[:count]
    _write_lines(cipher_file, lines)
    with pytest.raises(FormatError, match=f"found {count} line"):
        read_legacy(cipher_file)


@pytest.mark.parametrize("index", range(4))
def test_bad_base64_names_the_line(cipher_file: Path, index: int) -> None:
    lines = _lines(cipher_file)
    lines[index] = lines[index][:-2] + b"*="
    _write_lines(cipher_file, lines)
    with pytest.raises(FormatError, match=f"line {index + 1} "):
        read_legacy(cipher_file)


def test_tag_of_the_wrong_size_is_a_format_error(cipher_file: Path) -> None:
    lines = _lines(cipher_file)
    lines[3] = base64.b64encode(base64.b64decode(lines[3])[:12])
    _write_lines(cipher_file, lines)
    with pytest.raises(FormatError, match="line 4"):
        read_legacy(cipher_file)


@pytest.mark.parametrize("index", [1, 2, 3])
def test_altered_nonce_ciphertext_or_tag_fails_authentication(
    cipher_file: Path, tmp_path: Path, kms: KmsClient, index: int
) -> None:
    lines = _lines(cipher_file)
    raw = bytearray(base64.b64decode(lines[index]))
    raw[len(raw) // 2] ^= 0x01
    lines[index] = base64.b64encode(bytes(raw))
    _write_lines(cipher_file, lines)
    with pytest.raises(IntegrityError, match="EAX tag"):
        decrypt_legacy_file(cipher_file, tmp_path / "out", kms=kms)
    assert not (tmp_path / "out").exists()


def test_a_foreign_wrapped_key_is_refused_by_the_kms(cipher_file: Path, kms: KmsClient) -> None:
    with pytest.raises(WrongKeyError):
        decrypt_legacy(read_legacy(cipher_file), kms=kms, encryption_context={"a": "b"})


def test_size_is_bounded_for_paths_and_streams(cipher_file: Path) -> None:
    size = cipher_file.stat().st_size
    with pytest.raises(FormatError, match="refuses those over"):
        read_legacy(cipher_file, max_size=size - 1)
    with pytest.raises(FormatError, match="refuses those over"):
        read_legacy(io.BytesIO(cipher_file.read_bytes()), max_size=size - 1)
    assert read_legacy(io.BytesIO(cipher_file.read_bytes()), max_size=size).tag


def test_detection(cipher_file: Path, tmp_path: Path, kms: KmsClient, key_id: str) -> None:
    assert looks_like_legacy(cipher_file.read_bytes()[:8])
    kmsnb_file = tmp_path / "x.kms"
    convert_legacy_file(cipher_file, kmsnb_file, kms=kms)
    assert not looks_like_legacy(kmsnb_file.read_bytes()[:8])
    assert not looks_like_legacy(b"name,ssn")
    assert not looks_like_legacy(b"")


def test_convert_keeps_the_master_key_by_default(
    cipher_file: Path, tmp_path: Path, kms: KmsClient, key_id: str
) -> None:
    kms.create_key("another key, listed too")
    kms.create_key_version(key_id)  # the file's version is no longer the primary one
    converted = tmp_path / "sales.csv.kms"
    info = convert_legacy_file(cipher_file, converted, kms=kms, encryption_context={"p": "a"})
    assert (key_id, {"p": "a"}, len(SALES)) == (
        info.key_id,
        dict(info.encryption_context),
        info.plaintext_size,
    )
    assert info == inspect(converted)
    decrypt_file(converted, tmp_path / "back.csv", kms=kms)
    assert (tmp_path / "back.csv").read_bytes() == SALES


def test_convert_to_another_key(cipher_file: Path, tmp_path: Path, kms: KmsClient) -> None:
    other = kms.create_key("new home").key_id
    info = convert_legacy_file(cipher_file, tmp_path / "new.kms", kms=kms, key_id=other)
    assert other == info.key_id


def test_convert_keeps_the_key_that_decrypt_names_even_when_the_kms_cannot_list(
    tmp_path: Path,
) -> None:
    kms = InMemoryKms()  # it cannot list keys, but its Decrypt names the key that unwrapped
    key_id = kms.create_key()
    source = tmp_path / "in.cipher"
    source.write_bytes(tutorial_cipher(kms, key_id, SALES))  # type: ignore[arg-type]
    assert master_key_of(kms, read_legacy(source).wrapped_key) is None
    assert key_id == convert_legacy_file(source, tmp_path / "out.kms", kms=kms).key_id


def test_parse_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        parse_legacy("a\nb\nc\nd\n")  # type: ignore[arg-type]
