"""Every place the library takes a key applies the naming rule: a bare ``NAME`` reaches the
KMS as ``alias/NAME``, a key id unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import kmsnb
from kmsnb import session
from kmsnb.kms.local import LocalKms
from kmsnb.rewrap import rewrap_file
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


def test_envelope_writers_resolve_a_bare_alias(kms: InMemoryKms, key_id: str) -> None:
    message = kmsnb.encrypt_bytes(b"data", "kmsnb-test", kms=kms)  # alias/kmsnb-test
    assert key_id == kmsnb.inspect(io.BytesIO(message)).key_id
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, "kmsnb-test", kms=kms) as writer:
        writer.write(b"streamed")
    assert kmsnb.decrypt_bytes(sink.getvalue(), kms=kms) == b"streamed"


def test_a_key_id_passes_unchanged(kms: InMemoryKms, key_id: str) -> None:
    message = kmsnb.encrypt_bytes(b"data", key_id, kms=kms)
    assert key_id == kmsnb.inspect(io.BytesIO(message)).key_id


def test_encrypt_file_resolves_a_bare_alias(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    source = tmp_path / "plain"
    source.write_bytes(b"file")
    info = kmsnb.encrypt_file(source, tmp_path / "sealed", "kmsnb-test", kms=kms)
    assert key_id == info.key_id


def test_allowed_keys_resolve_bare_aliases(kms: InMemoryKms, key_id: str) -> None:
    message = kmsnb.encrypt_bytes(b"data", key_id, kms=kms)
    assert kmsnb.decrypt_bytes(message, kms=kms, allowed_keys=["kmsnb-test"]) == b"data"


def test_the_session_default_key_is_stored_resolved() -> None:
    try:
        session.set_default_key("sales")
        assert session.get_default_key() == "alias/sales"
        session.set_default_key("key-0123456789abcdef")
        assert session.get_default_key() == "key-0123456789abcdef"
    finally:
        session.set_default_key(None)


def test_rewrap_resolves_the_new_key(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "store")
    old = kms.create_key("old").key_id
    new = kms.create_key("new").key_id
    kms.create_alias("alias/target", new)
    path = tmp_path / "file.kms"
    path.write_bytes(kmsnb.encrypt_bytes(b"payload", old, kms=kms))
    assert new == rewrap_file(path, "target", kms=kms).key_id
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=kms) == b"payload"
