"""LocalKms: the in-process backend, its dataclasses, its errors, its manners."""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path

import pytest

from kmsnb.emulator import KeyStore, KeyStoreCorruptedError, KmsService, Limits
from kmsnb.errors import (
    KmsAccessDeniedError,
    KmsError,
    KmsUnavailableError,
    WrongKeyError,
)
from kmsnb.kms import DATA_KEY_SIZE, AliasInfo, KeyInfo, KeyVersionInfo, Kms, KmsClient
from kmsnb.kms.local import LocalKms, error_from_response

from .conftest import DAY, FakeClock

pytestmark = pytest.mark.unit


@pytest.fixture
def kms(service: KmsService) -> LocalKms:
    return LocalKms(service=service)


@pytest.fixture
def key_id(kms: LocalKms) -> str:
    return kms.create_key("test key").key_id


def test_is_a_kms_client(kms: LocalKms) -> None:
    assert isinstance(kms, Kms)
    assert isinstance(kms, KmsClient)


def test_location_and_repr(store_dir: Path, tmp_path: Path) -> None:
    kms = LocalKms(store_dir)
    assert f"local emulator at {store_dir}" == kms.location
    assert f"LocalKms({str(store_dir)!r})" == repr(kms)
    assert f"local emulator at {tmp_path / 'default-store'}" == LocalKms().location
    with pytest.raises(ValueError, match="not both"):
        LocalKms(store_dir, service=KmsService(KeyStore(store_dir)))


def test_nothing_secret_in_reprs(kms: LocalKms, key_id: str, store_dir: Path) -> None:
    root_key = (store_dir / "root.key").read_text().strip()
    with kms.generate_data_key(key_id) as data_key:
        plaintext = base64.b64encode(data_key.plaintext).decode()
        shown = repr(kms) + repr(data_key) + repr(kms._service) + repr(kms._service.store)
        shown += str(vars(kms))
    for secret in (root_key, plaintext, data_key.plaintext.hex()):
        assert secret not in shown
    assert bytearray(DATA_KEY_SIZE) == data_key.plaintext  # wiped on leaving the block


@pytest.mark.parametrize(
    "encryption_context", [None, {}, {"purpose": "test"}, {"b": "2", "a": "é & = ✓"}]
)
def test_data_key_round_trip(
    kms: LocalKms, key_id: str, encryption_context: dict[str, str] | None
) -> None:
    data_key = kms.generate_data_key(key_id, encryption_context)
    assert isinstance(data_key.plaintext, bytearray)
    assert len(data_key.plaintext) == DATA_KEY_SIZE
    assert key_id == data_key.key_id
    assert kms.describe_key(key_id).primary_key_version == data_key.key_version_id
    reordered = dict(reversed(list((encryption_context or {}).items())))
    unwrapped = kms.decrypt_data_key(data_key.ciphertext_blob, reordered)
    assert isinstance(unwrapped.plaintext, bytearray)
    assert data_key.plaintext == unwrapped.plaintext
    # Decrypt's answer names the master key and version that unwrapped the data key.
    assert (key_id, data_key.key_version_id) == (unwrapped.key_id, unwrapped.key_version_id)


def test_alias_and_arn_as_key_id(kms: LocalKms, key_id: str) -> None:
    kms.create_alias("alias/notebook", key_id)
    arn = kms.describe_key(key_id).arn
    for reference in ("alias/notebook", arn):
        data_key = kms.generate_data_key(reference)
        assert key_id == data_key.key_id
        assert data_key.plaintext == kms.decrypt_data_key(data_key.ciphertext_blob).plaintext


def test_wrong_context_is_wrong_key(kms: LocalKms, key_id: str) -> None:
    blob = kms.generate_data_key(key_id, {"file": "a.csv"}).ciphertext_blob
    for context in (None, {"file": "b.csv"}, {"file": "a.csv", "extra": "x"}):
        with pytest.raises(WrongKeyError) as info:
            kms.decrypt_data_key(blob, context)
        assert (info.value.code, info.value.http_status) == ("InvalidParameter", 400)
        assert info.value.request_id is not None
        uuid.UUID(info.value.request_id)
        assert "a.csv" not in str(info.value)


def test_tampered_blob_is_wrong_key(kms: LocalKms, key_id: str) -> None:
    raw = bytearray(base64.b64decode(kms.generate_data_key(key_id).ciphertext_blob))
    raw[60] ^= 0x80
    with pytest.raises(WrongKeyError):
        kms.decrypt_data_key(base64.b64encode(raw).decode())


def test_blob_from_another_store_is_key_not_found(kms: LocalKms, tmp_path: Path) -> None:
    other = LocalKms(tmp_path / "other")
    blob = other.generate_data_key(other.create_key().key_id).ciphertext_blob
    with pytest.raises(KmsAccessDeniedError) as info:
        kms.decrypt_data_key(blob)
    assert (info.value.code, info.value.http_status) == ("Forbidden.KeyNotFound", 404)


def test_state_errors_are_access_denied(kms: LocalKms, key_id: str) -> None:
    blob = kms.generate_data_key(key_id).ciphertext_blob
    kms.disable_key(key_id)
    for call in (lambda: kms.generate_data_key(key_id), lambda: kms.decrypt_data_key(blob)):
        with pytest.raises(KmsAccessDeniedError) as info:
            call()
        assert (info.value.code, info.value.http_status) == ("Rejected.Disabled", 409)
    with pytest.raises(KmsAccessDeniedError, match=r"Forbidden\.AliasNotFound"):
        kms.generate_data_key("alias/nothing")


def test_invalid_requests_are_kms_errors(kms: LocalKms, key_id: str) -> None:
    with pytest.raises(KmsError) as info:
        kms.schedule_key_deletion(key_id, 3)
    assert KmsError is type(info.value)
    assert (info.value.code, info.value.http_status) == ("InvalidParameter", 400)
    kms.create_alias("alias/a", key_id)
    with pytest.raises(KmsError, match="AliasAlreadyExists") as info:
        kms.create_alias("alias/a", key_id)
    assert KmsError is type(info.value)


def test_a_broken_store_is_a_keystore_error_naming_it_not_the_network(
    kms: LocalKms, key_id: str, store_dir: Path
) -> None:
    (store_dir / "keystore.json").write_text("garbage")
    with pytest.raises(KeyStoreCorruptedError) as info:
        kms.describe_key(key_id)
    assert not isinstance(info.value, KmsError)  # no "check your network" hint
    assert str(store_dir / "keystore.json") in str(info.value)


@pytest.mark.parametrize(
    ("action", "code", "http_status", "expected"),
    [
        ("Decrypt", "InvalidParameter", 400, WrongKeyError),
        ("ReEncrypt", "InvalidParameter", 400, WrongKeyError),
        ("GenerateDataKey", "InvalidParameter", 400, KmsError),
        ("Decrypt", "MissingParameter", 400, KmsError),
        ("Decrypt", "Rejected.Disabled", 409, KmsAccessDeniedError),
        ("Decrypt", "Rejected.PendingDeletion", 409, KmsAccessDeniedError),
        ("EnableKey", "Rejected.StateModifiedFailed", 409, KmsAccessDeniedError),
        ("DescribeKey", "Forbidden.KeyNotFound", 404, KmsAccessDeniedError),
        ("DescribeKey", "Forbidden.NoPermission", 403, KmsAccessDeniedError),
        ("DescribeKey", "InvalidAccessKeyId.NotFound", 404, KmsAccessDeniedError),
        ("DescribeKey", "SignatureDoesNotMatch", 400, KmsAccessDeniedError),
        ("CreateKey", "Rejected.LimitExceeded", 400, KmsError),
        ("Decrypt", "Rejected.Throttling", 429, KmsUnavailableError),
        ("Decrypt", "Throttling", 400, KmsUnavailableError),
        ("Decrypt", "InternalFailure", 500, KmsUnavailableError),
        ("Decrypt", "ServiceUnavailableTemporary", 503, KmsUnavailableError),
        ("Decrypt", "SomethingNew", 502, KmsUnavailableError),
        ("Decrypt", "DryRunOperation", 400, KmsError),
    ],
)
def test_error_mapping(action: str, code: str, http_status: int, expected: type[Exception]) -> None:
    message = 'The specified parameter "CiphertextBlob" is not valid.'
    error = error_from_response(action, code, message, http_status, "req-1")
    assert expected is type(error)
    assert (code, http_status, "req-1") == (error.code, error.http_status, error.request_id)


def test_management(kms: LocalKms, key_id: str) -> None:
    info = kms.describe_key(key_id)
    assert isinstance(info, KeyInfo)
    assert (key_id, "Enabled", "test key", None, "Disabled") == (
        info.key_id,
        info.key_state,
        info.description,
        info.deletion_date,
        info.automatic_rotation,
    )
    assert [key_id] == [key.key_id for key in kms.list_keys()]

    kms.disable_key(key_id)
    assert kms.describe_key(key_id).key_state == "Disabled"
    kms.enable_key(key_id)
    kms.schedule_key_deletion(key_id, 7)
    pending = kms.describe_key(key_id)
    assert (pending.key_state, pending.deletion_date) == ("PendingDeletion", "2023-11-21T22:13:20Z")
    kms.cancel_key_deletion(key_id)
    assert kms.describe_key(key_id).key_state == "Enabled"

    other = kms.create_key().key_id
    kms.create_alias("alias/one", key_id)
    kms.create_alias("alias/two", key_id)
    kms.update_alias("alias/two", other)
    arn = "acs:kms:cn-hangzhou:1234567890123456:alias/one"
    assert [AliasInfo("alias/one", key_id, arn)] == kms.list_aliases(key_id)
    assert [alias.alias_name for alias in kms.list_aliases()] == ["alias/one", "alias/two"]
    kms.delete_alias("alias/one")
    assert kms.list_aliases(key_id) == []

    first = kms.list_key_versions(key_id)
    version = kms.create_key_version(key_id)
    assert isinstance(version, KeyVersionInfo)
    assert [*first, version] == kms.list_key_versions(key_id)
    assert version.key_version_id == kms.describe_key(key_id).primary_key_version


def test_rotation_shows_in_key_info(service: KmsService, kms: LocalKms, key_id: str) -> None:
    policy = {"KeyId": key_id, "EnableAutomaticRotation": "true", "RotationInterval": "30d"}
    service.call("UpdateRotationPolicy", policy)
    info = kms.describe_key(key_id)
    assert (info.automatic_rotation, info.rotation_interval) == ("Enabled", "2592000s")


def test_re_encrypt(kms: LocalKms, key_id: str) -> None:
    destination = kms.create_key().key_id
    data_key = kms.generate_data_key(key_id, {"a": "1"})
    wrapped = kms.re_encrypt(
        data_key.ciphertext_blob,
        destination,
        source_encryption_context={"a": "1"},
        destination_encryption_context={"b": "2"},
    )
    assert destination == wrapped.key_id
    unwrapped = kms.decrypt_data_key(wrapped.ciphertext_blob, {"b": "2"})
    assert (data_key.plaintext, destination) == (unwrapped.plaintext, unwrapped.key_id)
    with pytest.raises(WrongKeyError):
        kms.re_encrypt(data_key.ciphertext_blob, destination)


def test_listing_pages_through_everything(store: KeyStore, clock: FakeClock) -> None:
    kms = LocalKms(service=KmsService(store, clock=clock, limits=Limits(keys=250)))
    key_ids = []
    for _ in range(205):
        key_ids.append(kms.create_key().key_id)
        clock.advance(1)
    for index in range(101):
        kms.create_alias(f"alias/k{index:03}", key_ids[0])
    assert key_ids == [key.key_id for key in kms.list_keys()]
    assert len(kms.list_aliases()) == 101
    assert len(kms.list_aliases(key_ids[0])) == 101


def test_deleted_key(kms: LocalKms, key_id: str, clock: FakeClock) -> None:
    blob = kms.generate_data_key(key_id).ciphertext_blob
    kms.schedule_key_deletion(key_id, 7)
    clock.advance(7 * DAY)
    assert kms.list_keys() == []
    with pytest.raises(KmsAccessDeniedError, match=r"Forbidden\.KeyNotFound"):
        kms.decrypt_data_key(blob)


def test_threads(kms: LocalKms, key_id: str) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for index in range(150):
                context = {"n": str(index)}
                with kms.generate_data_key(key_id, context) as data_key:
                    unwrapped = kms.decrypt_data_key(data_key.ciphertext_blob, context)
                    assert data_key.plaintext == unwrapped.plaintext
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_close_forgets_material(kms: LocalKms, key_id: str) -> None:
    data_key = kms.generate_data_key(key_id)
    kms.close()
    with kms:  # usable again: material is unwrapped anew, the lock file reopened
        assert data_key.plaintext == kms.decrypt_data_key(data_key.ciphertext_blob).plaintext
        kms.disable_key(key_id)
