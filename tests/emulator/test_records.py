"""The keystore's records (``_records``, ``_secret_records``): every kind survives format 2,
and nothing the service accepts is something the strict decoding would later refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from kmsnb.emulator import KeyStore, KeyStoreMigrationError, KmsService, _records
from kmsnb.emulator._records import derive_mac_key, document_mac, read_write_id
from kmsnb.emulator._state import KeyRecord, KeyVersionRecord, StoreState
from kmsnb.kms.local import LocalKms

from .conftest import DAY, ErrorExpectation, FakeClock, import_material

pytestmark = pytest.mark.unit


def _populate(service: KmsService) -> dict[str, str]:
    """One of each: AES, SM4 and imported keys, text and binary secrets with stages."""
    call = service.call
    sm4 = call("CreateKey", {"KeySpec": "Aliyun_SM4", "DKMSInstanceId": "kst-hzz0001"})
    sm4_id = sm4["KeyMetadata"]["KeyId"]
    imported = call("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    import_material(call, imported, os.urandom(32))
    call("CreateSecret", {"SecretName": "db/password", "SecretData": "one", "VersionId": "v1"})
    call("PutSecretValue", {"SecretName": "db/password", "SecretData": "two", "VersionId": "v2"})
    call(
        "CreateSecret",
        {
            "SecretName": "blob",
            "SecretData": "AP8=",
            "SecretDataType": "binary",
            "VersionId": "b1",
            "EncryptionKeyId": sm4_id,
            "Description": "binary, under SM4",
            "Tags": json.dumps([{"TagKey": "team", "TagValue": "data"}]),
        },
    )
    return {"sm4": sm4_id, "imported": imported}


def test_every_kind_of_record_survives_a_reopen(store_dir: Path, clock: FakeClock) -> None:
    store = KeyStore(store_dir)
    ids = _populate(KmsService(store, clock=clock))
    before = store.snapshot()
    store.close()
    reopened = KeyStore(store_dir)
    after = reopened.snapshot()
    assert after.keys == before.keys
    assert after.versions == before.versions
    assert after.aliases == before.aliases
    assert after.secrets == before.secrets
    assert after.keys[ids["sm4"]].dkms_instance_id == "kst-hzz0001"
    assert after.keys[ids["imported"]].material_check
    service = KmsService(reopened, clock=clock)
    value = service.call("GetSecretValue", {"SecretName": "blob"})
    assert (value["SecretData"], value["SecretDataType"]) == ("AP8=", "binary")
    reopened.close()


def test_a_format_1_keystore_with_secrets_migrates_like_one_of_0_1(
    store_dir: Path, clock: FakeClock
) -> None:
    """A development build wrote format 1 with secrets and import fields: it is read as
    strictly, refused until migrated, and rewritten in format 2 with everything kept."""
    store = KeyStore(store_dir)
    _populate(KmsService(store, clock=clock))
    before = store.snapshot()
    store.close()
    path = store_dir / "keystore.json"
    document: dict[str, Any] = json.loads(path.read_bytes())
    del document["mac"]
    document["format"] = "kmsnb-emulator-keystore/1"
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreMigrationError, match="KMSNB_EMULATOR_MIGRATE"):
        KeyStore(store_dir)
    migrated = KeyStore(store_dir, migrate=True)
    assert migrated.snapshot().secrets == before.secrets
    assert migrated.snapshot().keys == before.keys
    migrated.close()
    written = json.loads(path.read_bytes())
    assert (written["format"], "mac" in written) == ("kmsnb-emulator-keystore/2", True)


def test_cancelling_the_deletion_of_a_key_whose_material_was_deleted_awaits_import(
    store: KeyStore, service: KmsService, store_dir: Path
) -> None:
    """Not Enabled without material (which no call could use, and no reader would accept)."""
    key_id = service.call("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    import_material(service.call, key_id, material)
    service.call("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    service.call("DeleteKeyMaterial", {"KeyId": key_id})
    service.call("CancelKeyDeletion", {"KeyId": key_id})
    described = service.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]
    assert described["KeyState"] == "PendingImport"
    KeyStore(store_dir).close()  # the keystore still reads back
    import_material(service.call, key_id, material)
    assert service.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["KeyState"] == "Enabled"


def _secret(service: KmsService, name: str = "bounded") -> None:
    service.call("CreateSecret", {"SecretName": name, "SecretData": "x", "VersionId": "v1"})


BOUNDS: dict[str, tuple[str, dict[str, str], str, int]] = {
    # name: (action, fixed parameters, bounded parameter, its largest accepted length)
    "CreateKey DKMSInstanceId": ("CreateKey", {}, "DKMSInstanceId", 128),
    "CreateSecret DKMSInstanceId": (
        "CreateSecret",
        {"SecretName": "new", "SecretData": "x", "VersionId": "v1"},
        "DKMSInstanceId",
        128,
    ),
    "UpdateSecret Description": ("UpdateSecret", {"SecretName": "bounded"}, "Description", 8192),
    "UpdateSecretVersionStage VersionStage": (
        "UpdateSecretVersionStage",
        {"SecretName": "bounded", "MoveToVersion": "v1"},
        "VersionStage",
        64,
    ),
    "PutSecretValue VersionId": (
        "PutSecretValue",
        {"SecretName": "bounded", "SecretData": "y"},
        "VersionId",
        64,
    ),
}


@pytest.mark.parametrize("case", sorted(BOUNDS))
def test_what_the_service_accepts_the_keystore_reads_back(
    case: str, service: KmsService, store_dir: Path, service_error: ErrorExpectation
) -> None:
    action, fixed, name, largest = BOUNDS[case]
    _secret(service)
    with service_error("InvalidParameter", 400):
        service.call(action, {**fixed, name: "a" * (largest + 1)})
    service.call(action, {**fixed, name: "a" * largest})
    KeyStore(store_dir).close()  # strict decoding accepts what was stored


@pytest.mark.parametrize("stages", ['["\\ud800"]', '["ok", "\\udfff"]', '[""]', "[1]"])
def test_version_stages_that_are_not_text_are_refused(
    service: KmsService, stages: str, service_error: ErrorExpectation
) -> None:
    _secret(service)
    params = {"SecretName": "bounded", "SecretData": "y", "VersionId": "v2"}
    with service_error("InvalidParameter", 400):
        service.call("PutSecretValue", {**params, "VersionStages": stages})


def test_a_purged_master_key_leaves_its_secrets_readable_as_records(
    service: KmsService, clock: FakeClock, store_dir: Path, service_error: ErrorExpectation
) -> None:
    """A secret may outlive its key (deleted after its window): the keystore still opens."""
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    service.call(
        "CreateSecret",
        {"SecretName": "orphan", "SecretData": "x", "VersionId": "v1", "EncryptionKeyId": key_id},
    )
    service.call("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    clock.advance(8 * DAY)
    service.call("CreateKey", {})  # a write: the due deletion is done
    assert key_id not in service.store.snapshot().keys
    reopened = KeyStore(store_dir)
    assert "orphan" in reopened.snapshot().secrets
    reopened.close()
    with service_error("Forbidden.KeyNotFound", 404):
        service.call("GetSecretValue", {"SecretName": "orphan"})


# --- a keystore written before the records were plain classes (issue 16 item 3) -----------------

KEYSTORE_2 = Path(__file__).parent / "keystore_2"


def _stdlib_mac(root_key: bytes, document: dict[str, Any]) -> bytes:
    """The format's MAC by the standard library's HMAC, a second implementation."""
    mac_key = HKDF(
        hashes.SHA256(), 32, salt=None, info=b"kmsnb emulator keystore.json v2 mac"
    ).derive(root_key)
    members = {name: value for name, value in document.items() if name != "mac"}
    canonical = json.dumps(members, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hmac.digest(mac_key, canonical.encode("ascii"), hashlib.sha256)


def test_the_mac_of_a_stored_keystore_is_the_same_bytes() -> None:
    """document_mac (cryptography's HMAC) gives the MAC the file holds, as stdlib hmac does."""
    root_key = base64.b64decode((KEYSTORE_2 / "root.key").read_bytes().strip())
    document = json.loads((KEYSTORE_2 / "keystore.json").read_bytes())
    stored = base64.b64decode(document["mac"])
    assert stored == _stdlib_mac(root_key, document)
    assert stored == document_mac(derive_mac_key(bytearray(root_key)), document)


def test_a_keystore_written_before_the_plain_records_still_opens(tmp_path: Path) -> None:
    """Every kind of record it holds decodes, and its data keys and secret come back."""
    path = tmp_path / "format-2"
    path.mkdir(mode=0o700)
    for name in ("root.key", "keystore.json"):
        shutil.copy(KEYSTORE_2 / name, path / name)
        (path / name).chmod(0o600)
    expected = json.loads((KEYSTORE_2 / "expected.json").read_text())
    before = (path / "keystore.json").read_bytes()
    with LocalKms(path) as kms:
        for name in ("aes", "sm4"):
            unwrapped = kms.decrypt_data_key(expected[name]["ciphertext_blob"], expected["context"])
            assert (
                base64.b64encode(bytes(unwrapped.plaintext)).decode() == expected[name]["plaintext"]
            )
            assert unwrapped.key_id == expected[name]["key_id"]
        assert kms.describe_key("alias/format-2").key_id == expected["aes"]["key_id"]
        assert len(kms.list_key_versions(expected["aes"]["key_id"])) == 2
        secret = expected["secret"]
        assert kms.get_secret_value(secret["name"]).reveal() == secret["value"]
    assert before == (path / "keystore.json").read_bytes()  # read, not rewritten
    assert read_write_id(before) == json.loads(before)["write_id"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b'{"format":"f","write_id":"' + b"a" * 32 + b'"', "a" * 32),
        (b'{"write_id":"' + b"A" * 32 + b'"', None),  # upper case is not what is written
        (b'{"write_id":"' + b"a" * 31 + b'"', None),
        (b'{"write_id":"' + b"a" * 33 + b'"', None),
        (b'{"write_id":"x","write_id":"' + b"0" * 32 + b'"', "0" * 32),  # the first match
        (b" " * 100 + b'{"write_id":"' + b"a" * 32 + b'"', None),  # beyond the header
        (b"", None),
    ],
)
def test_the_write_id_is_read_from_the_head_of_the_file(
    header: bytes, expected: str | None
) -> None:
    assert read_write_id(header) == expected


def test_the_records_compare_copy_and_show_themselves_as_dataclasses_did() -> None:
    """Equality field by field (mutable ones unhashable), copies that own their lists."""
    key = KeyRecord("k", "d", "Enabled", 1.0, version_ids=["v"], tags={"t": "x"})
    copied = key.copy()
    assert copied == key
    assert copied is not key
    copied.version_ids.append("w")
    copied.tags["u"] = "y"
    assert (key.version_ids, key.tags) == (["v"], {"t": "x"})
    assert copied != key
    assert KeyRecord("k", "d", "Enabled", 1.0).version_ids == []
    assert (
        KeyRecord("k", "d", "Enabled", 1.0).version_ids
        is not KeyRecord("k", "d", "Enabled", 1.0).version_ids
    )
    assert repr(key).startswith("KeyRecord(key_id='k', description='d', key_state='Enabled', ")
    with pytest.raises(TypeError):
        hash(key)
    with pytest.raises(AttributeError):
        key.not_a_field = 1  # type: ignore[attr-defined]
    version = KeyVersionRecord("v", "k", 1.0, b"sealed")
    with pytest.raises(AttributeError):
        version.key_id = "other"  # type: ignore[misc]
    assert StoreState(keys={"k": key}) == StoreState(keys={"k": key.copy()})
    assert StoreState() != StoreState(generation=1)
    assert repr(StoreState()) == (
        "StoreState(keys={}, aliases={}, versions={}, generation=0, write_id='', secrets={})"
    )


# The patterns the checks of ids and names replaced (they compiled at every start-up): each
# check accepts exactly what its pattern matched.
_PATTERNS = {
    "write_id": r"[0-9a-f]{32}",
    "version_id": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "alias": r"alias/[A-Za-z0-9_/-]{1,249}",
    "write_id_member": r'"write_id":"([0-9a-f]{32})"',
}
# Near misses: the right characters and a few wrong ones (upper case, other digits, Unicode).
_NEAR = st.text(alphabet='0123456789abcdefABCDEF-/_alias"\n:w_idrt\u0661\u00e9 ', max_size=60)


def _near_version_id() -> st.SearchStrategy[str]:
    hex_group = st.text(alphabet="0123456789abcdefA-", min_size=3, max_size=13)
    return st.lists(hex_group, min_size=4, max_size=6).map("-".join)


@given(st.one_of(_NEAR, _near_version_id(), st.uuids().map(str)))
def test_the_id_checks_accept_what_their_patterns_matched(text: str) -> None:
    assert _records._is_lower_hex(text, 32) == bool(re.fullmatch(_PATTERNS["write_id"], text))
    assert _records._is_version_id(text) == bool(re.fullmatch(_PATTERNS["version_id"], text))


_LONG_ALIASES = st.integers(247, 251).map(lambda size: "alias/" + "a" * size)


@given(st.one_of(_NEAR.map("alias/".__add__), _NEAR, _LONG_ALIASES))
def test_the_alias_check_accepts_what_its_pattern_matched(text: str) -> None:
    assert _records._is_alias_name(text) == bool(re.fullmatch(_PATTERNS["alias"], text))


_MEMBER = st.sampled_from([b"", b'"write_id":"', b'"write_id":'])
_VALUE = st.one_of(_NEAR, st.uuids().map(lambda uuid: uuid.hex + '"'))


@given(st.lists(st.tuples(st.binary(max_size=20), _MEMBER, _VALUE), max_size=4))
def test_the_write_id_is_found_where_its_pattern_was(parts: list[tuple[bytes, bytes, str]]) -> None:
    header = b"".join(noise + member + value.encode("utf-8") for noise, member, value in parts)
    match = re.search(_PATTERNS["write_id_member"].encode(), header[:128])
    assert read_write_id(header) == (match.group(1).decode() if match else None)
