"""KmsService: KMS semantics, driven through ``call`` with wire-format string parameters."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from kmsnb.emulator import (
    ACTIONS,
    KeyStore,
    KeyStoreCorruptedError,
    KmsService,
    Limits,
    ServiceError,
)
from kmsnb.emulator.service import SECRET_ACTIONS

from .conftest import DAY, FakeClock

pytestmark = pytest.mark.unit

NewKey = Callable[..., str]
ServiceErrorExpectation = Callable[..., Any]

SMF = "Rejected.StateModifiedFailed"
ACCOUNT = "1234567890123456"
REGION = "cn-hangzhou"


def generate(service: KmsService, key_ref: str, **params: str) -> dict[str, Any]:
    return service.call("GenerateDataKey", {"KeyId": key_ref, **params})


def describe(service: KmsService, key_ref: str) -> dict[str, Any]:
    metadata: dict[str, Any] = service.call("DescribeKey", {"KeyId": key_ref})["KeyMetadata"]
    return metadata


# -- lifecycle ------------------------------------------------------------------------


def test_full_key_lifecycle(
    service: KmsService, clock: FakeClock, service_error: ServiceErrorExpectation
) -> None:
    """Create, use, disable, enable, schedule and cancel deletion, then delete for real."""
    metadata = service.call("CreateKey", {"Description": "demo key"})["KeyMetadata"]
    key_id = metadata["KeyId"]
    assert metadata["KeyState"] == "Enabled"
    service.call("CreateAlias", {"AliasName": "alias/demo", "KeyId": key_id})

    data_key = generate(service, "alias/demo", EncryptionContext='{"purpose":"test"}')
    blob = data_key["CiphertextBlob"]
    opened = service.call(
        "Decrypt", {"CiphertextBlob": blob, "EncryptionContext": '{"purpose":"test"}'}
    )
    assert (key_id, data_key["Plaintext"]) == (opened["KeyId"], opened["Plaintext"])

    service.call("DisableKey", {"KeyId": key_id})
    with service_error("Rejected.Disabled", 409):
        generate(service, key_id)
    service.call("EnableKey", {"KeyId": key_id})

    service.call("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    assert describe(service, key_id)["KeyState"] == "PendingDeletion"
    with service_error("Rejected.PendingDeletion", 409):
        service.call("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": '{"purpose":"test"}'})
    service.call("CancelKeyDeletion", {"KeyId": key_id})
    assert describe(service, key_id)["KeyState"] == "Enabled"
    assert describe(service, key_id)["DeleteDate"] == ""

    service.call("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    clock.advance(7 * DAY - 1)
    assert describe(service, key_id)["KeyState"] == "PendingDeletion"
    clock.advance(1)
    with service_error("Forbidden.KeyNotFound", 404):
        describe(service, key_id)
    with service_error("Forbidden.KeyNotFound", 404):
        service.call("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": '{"purpose":"test"}'})
    with service_error("Forbidden.AliasNotFound", 404):
        describe(service, "alias/demo")
    assert service.call("ListKeys", {})["TotalCount"] == 0
    assert service.call("ListAliases", {})["TotalCount"] == 0


def test_create_key_metadata(service: KmsService, clock: FakeClock) -> None:
    metadata = service.call("CreateKey", {})["KeyMetadata"]
    key_id = metadata["KeyId"]
    assert len(key_id) == 36
    expected = {
        "KeyId": key_id,
        "Arn": f"acs:kms:{REGION}:{ACCOUNT}:key/{key_id}",
        "KeyState": "Enabled",
        "KeyUsage": "ENCRYPT/DECRYPT",
        "KeySpec": "Aliyun_AES_256",
        "CreationDate": "2023-11-14T22:13:20Z",
        "Creator": ACCOUNT,
        "Description": "",
        "DeleteDate": "",
        "MaterialExpireTime": "",
        "Origin": "Aliyun_KMS",
        "ProtectionLevel": "SOFTWARE",
        "PrimaryKeyVersion": metadata["PrimaryKeyVersion"],
        "AutomaticRotation": "Disabled",
        "LastRotationDate": "2023-11-14T22:13:20Z",
        "DeletionProtection": "Disabled",
    }
    assert expected == metadata
    assert len(metadata["PrimaryKeyVersion"]) == 36
    assert metadata == describe(service, key_id)


def test_create_key_options(service: KmsService) -> None:
    params = {
        "Description": "é" * 8192,
        "ProtectionLevel": "HSM",
        "EnableAutomaticRotation": "True",
        "RotationInterval": "7d",
        "Tags": '[{"TagKey":"team","TagValue":"data"}]',
    }
    metadata = service.call("CreateKey", params)["KeyMetadata"]
    assert metadata["ProtectionLevel"] == "HSM"
    assert (metadata["AutomaticRotation"], metadata["RotationInterval"]) == ("Enabled", "604800s")
    assert metadata["NextRotationDate"] == "2023-11-21T22:13:20Z"
    tags = service.call("ListResourceTags", {"KeyId": metadata["KeyId"]})["Tags"]["Tag"]
    assert [{"KeyId": metadata["KeyId"], "TagKey": "team", "TagValue": "data"}] == tags


def test_external_key_is_pending_import(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key(Origin="EXTERNAL")
    metadata = describe(service, key_id)
    assert (
        metadata["KeyState"],
        metadata["Origin"],
        metadata["PrimaryKeyVersion"],
    ) == ("PendingImport", "EXTERNAL", "")
    assert service.call("ListKeyVersions", {"KeyId": key_id})["KeyVersions"]["KeyVersion"] == []


@pytest.mark.parametrize(
    ("params", "code", "name"),
    [
        ({"KeySpec": "RSA_2048"}, "InvalidParameter", "KeySpec"),
        ({"KeySpec": "aliyun_aes_256"}, "InvalidParameter", "KeySpec"),
        ({"KeyUsage": "SIGN/VERIFY"}, "InvalidParameter", "KeyUsage"),
        ({"Origin": "external"}, "InvalidParameter", "Origin"),
        ({"ProtectionLevel": "hsm"}, "InvalidParameter", "ProtectionLevel"),
        ({"Description": "x" * 8193}, "InvalidParameter", "Description"),
        ({"EnableAutomaticRotation": "yes"}, "InvalidParameter", "EnableAutomaticRotation"),
        ({"EnableAutomaticRotation": "true"}, "MissingParameter", "RotationInterval"),
        (
            {"EnableAutomaticRotation": "true", "RotationInterval": "6d"},
            "InvalidParameter",
            "RotationInterval",
        ),
        (
            {"EnableAutomaticRotation": "true", "RotationInterval": "366d"},
            "InvalidParameter",
            "RotationInterval",
        ),
        ({"RotationInterval": "7 days"}, "InvalidParameter", "RotationInterval"),
        (
            {"Origin": "EXTERNAL", "EnableAutomaticRotation": "true", "RotationInterval": "7d"},
            "InvalidParameter",
            "EnableAutomaticRotation",
        ),
        ({"Tags": "{}"}, "InvalidParameter", "Tags"),
        ({"Tags": '[{"TagKey":"acs:x","TagValue":"v"}]'}, "InvalidParameter", "Tags"),
        ({"Tags": '[{"TagKey":"k","TagValue":""}]'}, "InvalidParameter", "Tags"),
    ],
)
def test_create_key_rejects(
    service: KmsService,
    service_error: ServiceErrorExpectation,
    params: dict[str, str],
    code: str,
    name: str,
) -> None:
    with service_error(code, 400) as info:
        service.call("CreateKey", params)
    assert f'"{name}"' in info.value.message


def test_update_key_description(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key(Description="old")
    service.call("UpdateKeyDescription", {"KeyId": key_id, "Description": "new"})
    assert describe(service, key_id)["Description"] == "new"
    service.call("UpdateKeyDescription", {"KeyId": key_id, "Description": ""})
    assert describe(service, key_id)["Description"] == ""


def test_enable_and_disable_are_idempotent(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key()
    for action, state in [("DisableKey", "Disabled")] * 2 + [("EnableKey", "Enabled")] * 2:
        service.call(action, {"KeyId": key_id})
        assert state == describe(service, key_id)["KeyState"]


@pytest.mark.parametrize(
    ("window", "code"),
    [
        (None, "MissingParameter"),
        ("6", "InvalidParameter"),
        ("367", "InvalidParameter"),
        ("seven", "InvalidParameter"),
    ],
)
def test_schedule_key_deletion_window(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    window: str | None,
    code: str,
) -> None:
    params = {"KeyId": new_key()}
    if window is not None:
        params["PendingWindowInDays"] = window
    with service_error(code, 400):
        service.call("ScheduleKeyDeletion", params)


def test_deletion_date_and_window_bounds(
    service: KmsService, clock: FakeClock, new_key: NewKey
) -> None:
    long_lived, short_lived = new_key(), new_key()
    service.call("ScheduleKeyDeletion", {"KeyId": long_lived, "PendingWindowInDays": "366"})
    service.call("ScheduleKeyDeletion", {"KeyId": short_lived, "PendingWindowInDays": "7"})
    assert describe(service, short_lived)["DeleteDate"] == "2023-11-21T22:13:20Z"
    clock.advance(30 * DAY)
    listed = service.call("ListKeys", {})["Keys"]["Key"]
    assert [long_lived] == [item["KeyId"] for item in listed]


def test_cancel_deletion_of_external_key_returns_to_pending_import(
    service: KmsService, new_key: NewKey
) -> None:
    key_id = new_key(Origin="EXTERNAL")
    service.call("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    service.call("CancelKeyDeletion", {"KeyId": key_id})
    assert describe(service, key_id)["KeyState"] == "PendingImport"


# -- the key-state matrix (docs/kms-api.md, "Key states") ------------------------------------------

STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")
OK = "ok"
NA = "n/a"  # a PendingImport key has no material, so no blob or version to name
USE = (OK, "Rejected.Disabled", "Rejected.PendingDeletion", "Rejected.PendingImport")
TOGGLE = (OK, OK, SMF, SMF)
MODIFY = (OK, OK, "Rejected.PendingDeletion", OK)
ANY = (OK, OK, OK, OK)

MATRIX: dict[str, tuple[str, ...]] = {
    "CreateKey": ANY,
    "ListKeys": ANY,
    "DescribeKey": ANY,
    "DeleteAlias": ANY,
    "ListAliases": ANY,
    "ListAliasesByKeyId": ANY,
    "DescribeKeyVersion": (OK, OK, OK, NA),
    "ListKeyVersions": ANY,
    "ListResourceTags": ANY,
    "GenerateDataKey": USE,
    "GenerateDataKeyWithoutPlaintext": USE,
    "Encrypt": USE,
    "Decrypt": (*USE[:3], NA),
    "ReEncrypt(source)": (*USE[:3], NA),
    "ReEncrypt(destination)": USE,
    "CreateKeyVersion": USE,
    "UpdateRotationPolicy": USE,
    "EnableKey": TOGGLE,
    "DisableKey": TOGGLE,
    "ScheduleKeyDeletion": (OK, OK, SMF, OK),
    "CancelKeyDeletion": (SMF, SMF, OK, SMF),
    "CreateAlias": (OK, OK, SMF, OK),
    "UpdateKeyDescription": MODIFY,
    "TagResource": MODIFY,
    "UntagResource": MODIFY,
    "UpdateAlias(target)": MODIFY,
}


class Subject:
    """A key brought into a state, with a blob, a version and an alias made beforehand."""

    def __init__(self, service: KmsService, state: str) -> None:
        origin = "EXTERNAL" if state == "PendingImport" else "Aliyun_KMS"
        metadata = service.call("CreateKey", {"Origin": origin})["KeyMetadata"]
        self.key_id: str = metadata["KeyId"]
        self.version_id: str = metadata["PrimaryKeyVersion"]
        self.other_key_id: str = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
        self.blob = ""
        if state != "PendingImport":
            self.blob = generate(service, self.key_id)["CiphertextBlob"]
        self.other_blob: str = generate(service, self.other_key_id)["CiphertextBlob"]
        service.call("CreateAlias", {"AliasName": "alias/subject", "KeyId": self.key_id})
        service.call("CreateAlias", {"AliasName": "alias/other", "KeyId": self.other_key_id})
        if state == "Disabled":
            service.call("DisableKey", {"KeyId": self.key_id})
        elif state == "PendingDeletion":
            service.call("ScheduleKeyDeletion", {"KeyId": self.key_id, "PendingWindowInDays": "7"})


CALLS: dict[str, Callable[[Subject], tuple[str, dict[str, str]]]] = {
    "CreateKey": lambda s: ("CreateKey", {}),
    "ListKeys": lambda s: ("ListKeys", {}),
    "DescribeKey": lambda s: ("DescribeKey", {"KeyId": s.key_id}),
    "DeleteAlias": lambda s: ("DeleteAlias", {"AliasName": "alias/subject"}),
    "ListAliases": lambda s: ("ListAliases", {}),
    "ListAliasesByKeyId": lambda s: ("ListAliasesByKeyId", {"KeyId": s.key_id}),
    "DescribeKeyVersion": lambda s: (
        "DescribeKeyVersion",
        {"KeyId": s.key_id, "KeyVersionId": s.version_id},
    ),
    "ListKeyVersions": lambda s: ("ListKeyVersions", {"KeyId": s.key_id}),
    "ListResourceTags": lambda s: ("ListResourceTags", {"KeyId": s.key_id}),
    "GenerateDataKey": lambda s: ("GenerateDataKey", {"KeyId": s.key_id}),
    "GenerateDataKeyWithoutPlaintext": lambda s: (
        "GenerateDataKeyWithoutPlaintext",
        {"KeyId": s.key_id},
    ),
    "Encrypt": lambda s: ("Encrypt", {"KeyId": s.key_id, "Plaintext": "hello"}),
    "Decrypt": lambda s: ("Decrypt", {"CiphertextBlob": s.blob}),
    "ReEncrypt(source)": lambda s: (
        "ReEncrypt",
        {"CiphertextBlob": s.blob, "DestinationKeyId": s.other_key_id},
    ),
    "ReEncrypt(destination)": lambda s: (
        "ReEncrypt",
        {"CiphertextBlob": s.other_blob, "DestinationKeyId": s.key_id},
    ),
    "CreateKeyVersion": lambda s: ("CreateKeyVersion", {"KeyId": s.key_id}),
    "UpdateRotationPolicy": lambda s: (
        "UpdateRotationPolicy",
        {"KeyId": s.key_id, "EnableAutomaticRotation": "false"},
    ),
    "EnableKey": lambda s: ("EnableKey", {"KeyId": s.key_id}),
    "DisableKey": lambda s: ("DisableKey", {"KeyId": s.key_id}),
    "ScheduleKeyDeletion": lambda s: (
        "ScheduleKeyDeletion",
        {"KeyId": s.key_id, "PendingWindowInDays": "30"},
    ),
    "CancelKeyDeletion": lambda s: ("CancelKeyDeletion", {"KeyId": s.key_id}),
    "CreateAlias": lambda s: ("CreateAlias", {"AliasName": "alias/new", "KeyId": s.key_id}),
    "UpdateKeyDescription": lambda s: (
        "UpdateKeyDescription",
        {"KeyId": s.key_id, "Description": "changed"},
    ),
    "TagResource": lambda s: (
        "TagResource",
        {"KeyId": s.key_id, "Tags": '[{"TagKey":"k","TagValue":"v"}]'},
    ),
    "UntagResource": lambda s: ("UntagResource", {"KeyId": s.key_id, "TagKeys": '["k"]'}),
    "UpdateAlias(target)": lambda s: (
        "UpdateAlias",
        {"AliasName": "alias/other", "KeyId": s.key_id},
    ),
}


def _matrix_cases() -> list[Any]:
    return [
        pytest.param(operation, state, outcome, id=f"{operation}-{state}")
        for operation, outcomes in MATRIX.items()
        for state, outcome in zip(STATES, outcomes, strict=True)
        if outcome != NA
    ]


@pytest.mark.parametrize(("operation", "state", "outcome"), _matrix_cases())
def test_key_state_matrix(
    service: KmsService,
    service_error: ServiceErrorExpectation,
    operation: str,
    state: str,
    outcome: str,
) -> None:
    subject = Subject(service, state)
    action, params = CALLS[operation](subject)
    if outcome == OK:
        service.call(action, params)
    else:
        with service_error(outcome, 409):
            service.call(action, params)


def test_matrix_covers_every_action() -> None:
    covered = {operation.split("(")[0] for operation in MATRIX}
    # Secrets: tests/emulator/test_secrets.py. Key import acts on EXTERNAL keys only (its
    # states and codes: tests/kms/test_mismatches_sdk.py).
    imports = {"GetParametersForImport", "ImportKeyMaterial", "DeleteKeyMaterial"}
    assert covered == ACTIONS - SECRET_ACTIONS - imports


def test_every_action_reaches_its_handler(service: KmsService) -> None:
    """The handler table names its modules as strings (imported at first call, for the
    CLI's start-up): each entry must lead to a handler, which then judges the (empty)
    parameters itself rather than the service answering that no such action exists."""
    unreached = set()
    for action in sorted(ACTIONS):
        try:
            service.call(action, {})
        except ServiceError as error:
            if error.code == "InvalidAction.NotFound":
                unreached.add(action)
    assert set() == unreached
    with pytest.raises(ServiceError, match=r"^InvalidAction\.NotFound"):
        service.call("NoSuchAction", {})


# -- key references: ids, aliases, ARNs ------------------------------------------------


def test_key_references(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key()
    service.call("CreateAlias", {"AliasName": "alias/team/data-1_x", "KeyId": key_id})
    references = [
        key_id,
        "alias/team/data-1_x",
        f"acs:kms:{REGION}:{ACCOUNT}:key/{key_id}",
        f"acs:kms:{REGION}:{ACCOUNT}:alias/team/data-1_x",
    ]
    for reference in references:
        assert key_id == describe(service, reference)["KeyId"]
        assert key_id == generate(service, reference)["KeyId"]


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("00000000-0000-0000-0000-000000000000", "Forbidden.KeyNotFound"),
        ("alias/missing", "Forbidden.AliasNotFound"),
        ("acs:kms:cn-shanghai:1234567890123456:key/{key_id}", "Forbidden.KeyNotFound"),
        ("acs:kms:cn-hangzhou:999:key/{key_id}", "Forbidden.KeyNotFound"),
        ("acs:kms:cn-shanghai:1234567890123456:alias/a", "Forbidden.AliasNotFound"),
        ("acs:kms:cn-hangzhou:1234567890123456:secret/{key_id}", "Forbidden.KeyNotFound"),
        ("acs:ecs:cn-hangzhou:1234567890123456:key/{key_id}", "Forbidden.KeyNotFound"),
        ("acs:kms", "Forbidden.KeyNotFound"),
    ],
)
def test_unknown_key_references(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    reference: str,
    code: str,
) -> None:
    key_id = new_key()
    service.call("CreateAlias", {"AliasName": "alias/a", "KeyId": key_id})
    with service_error(code, 404):
        describe(service, reference.format(key_id=key_id))


def test_region_and_account_are_configurable(store: KeyStore) -> None:
    service = KmsService(store, region_id="ap-southeast-1", account_id="42")
    metadata = service.call("CreateKey", {})["KeyMetadata"]
    assert f"acs:kms:ap-southeast-1:42:key/{metadata['KeyId']}" == metadata["Arn"]
    assert metadata["Creator"] == "42"
    assert metadata["KeyId"] == describe(service, metadata["Arn"])["KeyId"]


# -- aliases ----------------------------------------------------------------------------


def test_alias_operations(
    service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation
) -> None:
    first, second = new_key(), new_key()
    service.call("CreateAlias", {"AliasName": "alias/b", "KeyId": first})
    service.call("CreateAlias", {"AliasName": "alias/a", "KeyId": first})
    with service_error("AliasAlreadyExists", 400):
        service.call("CreateAlias", {"AliasName": "alias/a", "KeyId": second})

    listed = service.call("ListAliases", {})
    expected_items = [
        {"AliasName": name, "AliasArn": f"acs:kms:{REGION}:{ACCOUNT}:{name}", "KeyId": first}
        for name in ("alias/a", "alias/b")
    ]
    assert {
        "Aliases": {"Alias": expected_items},
        "TotalCount": 2,
        "PageNumber": 1,
        "PageSize": 10,
    } == listed

    service.call("UpdateAlias", {"AliasName": "alias/a", "KeyId": second})
    assert second == describe(service, "alias/a")["KeyId"]
    by_key = service.call("ListAliasesByKeyId", {"KeyId": first})["Aliases"]["Alias"]
    assert [item["AliasName"] for item in by_key] == ["alias/b"]

    service.call("DeleteAlias", {"AliasName": "alias/a"})
    assert second == describe(service, second)["KeyId"]  # the key stays
    with service_error("Forbidden.AliasNotFound", 404):
        service.call("DeleteAlias", {"AliasName": "alias/a"})
    with service_error("Forbidden.AliasNotFound", 404):
        service.call("UpdateAlias", {"AliasName": "alias/a", "KeyId": second})
    with service_error("Forbidden.KeyNotFound", 404):
        service.call("UpdateAlias", {"AliasName": "alias/b", "KeyId": "no-such-key"})
    with service_error("Forbidden.KeyNotFound", 404):
        service.call("CreateAlias", {"AliasName": "alias/c", "KeyId": "no-such-key"})


@pytest.mark.parametrize(
    "alias_name",
    [
        "demo",
        "alias/",
        "alias/acs",
        "alias/acs-x",
        "alias/with space",
        "alias/é",
        "Alias/x",
        "alias/" + "x" * 250,
    ],
)
def test_invalid_alias_names(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    alias_name: str,
) -> None:
    with service_error("InvalidParameter", 400):
        service.call("CreateAlias", {"AliasName": alias_name, "KeyId": new_key()})


def test_longest_alias_name(service: KmsService, new_key: NewKey) -> None:
    alias_name = "alias/" + "x" * 249
    service.call("CreateAlias", {"AliasName": alias_name, "KeyId": new_key()})
    assert len(alias_name) == 255


def test_alias_paging(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key()
    names = [f"alias/a{i:02}" for i in range(12)]
    for name in names:
        service.call("CreateAlias", {"AliasName": name, "KeyId": key_id})
    for action, params in [("ListAliases", {}), ("ListAliasesByKeyId", {"KeyId": key_id})]:
        seen = []
        for page_number in (1, 2, 3):
            page = {**params, "PageNumber": str(page_number), "PageSize": "5"}
            body = service.call(action, page)
            assert (12, page_number, 5) == (
                body["TotalCount"],
                body["PageNumber"],
                body["PageSize"],
            )
            seen += [item["AliasName"] for item in body["Aliases"]["Alias"]]
        assert names == seen


# -- paging and filters --------------------------------------------------------------


def test_list_keys_paging(service: KmsService, new_key: NewKey, clock: FakeClock) -> None:
    key_ids = []
    for _ in range(5):
        key_ids.append(new_key())
        clock.advance(1)
    pages = [
        service.call("ListKeys", {"PageNumber": str(n), "PageSize": "2"}) for n in (1, 2, 3, 4)
    ]
    assert [page["TotalCount"] for page in pages] == [5] * 4
    assert key_ids == [item["KeyId"] for page in pages for item in page["Keys"]["Key"]]
    assert pages[3]["Keys"]["Key"] == []
    assert f"acs:kms:{REGION}:{ACCOUNT}:key/{key_ids[0]}" == pages[0]["Keys"]["Key"][0]["KeyArn"]
    default = service.call("ListKeys", {})
    assert (default["PageNumber"], default["PageSize"]) == (1, 10)


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("ListKeys", {"PageSize": "0"}),
        ("ListKeys", {"PageSize": "101"}),
        ("ListKeys", {"PageNumber": "0"}),
        ("ListKeys", {"PageNumber": "one"}),
        ("ListAliases", {"PageSize": "101"}),
        ("ListKeyVersions", {"PageSize": "102"}),
        ("ListAliasesByKeyId", {"PageSize": "102"}),
    ],
)
def test_paging_bounds(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    action: str,
    params: dict[str, str],
) -> None:
    with service_error("InvalidParameter", 400):
        service.call(action, {"KeyId": new_key(), **params})


def test_list_keys_filters(service: KmsService, new_key: NewKey) -> None:
    enabled, disabled, pending, hsm = (
        new_key(),
        new_key(),
        new_key(),
        new_key(ProtectionLevel="HSM"),
    )
    service.call("DisableKey", {"KeyId": disabled})
    service.call("ScheduleKeyDeletion", {"KeyId": pending, "PendingWindowInDays": "7"})

    def matching(filters: list[dict[str, Any]]) -> set[str]:
        body = service.call("ListKeys", {"Filters": json.dumps(filters), "PageSize": "100"})
        assert len(body["Keys"]["Key"]) == body["TotalCount"]
        return {item["KeyId"] for item in body["Keys"]["Key"]}

    assert {enabled, disabled, pending, hsm} == matching([])
    assert {enabled, hsm} == matching([{"Key": "KeyState", "Values": ["Enabled"]}])
    assert {disabled, pending} == matching(
        [{"Key": "KeyState", "Values": ["Disabled", "PendingDeletion"]}]
    )
    assert {hsm} == matching(
        [
            {"Key": "KeyState", "Values": ["Enabled", "Disabled"]},
            {"Key": "ProtectionLevel", "Values": ["HSM"]},
        ]
    )
    everything = [
        {"Key": "KeySpec", "Values": ["Aliyun_AES_256"]},
        {"Key": "KeyUsage", "Values": ["ENCRYPT/DECRYPT"]},
        {"Key": "CreatorType", "Values": ["User"]},
    ]
    assert {enabled, disabled, pending, hsm} == matching(everything)
    assert set() == matching([{"Key": "CreatorType", "Values": ["Service"]}])


@pytest.mark.parametrize(
    "filters",
    [
        "not json",
        '{"Key":"KeyState","Values":["Enabled"]}',
        '[{"Key":"Color","Values":["Red"]}]',
        '[{"Key":"KeyState","Values":"Enabled"}]',
        '[{"Key":"KeyState"}]',
        '["KeyState"]',
        json.dumps([{"Key": "KeyState", "Values": ["Enabled"]}] * 11),
    ],
)
def test_invalid_filters(
    service: KmsService, service_error: ServiceErrorExpectation, filters: str
) -> None:
    with service_error("InvalidParameter", 400):
        service.call("ListKeys", {"Filters": filters})


# -- data keys, Encrypt, Decrypt -----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({}, 32),
        ({"KeySpec": "AES_256"}, 32),
        ({"KeySpec": "AES_128"}, 16),
        ({"NumberOfBytes": "1"}, 1),
        ({"NumberOfBytes": "1024"}, 1024),
        ({"NumberOfBytes": "24", "KeySpec": "AES_128"}, 24),
        ({"NumberOfBytes": "24", "KeySpec": "bogus"}, 24),
    ],
)
def test_generate_data_key_size(
    service: KmsService, new_key: NewKey, params: dict[str, str], size: int
) -> None:
    key_id = new_key()
    body = generate(service, key_id, **params)
    assert {"KeyId", "KeyVersionId", "CiphertextBlob", "Plaintext"} == set(body)
    assert size == len(base64.b64decode(body["Plaintext"]))
    opened = service.call("Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
    assert body["Plaintext"] == opened["Plaintext"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"NumberOfBytes": "0"}, "NumberOfBytes"),
        ({"NumberOfBytes": "1025"}, "NumberOfBytes"),
        ({"NumberOfBytes": "32.0"}, "NumberOfBytes"),
        ({"KeySpec": "AES_512"}, "KeySpec"),
        ({"EncryptionContext": "not json"}, "EncryptionContext"),
    ],
)
def test_generate_data_key_rejects(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    params: dict[str, str],
    name: str,
) -> None:
    with service_error("InvalidParameter", 400) as info:
        generate(service, new_key(), **params)
    assert f'"{name}"' in info.value.message


def test_blob_layout(service: KmsService, new_key: NewKey) -> None:
    """version id (36) || IV (12) || ciphertext of the base64 key (44) || tag (16)."""
    body = generate(service, new_key())
    raw = base64.b64decode(body["CiphertextBlob"])
    assert len(raw) == 108
    assert body["KeyVersionId"].encode() == raw[:36]


def test_generate_data_key_without_plaintext(service: KmsService, new_key: NewKey) -> None:
    key_id = new_key()
    body = service.call("GenerateDataKeyWithoutPlaintext", {"KeyId": key_id, "KeySpec": "AES_128"})
    assert {"KeyId", "KeyVersionId", "CiphertextBlob"} == set(body)
    opened = service.call("Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
    assert len(base64.b64decode(opened["Plaintext"])) == 16


@pytest.mark.parametrize("plaintext", ["hello", "not base64 at all: é ✓", "x" * 6144, "é" * 3072])
def test_encrypt_is_opaque(service: KmsService, new_key: NewKey, plaintext: str) -> None:
    key_id = new_key()
    body = service.call("Encrypt", {"KeyId": key_id, "Plaintext": plaintext})
    assert {"KeyId", "KeyVersionId", "CiphertextBlob"} == set(body)
    opened = service.call("Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
    assert {"KeyId": key_id, "KeyVersionId": body["KeyVersionId"], "Plaintext": plaintext} == opened


@pytest.mark.parametrize("plaintext", ["x" * 6145, "é" * 3073, "\ud800"])
def test_encrypt_rejects(
    service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation, plaintext: str
) -> None:
    with service_error("InvalidParameter", 400):
        service.call("Encrypt", {"KeyId": new_key(), "Plaintext": plaintext})


def test_context_is_compared_by_content(service: KmsService, new_key: NewKey) -> None:
    """New SDK sends compact UTF-8 JSON, old SDK json.dumps with spaces and escapes."""
    body = generate(service, new_key(), EncryptionContext='{"b":"2","a":"é"}')
    for context in [json.dumps({"a": "é", "b": "2"}), '{ "b" : "2" , "a" : "\\u00e9" }']:
        opened = service.call(
            "Decrypt", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext": context}
        )
        assert body["Plaintext"] == opened["Plaintext"]


@pytest.mark.parametrize("context", [None, "", "{}"])
def test_absent_and_empty_context_are_equal(
    service: KmsService, new_key: NewKey, context: str | None
) -> None:
    body = generate(service, new_key(), EncryptionContext="{}")
    params = {"CiphertextBlob": body["CiphertextBlob"]}
    if context is not None:
        params["EncryptionContext"] = context
    assert body["Plaintext"] == service.call("Decrypt", params)["Plaintext"]


@pytest.mark.parametrize(
    "context",
    [None, '{"purpose":"other"}', '{"purpose":"test","extra":"x"}', '{"Purpose":"test"}'],
)
def test_wrong_context_fails(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    context: str | None,
) -> None:
    body = generate(service, new_key(), EncryptionContext='{"purpose":"test"}')
    params = {"CiphertextBlob": body["CiphertextBlob"]}
    if context is not None:
        params["EncryptionContext"] = context
    with service_error("InvalidParameter", 400) as info:
        service.call("Decrypt", params)
    assert info.value.message == 'The specified parameter "CiphertextBlob" is not valid.'


@pytest.mark.parametrize("context", ["[]", '"text"', '{"a":1}', '{"a":null}', '{"a":["b"]}', "{"])
def test_context_must_be_an_object_of_strings(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    context: str,
) -> None:
    with service_error("InvalidParameter", 400) as info:
        generate(service, new_key(), EncryptionContext=context)
    assert '"EncryptionContext"' in info.value.message


@pytest.mark.parametrize(
    "transform",
    [
        lambda blob: blob + "\n",
        lambda blob: f"  {blob}\r\n",
        lambda blob: "\n".join(blob[i : i + 20] for i in range(0, len(blob), 20)),
        lambda blob: blob.rstrip("="),
    ],
    ids=["newline", "spaces", "wrapped", "unpadded"],
)
def test_decrypt_is_lenient_about_blob_text(
    service: KmsService, new_key: NewKey, transform: Callable[[str], str]
) -> None:
    body = service.call("Encrypt", {"KeyId": new_key(), "Plaintext": "x"})  # 65 bytes: pads
    assert body["CiphertextBlob"].endswith("=")
    opened = service.call("Decrypt", {"CiphertextBlob": transform(body["CiphertextBlob"])})
    assert opened["Plaintext"] == "x"


def test_bad_blobs(
    service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation
) -> None:
    key_id = new_key()
    blob = generate(service, key_id)["CiphertextBlob"]
    raw = base64.b64decode(blob)
    tampered = bytearray(raw)
    tampered[-1] ^= 1
    unknown_version = b"00000000-0000-0000-0000-000000000000" + raw[36:]
    cases = [
        ("not base64!", "InvalidParameter", 400),
        (base64.b64encode(raw[:48]).decode(), "InvalidParameter", 400),
        (base64.b64encode(raw[:49]).decode(), "InvalidParameter", 400),
        (base64.b64encode(raw[:63]).decode(), "InvalidParameter", 400),
        (base64.b64encode(bytes(tampered)).decode(), "InvalidParameter", 400),
        (base64.b64encode(unknown_version).decode(), "Forbidden.KeyNotFound", 404),
        (base64.b64encode(b"\xff" * 108).decode(), "Forbidden.KeyNotFound", 404),
    ]
    for bad_blob, code, http_status in cases:
        with service_error(code, http_status):
            service.call("Decrypt", {"CiphertextBlob": bad_blob})


def test_re_encrypt(
    service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation
) -> None:
    source, destination = new_key(), new_key()
    body = generate(service, source, EncryptionContext='{"a":"1"}')
    params = {
        "CiphertextBlob": body["CiphertextBlob"],
        "DestinationKeyId": destination,
        "SourceEncryptionContext": '{"a":"1"}',
        "DestinationEncryptionContext": '{"b":"2"}',
    }
    moved = service.call("ReEncrypt", params)
    assert destination == moved["KeyId"]
    assert describe(service, destination)["PrimaryKeyVersion"] == moved["KeyVersionId"]
    opened = service.call(
        "Decrypt", {"CiphertextBlob": moved["CiphertextBlob"], "EncryptionContext": '{"b":"2"}'}
    )
    assert (destination, body["Plaintext"]) == (opened["KeyId"], opened["Plaintext"])
    with service_error("InvalidParameter", 400):
        service.call("ReEncrypt", {**params, "SourceEncryptionContext": '{"a":"2"}'})


def test_decrypt_looks_at_the_keystore_once(
    service: KmsService, store: KeyStore, new_key: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decrypt finds the blob's key version and checks its key in one snapshot: both come
    from one state, and the keystore's file is looked at once a call (issue 16)."""
    blob = generate(service, new_key())["CiphertextBlob"]
    taken: list[object] = []
    snapshot = store.snapshot

    def counted() -> Any:
        taken.append(None)
        return snapshot()

    monkeypatch.setattr(store, "snapshot", counted)
    assert service.call("Decrypt", {"CiphertextBlob": blob})["Plaintext"]
    assert len(taken) == 1


def test_dry_run(
    service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation
) -> None:
    key_id = new_key()
    blob = generate(service, key_id)["CiphertextBlob"]
    calls = [
        ("GenerateDataKey", {"KeyId": key_id}),
        ("GenerateDataKeyWithoutPlaintext", {"KeyId": key_id}),
        ("Encrypt", {"KeyId": key_id, "Plaintext": "x"}),
        ("Decrypt", {"CiphertextBlob": blob}),
        ("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": key_id}),
    ]
    for action, params in calls:
        with service_error("DryRunOperation", 400):
            service.call(action, {**params, "DryRun": "True"})
        service.call(action, {**params, "DryRun": "false"})
    # Validation still comes first.
    service.call("DisableKey", {"KeyId": key_id})
    with service_error("Rejected.Disabled", 409):
        generate(service, key_id, DryRun="true")


# -- versions and rotation --------------------------------------------------------------


def test_key_versions(
    service: KmsService,
    new_key: NewKey,
    clock: FakeClock,
    service_error: ServiceErrorExpectation,
) -> None:
    key_id = new_key()
    first = describe(service, key_id)["PrimaryKeyVersion"]
    old_blob = generate(service, key_id)["CiphertextBlob"]
    clock.advance(60)
    created = service.call("CreateKeyVersion", {"KeyId": key_id})["KeyVersion"]
    second = created["KeyVersionId"]
    assert {"KeyId": key_id, "KeyVersionId": second, "CreationDate": "2023-11-14T22:14:20Z"} == (
        created
    )
    assert second == describe(service, key_id)["PrimaryKeyVersion"]
    assert second == generate(service, key_id)["KeyVersionId"]
    assert first == service.call("Decrypt", {"CiphertextBlob": old_blob})["KeyVersionId"]

    listed = service.call("ListKeyVersions", {"KeyId": key_id})
    assert [first, second] == [v["KeyVersionId"] for v in listed["KeyVersions"]["KeyVersion"]]
    assert listed["TotalCount"] == 2
    page = service.call("ListKeyVersions", {"KeyId": key_id, "PageNumber": "2", "PageSize": "1"})
    assert [second] == [v["KeyVersionId"] for v in page["KeyVersions"]["KeyVersion"]]

    described = service.call("DescribeKeyVersion", {"KeyId": key_id, "KeyVersionId": first})
    assert {"KeyId": key_id, "KeyVersionId": first, "CreationDate": "2023-11-14T22:13:20Z"} == (
        described["KeyVersion"]
    )
    other_key_version = describe(service, new_key())["PrimaryKeyVersion"]
    for version_id in ["00000000-0000-0000-0000-000000000000", other_key_version]:
        with service_error("Forbidden.KeyVersionNotFound", 404):
            service.call("DescribeKeyVersion", {"KeyId": key_id, "KeyVersionId": version_id})


def test_automatic_rotation(
    service: KmsService,
    new_key: NewKey,
    clock: FakeClock,
    service_error: ServiceErrorExpectation,
) -> None:
    key_id = new_key()
    first = describe(service, key_id)["PrimaryKeyVersion"]
    policy = {"KeyId": key_id, "EnableAutomaticRotation": "True", "RotationInterval": "604800s"}
    service.call("UpdateRotationPolicy", policy)
    metadata = describe(service, key_id)
    assert (
        metadata["AutomaticRotation"],
        metadata["RotationInterval"],
        metadata["NextRotationDate"],
    ) == ("Enabled", "604800s", "2023-11-21T22:13:20Z")
    clock.advance(7 * DAY - 1)
    assert first == generate(service, key_id)["KeyVersionId"]
    clock.advance(1)
    second = generate(service, key_id)["KeyVersionId"]
    assert first != second
    metadata = describe(service, key_id)
    assert (second, "2023-11-21T22:13:20Z") == (
        metadata["PrimaryKeyVersion"],
        metadata["LastRotationDate"],
    )

    # No rotation while the key is disabled: the policy shows as suspended.
    service.call("DisableKey", {"KeyId": key_id})
    clock.advance(30 * DAY)
    metadata = describe(service, key_id)
    assert ("Suspended", second) == (metadata["AutomaticRotation"], metadata["PrimaryKeyVersion"])
    # The SDK documents NextRotationDate for Enabled or Suspended rotation (issue 15).
    assert metadata["NextRotationDate"] == "2023-11-28T22:13:20Z"
    service.call("EnableKey", {"KeyId": key_id})
    versions = service.call("ListKeyVersions", {"KeyId": key_id})["KeyVersions"]["KeyVersion"]
    assert len(versions) == 3  # overdue on enabling: one new version, not one per interval

    service.call("UpdateRotationPolicy", {"KeyId": key_id, "EnableAutomaticRotation": "false"})
    metadata = describe(service, key_id)
    assert metadata["AutomaticRotation"] == "Disabled"
    assert "RotationInterval" not in metadata


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter"),
        ({"EnableAutomaticRotation": "true"}, "MissingParameter"),
        ({"EnableAutomaticRotation": "true", "RotationInterval": "6d"}, "InvalidParameter"),
        ({"EnableAutomaticRotation": "true", "RotationInterval": "8761h"}, "InvalidParameter"),
        ({"EnableAutomaticRotation": "true", "RotationInterval": "604799s"}, "InvalidParameter"),
        ({"EnableAutomaticRotation": "true", "RotationInterval": "d"}, "InvalidParameter"),
        ({"EnableAutomaticRotation": "1"}, "InvalidParameter"),
    ],
)
def test_rotation_policy_rejects(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    params: dict[str, str],
    code: str,
) -> None:
    with service_error(code, 400):
        service.call("UpdateRotationPolicy", {"KeyId": new_key(), **params})


@pytest.mark.parametrize("interval", ["7d", "168h", "10080m", "31536000s", "365d"])
def test_rotation_interval_units(service: KmsService, new_key: NewKey, interval: str) -> None:
    key_id = new_key()
    policy = {"KeyId": key_id, "EnableAutomaticRotation": "TRUE", "RotationInterval": interval}
    service.call("UpdateRotationPolicy", policy)
    assert describe(service, key_id)["RotationInterval"].endswith("s")


# -- tags -----------------------------------------------------------------------------


def test_tags(service: KmsService, new_key: NewKey, service_error: ServiceErrorExpectation) -> None:
    key_id = new_key()
    tags = [{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}]
    service.call("TagResource", {"KeyId": key_id, "Tags": json.dumps(tags)})
    service.call("TagResource", {"KeyId": key_id, "Tags": '[{"TagKey":"a","TagValue":"9"}]'})
    listed = service.call("ListResourceTags", {"KeyId": key_id})["Tags"]["Tag"]
    assert [(t["TagKey"], t["TagValue"]) for t in listed] == [("a", "9"), ("b", "2")]
    service.call("UntagResource", {"KeyId": key_id, "TagKeys": '["a","missing"]'})
    listed = service.call("ListResourceTags", {"KeyId": key_id})["Tags"]["Tag"]
    assert [{"KeyId": key_id, "TagKey": "b", "TagValue": "2"}] == listed

    many = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(20)]
    with service_error("InvalidParameter", 400):
        service.call("TagResource", {"KeyId": key_id, "Tags": json.dumps(many)})
    bad_calls = [
        ("TagResource", {"KeyId": key_id, "Tags": '[{"TagKey":"aliyun:x","TagValue":"v"}]'}),
        (
            "TagResource",
            {"KeyId": key_id, "Tags": json.dumps([{"TagKey": "k" * 129, "TagValue": "v"}])},
        ),
        ("TagResource", {"KeyId": key_id, "Tags": '[{"TagKey":"k","TagValue":1}]'}),
        ("TagResource", {"KeyId": key_id, "Tags": '["k"]'}),
        ("TagResource", {"KeyId": key_id, "SecretName": "s", "Tags": "[]"}),
        ("UntagResource", {"KeyId": key_id, "TagKeys": '"k"'}),
        ("UntagResource", {"KeyId": key_id, "TagKeys": "[1]"}),
    ]
    for action, params in bad_calls:
        with service_error("InvalidParameter", 400):
            service.call(action, params)


# -- every documented error code, and the missing-parameter messages ------------------

REQUIRED_PARAMETERS = [
    ("DescribeKey", "KeyId"),
    ("UpdateKeyDescription", "KeyId"),
    ("UpdateKeyDescription", "Description"),
    ("EnableKey", "KeyId"),
    ("DisableKey", "KeyId"),
    ("ScheduleKeyDeletion", "KeyId"),
    ("ScheduleKeyDeletion", "PendingWindowInDays"),
    ("CancelKeyDeletion", "KeyId"),
    ("CreateAlias", "AliasName"),
    ("CreateAlias", "KeyId"),
    ("UpdateAlias", "AliasName"),
    ("UpdateAlias", "KeyId"),
    ("DeleteAlias", "AliasName"),
    ("ListAliasesByKeyId", "KeyId"),
    ("GenerateDataKey", "KeyId"),
    ("GenerateDataKeyWithoutPlaintext", "KeyId"),
    ("Encrypt", "KeyId"),
    ("Encrypt", "Plaintext"),
    ("Decrypt", "CiphertextBlob"),
    ("ReEncrypt", "CiphertextBlob"),
    ("ReEncrypt", "DestinationKeyId"),
    ("CreateKeyVersion", "KeyId"),
    ("ListKeyVersions", "KeyId"),
    ("DescribeKeyVersion", "KeyId"),
    ("DescribeKeyVersion", "KeyVersionId"),
    ("UpdateRotationPolicy", "KeyId"),
    ("UpdateRotationPolicy", "EnableAutomaticRotation"),
    ("TagResource", "KeyId"),
    ("TagResource", "Tags"),
    ("UntagResource", "KeyId"),
    ("UntagResource", "TagKeys"),
    ("ListResourceTags", "KeyId"),
]


@pytest.mark.parametrize(
    ("action", "missing", "how"),
    [
        (action, missing, how)
        for action, missing in REQUIRED_PARAMETERS
        for how in ("absent", "empty")
        # An empty Description is a description: it clears the old one.
        if (missing, how) != ("Description", "empty")
    ],
)
def test_missing_parameter(
    service: KmsService,
    new_key: NewKey,
    service_error: ServiceErrorExpectation,
    action: str,
    missing: str,
    how: str,
) -> None:
    key_id = new_key()
    complete = {
        "KeyId": key_id,
        "Description": "d",
        "PendingWindowInDays": "7",
        "AliasName": "alias/x",
        "Plaintext": "p",
        "CiphertextBlob": generate(service, key_id)["CiphertextBlob"],
        "DestinationKeyId": key_id,
        "KeyVersionId": describe(service, key_id)["PrimaryKeyVersion"],
        "EnableAutomaticRotation": "false",
        "Tags": "[]",
        "TagKeys": "[]",
    }
    params = {name: value for name, value in complete.items() if name != missing}
    if how == "empty":
        params[missing] = ""
    with service_error("MissingParameter", 400) as info:
        service.call(action, params)
    assert f'The parameter "{missing}" is needed but not provided.' == info.value.message


def test_unknown_action(service: KmsService, service_error: ServiceErrorExpectation) -> None:
    for action in ["AsymmetricSign", "generatedatakey", ""]:
        with service_error("InvalidAction.NotFound", 404):
            service.call(action, {})


def test_quotas(store: KeyStore, clock: FakeClock, service_error: ServiceErrorExpectation) -> None:
    service = KmsService(store, clock=clock, limits=Limits(keys=2, aliases=1, versions=3))
    first = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    service.call("CreateKey", {})
    with service_error("Rejected.LimitExceeded", 400):
        service.call("CreateKey", {})
    service.call("CreateKeyVersion", {"KeyId": first})
    with service_error("Rejected.LimitExceeded", 400):
        service.call("CreateKeyVersion", {"KeyId": first})
    service.call("CreateAlias", {"AliasName": "alias/one", "KeyId": first})
    with service_error("Rejected.LimitExceeded", 400):
        service.call("CreateAlias", {"AliasName": "alias/two", "KeyId": first})


def test_default_quotas() -> None:
    assert Limits(keys=200, aliases=300, versions=10_000) == Limits()


def test_corrupted_store_is_a_keystore_error_naming_the_file(
    service: KmsService, store: KeyStore, new_key: NewKey
) -> None:
    key_id = new_key()
    (store.path / "keystore.json").write_text("{ garbage")
    with pytest.raises(KeyStoreCorruptedError) as info:
        describe(service, key_id)
    assert str(store.path / "keystore.json") in str(info.value)
    assert "garbage" not in str(info.value)
