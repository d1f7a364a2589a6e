"""Fixtures for the emulator's engine, keystore and in-process backend."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsnb.emulator import KeyStore, KmsService, ServiceError

START_TIME = 1_700_000_000.0
DAY = 86400


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = START_TIME) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the developer's root key, never write to the real user data dir."""
    monkeypatch.delenv("KMSNB_EMULATOR_ROOT_KEY", raising=False)
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default-store"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir: Path) -> Iterator[KeyStore]:
    keystore = KeyStore(store_dir)
    yield keystore
    keystore.close()


@pytest.fixture
def service(store: KeyStore, clock: FakeClock) -> KmsService:
    return KmsService(store, clock=clock)


KeyFactory = Callable[..., str]
ErrorExpectation = Callable[[str, int], contextlib.AbstractContextManager[Any]]


@pytest.fixture
def new_key(service: KmsService) -> KeyFactory:
    """Create a key through ``service`` with CreateKey parameters; return its id."""

    def create(**params: str) -> str:
        key_id: str = service.call("CreateKey", params)["KeyMetadata"]["KeyId"]
        return key_id

    return create


@contextlib.contextmanager
def _raises_service_error(code: str, http_status: int) -> Iterator[Any]:
    with pytest.raises(ServiceError) as info:
        yield info
    assert (code, http_status) == (info.value.code, info.value.http_status), info.value.message


@pytest.fixture
def service_error() -> ErrorExpectation:
    """``with service_error(code, status):`` expects exactly that ServiceError."""
    return _raises_service_error


def import_material(
    call: Callable[[str, dict[str, str]], dict[str, Any]], key_id: str, material: bytes
) -> None:
    """Import ``material`` into the EXTERNAL key ``key_id`` as a client would (RSA-OAEP)."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    parameters = call(
        "GetParametersForImport",
        {"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
    )
    public_key: Any = serialization.load_der_public_key(base64.b64decode(parameters["PublicKey"]))
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    call(
        "ImportKeyMaterial",
        {
            "KeyId": key_id,
            "ImportToken": parameters["ImportToken"],
            "EncryptedKeyMaterial": base64.b64encode(public_key.encrypt(material, oaep)).decode(),
        },
    )
