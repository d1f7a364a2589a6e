"""A KMS error names the key asked for and the KMS asked (issue 12: "Specified Key is not
found" alone does not say that the file was made with another keystore)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kmsnb
from kmsnb._hints import hint_for, naming_key_and_kms
from kmsnb.errors import KmsAccessDeniedError, KmsUnavailableError
from kmsnb.kms.local import LocalKms

pytestmark = [pytest.mark.unit]


def test_encrypting_under_a_missing_alias_names_it_and_the_kms(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "empty")
    with pytest.raises(KmsAccessDeniedError) as caught:
        kmsnb.encrypt_bytes(b"x", "sales", kms=kms)
    message = str(caught.value)
    assert "'alias/sales'" in message
    assert f"local emulator at {tmp_path / 'empty'}" in message
    assert caught.value.code == "Forbidden.AliasNotFound"  # the KMS's code is kept
    hint = hint_for(caught.value, "cli")
    assert hint is not None
    assert "--kms" in hint


def test_decrypting_with_another_keystore_names_the_key_and_the_kms(tmp_path: Path) -> None:
    writer = LocalKms(tmp_path / "writer")
    key_id = writer.create_key("k").key_id
    message = kmsnb.encrypt_bytes(b"x", key_id, kms=writer)
    with pytest.raises(KmsAccessDeniedError) as caught:
        kmsnb.decrypt_bytes(message, kms=LocalKms(tmp_path / "other"))
    assert key_id in str(caught.value)
    assert str(tmp_path / "other") in str(caught.value)
    assert caught.value.code == "Forbidden.KeyNotFound"


def test_the_error_keeps_its_class_and_attributes() -> None:
    class Located:
        location = "Alibaba Cloud KMS cn-hangzhou"

    with pytest.raises(KmsUnavailableError) as caught, naming_key_and_kms("alias/a", Located()):
        raise KmsUnavailableError("timed out", code="Timeout", outcome_unknown=True)
    assert caught.value.outcome_unknown
    assert caught.value.code == "Timeout"
    assert "key 'alias/a' in Alibaba Cloud KMS cn-hangzhou" in str(caught.value)
    assert isinstance(caught.value.__cause__, KmsUnavailableError)


def test_a_message_that_names_the_kms_already_is_left_alone() -> None:
    class Located:
        location = "KMS emulator at http://127.0.0.1:1"

    error = KmsAccessDeniedError("refused by KMS emulator at http://127.0.0.1:1")
    with pytest.raises(KmsAccessDeniedError) as caught, naming_key_and_kms("k", Located()):
        raise error
    assert caught.value is error
