"""Encrypt and Decrypt of a caller's small key (kmsnb.kms.WrappingKms, issue 14 item 4):
the same through the in-process emulator, the official SDK against its HTTP server, the
in-memory fake and the data-key cache."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.errors import KmsAccessDeniedError, KmsError, WrongKeyError
from kmsnb.kms import CachingKms, UnwrappedKey, WrappedKey, WrappingKms
from kmsnb.kms.local import LocalKms
from kmsnb.testing import InMemoryKms

if TYPE_CHECKING:
    from conftest import RunningEmulator

pytestmark = pytest.mark.unit

KEK = bytes(range(16))


def _key(kms: Any) -> str:
    if isinstance(kms, InMemoryKms):
        return kms.create_key(alias="alias/wrap")
    key_id: str = kms.create_key("wrap").key_id
    kms.create_alias("alias/wrap", key_id)
    return key_id


@pytest.fixture(
    params=["local", pytest.param("aliyun", marks=pytest.mark.integration), "in-memory", "cached"]
)
def wrapping(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "aliyun":
        emulator: RunningEmulator = request.getfixturevalue("emulator")
        yield emulator.aliyun_kms()
    elif request.param == "in-memory":
        yield InMemoryKms()
    else:
        with LocalKms(tmp_path / "store") as local:
            yield CachingKms(local) if request.param == "cached" else local


def test_round_trip_names_the_key(wrapping: Any) -> None:
    assert isinstance(wrapping, WrappingKms)
    key_id = _key(wrapping)
    wrapped = wrapping.encrypt("alias/wrap", KEK)
    assert isinstance(wrapped, WrappedKey)
    assert wrapped.key_id == key_id
    assert KEK.hex() not in wrapped.ciphertext_blob
    with wrapping.decrypt(wrapped.ciphertext_blob) as unwrapped:
        assert isinstance(unwrapped, UnwrappedKey)
        assert bytes(unwrapped.plaintext) == KEK
        assert (unwrapped.key_id, unwrapped.key_version_id) == (key_id, wrapped.key_version_id)
        assert "hidden" in repr(unwrapped)
    assert not any(unwrapped.plaintext)  # wiped on leaving the block


def test_context_and_refusals(wrapping: Any) -> None:
    _key(wrapping)
    wrapped = wrapping.encrypt("alias/wrap", KEK, {"purpose": "test"})
    assert bytes(wrapping.decrypt(wrapped.ciphertext_blob, {"purpose": "test"}).plaintext) == KEK
    with pytest.raises(WrongKeyError):
        wrapping.decrypt(wrapped.ciphertext_blob)
    with pytest.raises(ValueError, match="1 to 4096"):
        wrapping.encrypt("alias/wrap", b"")
    with pytest.raises(ValueError, match="1 to 4096"):
        wrapping.encrypt("alias/wrap", b"k" * 4097)
    with pytest.raises(TypeError):
        wrapping.encrypt("alias/wrap", "not bytes")
    assert len(wrapping.encrypt("alias/wrap", b"k" * 4096).ciphertext_blob) > 4096
    wrapping.disable_key("alias/wrap")
    with pytest.raises(KmsAccessDeniedError):
        wrapping.encrypt("alias/wrap", KEK)
    with pytest.raises(KmsAccessDeniedError):
        wrapping.decrypt(wrapped.ciphertext_blob, {"purpose": "test"})


@pytest.mark.integration
def test_the_kms_encrypts_the_base64_text(emulator: RunningEmulator) -> None:
    """What the SDK's Decrypt answers for kmsnb's blob is the key's base64 text, so a
    Spark or Java client unwraps it with Base64.decode(Decrypt(blob).Plaintext); and a
    Plaintext that is not base64 is refused as a key."""
    kms = emulator.aliyun_kms()
    _key(kms)
    sdk = emulator.sdk("acs3")
    blob = kms.encrypt("alias/wrap", KEK).ciphertext_blob
    assert sdk.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == base64.b64encode(KEK).decode()
    text_blob = sdk.call("Encrypt", KeyId="alias/wrap", Plaintext="not base64!")["CiphertextBlob"]
    with pytest.raises(KmsError, match="not base64"):
        kms.decrypt(text_blob)


def test_the_cache_passes_wrapping_through(tmp_path: Path) -> None:
    inner = InMemoryKms()
    _key(inner)
    cache = CachingKms(inner)
    blob = cache.encrypt("alias/wrap", KEK).ciphertext_blob
    for _ in range(3):
        assert bytes(cache.decrypt(blob).plaintext) == KEK
    assert (inner.calls["encrypt"], inner.calls["decrypt"]) == (1, 3)  # nothing cached


def test_the_cache_says_when_its_kms_cannot_wrap() -> None:
    class DataKeysOnly:
        def generate_data_key(self, key_id: str, encryption_context: Any = None) -> Any: ...

        def decrypt_data_key(self, blob: str, encryption_context: Any = None) -> Any: ...

    with pytest.raises(TypeError, match="WrappingKms"):
        CachingKms(DataKeysOnly()).encrypt("k", KEK)
