"""``kmsnb.connect``: one URI names the KMS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kmsnb.connection import connect
from kmsnb.kms import KmsClient
from kmsnb.kms.aliyun import AliyunKms
from kmsnb.kms.local import LocalKms

if TYPE_CHECKING:
    from conftest import RunningEmulator


@pytest.fixture
def cloud_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """AccessKey variables, so that building a cloud client needs no profile or metadata."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIconnect")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "connect-secret")


@pytest.mark.unit
def test_local_uri_opens_that_store(tmp_path: Path) -> None:
    kms = connect(f"local:{tmp_path}")
    assert isinstance(kms, LocalKms)
    assert isinstance(kms, KmsClient)
    assert str(tmp_path) in kms.location


@pytest.mark.unit
def test_no_uri_reads_the_environment_then_defaults_to_the_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KMSNB_KMS", f"local:{tmp_path / 'from-env'}")
    assert str(tmp_path / "from-env") in connect().location
    monkeypatch.delenv("KMSNB_KMS")
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default"))
    default = connect()
    assert isinstance(default, LocalKms)
    assert str(tmp_path / "default") in default.location
    assert str(tmp_path / "default") in connect("local:").location


@pytest.mark.unit
@pytest.mark.usefixtures("cloud_credentials")
@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("aliyun:cn-shanghai", "Alibaba Cloud KMS cn-shanghai"),
        ("https://kms.cn-beijing.aliyuncs.com", "Alibaba Cloud KMS cn-beijing"),
        (
            "https://kms-vpc.cn-beijing.aliyuncs.com",
            "KMS at https://kms-vpc.cn-beijing.aliyuncs.com",
        ),
        ("http://127.0.0.1:8765", "KMS emulator at http://127.0.0.1:8765"),
        ("http://localhost:8765/", "KMS emulator at http://localhost:8765"),
    ],
)
def test_remote_uris_use_the_official_sdk(uri: str, location: str) -> None:
    kms = connect(uri)
    assert isinstance(kms, AliyunKms)
    assert kms.location == location
    assert "connect-secret" not in repr(kms)


@pytest.mark.unit
@pytest.mark.parametrize(
    "uri",
    [
        "",
        "kms",
        "ftp://127.0.0.1:21",
        "aliyun:",
        "aliyun:Not A Region",
        "http://",
        "http://127.0.0.1:8765/path",
        "http://127.0.0.1:8765/?x=1",
    ],
)
def test_bad_uris_list_the_accepted_forms(uri: str) -> None:
    with pytest.raises(ValueError, match=r"local:PATH|aliyun:REGION"):
        connect(uri)


@pytest.mark.integration
def test_http_uri_reaches_an_emulator_server(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emulator.access_key_secret)
    monkeypatch.setenv("KMSNB_KMS", emulator.endpoint)
    kms = connect()
    key_id = kms.create_key("via connect").key_id
    with kms.generate_data_key(key_id) as data_key:
        assert kms.decrypt_data_key(data_key.ciphertext_blob).plaintext == data_key.plaintext
    # The same keystore, seen in-process.
    assert connect(f"local:{emulator.store_path}").describe_key(key_id).description == "via connect"
