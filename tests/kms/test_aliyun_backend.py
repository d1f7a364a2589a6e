"""AliyunKms, kmsnb's backend on the official SDK, against the emulator's HTTP server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

import kmsnb.kms.aliyun
from kmsnb.errors import KmsAccessDeniedError, KmsError, KmsUnavailableError, WrongKeyError
from kmsnb.kms import DataKey, KmsClient
from kmsnb.kms.aliyun import AliyunKms

if TYPE_CHECKING:
    from conftest import RunningEmulator


CONTEXT = {"purpose": "unit test", "uni": "é"}


def _static_credential(secret: str) -> object:
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    return Client(Config(type="access_key", access_key_id="LTAIunit", access_key_secret=secret))


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_data_key_round_trip(emulator: RunningEmulator) -> None:
    kms = emulator.aliyun_kms()
    assert isinstance(kms, KmsClient)
    key = kms.create_key("envelope")
    with kms.generate_data_key(key.key_id, CONTEXT) as data_key:
        assert isinstance(data_key, DataKey)
        assert isinstance(data_key.plaintext, bytearray)
        assert len(data_key.plaintext) == 32
        assert (data_key.key_id, data_key.key_version_id) == (key.key_id, key.primary_key_version)
        unwrapped = kms.decrypt_data_key(data_key.ciphertext_blob, CONTEXT)
        assert isinstance(unwrapped.plaintext, bytearray)
        assert unwrapped.plaintext == data_key.plaintext
        assert (unwrapped.key_id, unwrapped.key_version_id) == (
            key.key_id,
            key.primary_key_version,
        )
    assert data_key.plaintext == bytearray(32)  # wiped on exit


@pytest.mark.integration
def test_every_management_method(emulator: RunningEmulator) -> None:
    kms = emulator.aliyun_kms()
    key = kms.create_key("managed")
    assert (key.key_state, key.description, key.key_spec) == (
        "Enabled",
        "managed",
        "Aliyun_AES_256",
    )
    assert key.arn.endswith(f":key/{key.key_id}")
    other = kms.create_key()
    assert {k.key_id for k in kms.list_keys()} == {key.key_id, other.key_id}

    kms.create_alias("alias/managed", key.key_id)
    assert kms.describe_key("alias/managed").key_id == key.key_id
    kms.update_alias("alias/managed", other.key_id)
    aliases = kms.list_aliases()
    assert [(a.alias_name, a.key_id) for a in aliases] == [("alias/managed", other.key_id)]
    assert aliases[0].alias_arn.endswith(":alias/managed")
    assert kms.list_aliases(key.key_id) == []
    assert [a.alias_name for a in kms.list_aliases(other.key_id)] == ["alias/managed"]
    kms.delete_alias("alias/managed")
    assert kms.list_aliases() == []

    with kms.generate_data_key(key.key_id, CONTEXT) as data_key:
        version = kms.create_key_version(key.key_id)
        assert version.key_id == key.key_id
        assert kms.describe_key(key.key_id).primary_key_version == version.key_version_id
        versions = kms.list_key_versions(key.key_id)
        assert {v.key_version_id for v in versions} == {
            key.primary_key_version,
            version.key_version_id,
        }
        moved = kms.re_encrypt(
            data_key.ciphertext_blob,
            other.key_id,
            source_encryption_context=CONTEXT,
            destination_encryption_context={"moved": "yes"},
        )
        assert moved.key_id == other.key_id
        unwrapped = kms.decrypt_data_key(moved.ciphertext_blob, {"moved": "yes"})
        assert (unwrapped.plaintext, unwrapped.key_id) == (data_key.plaintext, other.key_id)

    kms.disable_key(key.key_id)
    assert kms.describe_key(key.key_id).key_state == "Disabled"
    kms.enable_key(key.key_id)
    kms.schedule_key_deletion(key.key_id, 7)
    pending = kms.describe_key(key.key_id)
    assert (pending.key_state, bool(pending.deletion_date)) == ("PendingDeletion", True)
    kms.cancel_key_deletion(key.key_id)
    assert kms.describe_key(key.key_id).key_state == "Enabled"


@pytest.mark.integration
def test_listings_follow_pages(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmsnb.kms.aliyun, "PAGE_SIZE", 2)
    kms = emulator.aliyun_kms()
    key_id = kms.create_key().key_id
    for number in range(5):
        kms.create_alias(f"alias/page-{number}", key_id)
    assert len(kms.list_aliases()) == 5
    assert len(kms.list_aliases(key_id)) == 5


@pytest.mark.integration
def test_default_credentials_are_read_from_the_live_environment(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables set after the SDK was imported (a notebook cell) are still used."""
    import alibabacloud_credentials.client  # noqa: F401  (imported before the variables)

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emulator.access_key_secret)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    assert AliyunKms(endpoint=emulator.endpoint).create_key().key_state == "Enabled"


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_wrong_context_is_wrong_key_error(emulator: RunningEmulator) -> None:
    kms = emulator.aliyun_kms()
    data_key = kms.generate_data_key(kms.create_key().key_id, CONTEXT)
    with pytest.raises(WrongKeyError) as caught:
        kms.decrypt_data_key(data_key.ciphertext_blob, {"purpose": "other"})
    assert (caught.value.code, caught.value.http_status) == ("InvalidParameter", 400)
    assert caught.value.request_id


@pytest.mark.integration
def test_refusals_are_access_denied_with_the_service_code(emulator: RunningEmulator) -> None:
    kms = emulator.aliyun_kms()
    key_id = kms.create_key().key_id
    kms.disable_key(key_id)
    with pytest.raises(KmsAccessDeniedError) as disabled:
        kms.generate_data_key(key_id)
    assert (disabled.value.code, disabled.value.http_status) == ("Rejected.Disabled", 409)
    with pytest.raises(KmsAccessDeniedError) as missing:
        kms.describe_key("alias/none")
    assert (missing.value.code, missing.value.http_status) == ("Forbidden.AliasNotFound", 404)
    assert missing.value.request_id
    wrong_secret = emulator.aliyun_kms(secret="not-the-secret")
    with pytest.raises(KmsAccessDeniedError) as signature:
        wrong_secret.list_keys()
    assert signature.value.code == "SignatureDoesNotMatch"
    assert "not-the-secret" not in str(signature.value)


@pytest.mark.integration
def test_other_rejections_are_plain_kms_errors(emulator: RunningEmulator) -> None:
    kms = emulator.aliyun_kms()
    key_id = kms.create_key().key_id
    kms.create_alias("alias/once", key_id)
    with pytest.raises(KmsError) as caught:
        kms.create_alias("alias/once", key_id)
    assert type(caught.value) is KmsError
    assert (caught.value.code, caught.value.http_status) == ("AliasAlreadyExists", 400)


@pytest.mark.integration
def test_unreachable_endpoint_is_unavailable(
    start_emulator: Callable[..., RunningEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kmsnb.kms._retry.time.sleep", lambda seconds: None)
    stopped = start_emulator()
    kms = stopped.aliyun_kms(max_attempts=2, connect_timeout_s=1)
    stopped.server.stop()
    with pytest.raises(KmsUnavailableError, match="could not reach KMS emulator at"):
        kms.create_key()


# --- configuration, no network -------------------------------------------------------------------


@pytest.mark.unit
def test_locations_and_reprs_hide_credentials() -> None:
    credential = _static_credential("a-secret-never-shown")
    cloud = AliyunKms("cn-hangzhou", credential=credential)
    assert cloud.location == "Alibaba Cloud KMS cn-hangzhou"
    assert cloud.endpoint == "https://kms.cn-hangzhou.aliyuncs.com"
    emulator = AliyunKms(endpoint="http://127.0.0.1:8765", credential=credential)
    assert emulator.location == "KMS emulator at http://127.0.0.1:8765"
    vpc = AliyunKms(
        "cn-hangzhou", endpoint="kms-vpc.cn-hangzhou.aliyuncs.com", credential=credential
    )
    assert vpc.location == "KMS at https://kms-vpc.cn-hangzhou.aliyuncs.com"
    for kms in (cloud, emulator, vpc):
        assert "a-secret-never-shown" not in repr(kms)
        assert "LTAIunit" not in repr(kms)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("region_id", "endpoint", "message"),
    [
        (None, None, "region_id"),
        (None, "ftp://127.0.0.1:1", "not a KMS endpoint"),
        (None, "http://127.0.0.1:1/path", "no path"),
        (None, "http://user:pw@127.0.0.1:1", "no user info"),
    ],
)
def test_bad_configuration(
    region_id: str | None, endpoint: str | None, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALIBABA_CLOUD_REGION_ID", raising=False)
    with pytest.raises(ValueError, match=message):
        AliyunKms(region_id, endpoint=endpoint, credential=_static_credential("unused"))


@pytest.mark.unit
def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmsnb.kms.aliyun, "_sdk_cache", [])
    monkeypatch.setitem(sys.modules, "alibabacloud_kms20160120", None)
    with pytest.raises(ImportError, match=r"pip install 'kmsnb\[aliyun\]'"):
        AliyunKms("cn-hangzhou", credential=object())
