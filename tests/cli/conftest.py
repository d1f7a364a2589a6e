"""Fixtures for the command line, the tutorial's legacy files, the demo and binder/."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kmsnb.cli import main
from kmsnb.connection import connect
from kmsnb.kms._base import KmsClient


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never use the developer's KMS, keystore or credentials."""
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default-store"))
    monkeypatch.delenv("KMSNB_KMS", raising=False)
    monkeypatch.delenv("KMSNB_EMULATOR_ROOT_KEY", raising=False)


@pytest.fixture
def kms_uri(tmp_path: Path) -> str:
    return f"local:{tmp_path / 'kms'}"


@pytest.fixture
def kms(kms_uri: str) -> Iterator[KmsClient]:
    client = connect(kms_uri)
    yield client
    client.close()  # type: ignore[attr-defined]


@pytest.fixture
def key_id(kms: KmsClient) -> str:
    return kms.create_key("cli tests").key_id


@dataclass
class Result:
    status: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(kms_uri: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``kmsnb --kms <test store> ARGS...`` in-process."""

    def run_(*args: str) -> Result:
        capsys.readouterr()  # drop what earlier steps printed
        status = main(["--kms", kms_uri, *args])
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run_


def tutorial_cipher(kms: KmsClient, key_id: str, plaintext: bytes) -> bytes:
    """A ``.cipher`` file made the tutorial's way, with pycryptodome (an independent EAX).

    GenerateDataKey; AES key = base64.b64decode(Plaintext); AES.MODE_EAX with its default
    16-byte nonce; four lines: CiphertextBlob, nonce, ciphertext, tag, each ending in \\n.
    """
    from Crypto.Cipher import AES

    data_key = kms.generate_data_key(key_id)
    plaintext_b64 = base64.b64encode(bytes(data_key.plaintext))  # GenerateDataKey's Plaintext
    data_key.wipe()
    cipher = AES.new(base64.b64decode(plaintext_b64), AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    lines = [
        data_key.ciphertext_blob,
        base64.b64encode(cipher.nonce).decode(),
        base64.b64encode(ciphertext).decode(),
        base64.b64encode(tag).decode(),
    ]
    return "".join(line + "\n" for line in lines).encode()
