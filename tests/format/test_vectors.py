"""The format test vectors in ``tests/vectors/``, read by kmsnb and by the verifier.

A vector holds a whole file, its data key and the expected outcome, so the format is
checked without a KMS: kmsnb's ``read_header`` and ``DecryptReader`` (hence
``cryptography.cobblestone``) on one side, ``tests/c2sp_verifier.py`` (HKDF and AESGCM
from ``cryptography``) on the other, and the generator (a third, field-by-field encoder)
must reproduce the committed files byte for byte. See docs/FORMAT.md, "Test vectors".
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import c2sp_verifier
import pytest

import kmsnb.errors
from kmsnb._format.header import parse_header, read_header, serialize_header
from kmsnb._format.stream import CHUNK_SIZE, DEFAULT_BUFFER_SIZE, DecryptReader, EncryptWriter

pytestmark = [pytest.mark.unit]

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
VECTOR_FILES = sorted(VECTORS.glob("*.json"))
BUFFER_SIZES = [CHUNK_SIZE, DEFAULT_BUFFER_SIZE]


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kmsnb_vector_generator", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _kmsnb_decrypt(data: bytes, data_key: bytes, buffer_size: int) -> bytes:
    source = io.BytesIO(data)
    header = read_header(source)
    with DecryptReader(source, header, data_key, buffer_size=buffer_size) as reader:
        return reader.readall()


SUCCESS = [path for path in VECTOR_FILES if _load(path)["expect"] == "success"]
FAILURE = [path for path in VECTOR_FILES if _load(path)["expect"] != "success"]


def test_vector_set_is_complete() -> None:
    """The folder holds both kinds of vectors, each with the fields the spec lists."""
    assert len(SUCCESS) >= 10
    assert len(FAILURE) >= 30
    for path in VECTOR_FILES:
        vector = _load(path)
        required = {"description", "expect", "data_key", "file"}
        if vector["expect"] == "success":
            required |= {"plaintext_size", "plaintext_sha256"}
        assert required <= vector.keys(), path.name
        assert len(bytes.fromhex(vector["data_key"])) == 32


def test_generator_reproduces_committed_vectors() -> None:
    """``generate.py`` writes exactly the committed files, and no others are present."""
    expected = _generator().build_vectors()
    actual = {path.name: path.read_text(encoding="utf-8") for path in VECTOR_FILES}
    assert sorted(expected) == sorted(actual)
    for name, text in expected.items():
        assert text == actual[name], f"{name} differs from what generate.py writes"


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES, ids=["chunk-buffer", "default-buffer"])
@pytest.mark.parametrize("path", SUCCESS, ids=lambda path: path.stem)
def test_success_vector_decrypts_with_kmsnb(path: Path, buffer_size: int) -> None:
    """kmsnb decrypts the file to a plaintext of the recorded size and SHA-256."""
    vector = _load(path)
    plaintext = _kmsnb_decrypt(
        base64.b64decode(vector["file"]), bytes.fromhex(vector["data_key"]), buffer_size
    )
    assert vector["plaintext_size"] == len(plaintext)
    assert vector["plaintext_sha256"] == hashlib.sha256(plaintext).hexdigest()


@pytest.mark.parametrize("path", SUCCESS, ids=lambda path: path.stem)
def test_success_vector_decrypts_with_verifier(path: Path) -> None:
    """The independent verifier decrypts the file to the same digest."""
    vector = _load(path)
    plaintext = c2sp_verifier.verify(
        base64.b64decode(vector["file"]), bytes.fromhex(vector["data_key"])
    )
    assert vector["plaintext_sha256"] == hashlib.sha256(plaintext).hexdigest()


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES, ids=["chunk-buffer", "default-buffer"])
@pytest.mark.parametrize("path", FAILURE, ids=lambda path: path.stem)
def test_failure_vector_fails_in_kmsnb_with_named_class(path: Path, buffer_size: int) -> None:
    """kmsnb raises the vector's class (a subclass is allowed, as FORMAT.md says)."""
    vector = _load(path)
    expected = getattr(kmsnb.errors, vector["expect"])
    with pytest.raises(kmsnb.errors.KmsnbError) as caught:
        _kmsnb_decrypt(
            base64.b64decode(vector["file"]), bytes.fromhex(vector["data_key"]), buffer_size
        )
    assert isinstance(caught.value, expected), f"{type(caught.value).__name__}: {caught.value}"


@pytest.mark.parametrize("path", FAILURE, ids=lambda path: path.stem)
def test_failure_vector_rejected_by_verifier(path: Path) -> None:
    """The independent verifier rejects every failure vector too."""
    vector = _load(path)
    with pytest.raises(c2sp_verifier.Rejected):
        c2sp_verifier.verify(base64.b64decode(vector["file"]), bytes.fromhex(vector["data_key"]))


@pytest.mark.parametrize("path", SUCCESS, ids=lambda path: path.stem)
def test_generator_header_equals_kmsnb_header(path: Path) -> None:
    """kmsnb's ``serialize_header`` writes the same bytes as the generator for each field set."""
    vector = _load(path)
    data = base64.b64decode(vector["file"])
    parsed = read_header(io.BytesIO(data))
    rebuilt = serialize_header(
        data_key=bytes.fromhex(vector["data_key"]),
        key_id=parsed.key_id,
        key_version_id=parsed.key_version_id,
        wrapped_key=parsed.wrapped_key,
        encryption_context=parsed.encryption_context,
        content_type=parsed.content_type,
        plaintext_size=parsed.plaintext_size,
        reserved_size=parsed.reserved_size,
    )
    assert data[: parsed.size] == rebuilt.raw


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 40000])
@pytest.mark.parametrize("known_size", [True, False], ids=["known-size", "unknown-size"])
def test_kmsnb_output_accepted_by_verifier(size: int, known_size: bool) -> None:
    """The encryption direction: what EncryptWriter (Cobblestone, random salt) writes, the
    verifier decrypts; the vectors alone only test decryption."""
    data_key = bytes(range(32))
    plaintext = hashlib.shake_128(b"verifier round trip").digest(size)
    header = serialize_header(
        data_key=data_key,
        key_id="key",
        key_version_id="version",
        wrapped_key="d3JhcHBlZA==",
        encryption_context={"purpose": "test", "é": "ü"},
        plaintext_size=size if known_size else None,
    )
    sink = io.BytesIO()
    with EncryptWriter(sink, header, data_key) as writer:
        writer.write(plaintext)
    assert plaintext == c2sp_verifier.verify(sink.getvalue(), data_key)
    assert header.raw == parse_header(sink.getvalue()[: header.size]).raw
