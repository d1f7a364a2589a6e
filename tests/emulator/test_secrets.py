"""Secrets Manager in the engine: values, versions and stages, deletion windows, errors."""

from __future__ import annotations

import base64
import json
import string
from pathlib import Path

import pytest

from kmsnb.emulator import KeyStore, KmsService
from kmsnb.emulator._secret_common import DEFAULT_KEY_ALIAS

from .conftest import DAY, ErrorExpectation, FakeClock, KeyFactory

pytestmark = pytest.mark.unit

SECRET_VALUE = "s3cr3t-Value-that-must-not-leak"


def create(service: KmsService, name: str = "db/password", **params: str) -> dict[str, object]:
    return service.call(
        "CreateSecret",
        {"SecretName": name, "SecretData": SECRET_VALUE, "VersionId": "v1", **params},
    )


def get(service: KmsService, name: str = "db/password", **params: str) -> dict[str, object]:
    return service.call("GetSecretValue", {"SecretName": name, **params})


def test_create_then_get_returns_the_documented_fields(service: KmsService) -> None:
    created = create(service, Description="the app's database")
    assert created == {
        "Arn": "acs:kms:cn-hangzhou:1234567890123456:secret/db/password",
        "SecretName": "db/password",
        "SecretType": "Generic",
        "VersionId": "v1",
    }
    value = get(service)
    assert value["SecretData"] == SECRET_VALUE
    assert value["SecretDataType"] == "text"
    assert value["VersionId"] == "v1"
    assert value["VersionStages"] == {"VersionStage": ["ACSCurrent"]}
    assert value["CreateTime"] == "2023-11-14T22:13:20Z"  # the fake clock's start


def test_values_are_sealed_at_rest_under_a_service_key(
    service: KmsService, store_dir: Path
) -> None:
    create(service)
    document = (store_dir / "keystore.json").read_bytes()
    assert SECRET_VALUE.encode() not in document
    assert base64.b64encode(SECRET_VALUE.encode()) not in document
    described = service.call("DescribeSecret", {"SecretName": "db/password"})
    aliases = service.call("ListAliases", {})["Aliases"]["Alias"]
    assert [(a["AliasName"], a["KeyId"]) for a in aliases] == [
        (DEFAULT_KEY_ALIAS, described["EncryptionKeyId"])
    ]
    assert service.store.snapshot().keys[described["EncryptionKeyId"]].creator_type == "Service"
    # Reopened from disk by another engine, the value is the same.
    other = KmsService(KeyStore(store_dir))
    assert get(other)["SecretData"] == SECRET_VALUE


def test_encryption_key_id_is_used_and_its_state_matters(
    service: KmsService, new_key: KeyFactory, service_error: ErrorExpectation
) -> None:
    key_id = new_key()
    service.call("CreateAlias", {"AliasName": "alias/secrets", "KeyId": key_id})
    create(service, EncryptionKeyId="alias/secrets")
    described = service.call("DescribeSecret", {"SecretName": "db/password"})
    assert described["EncryptionKeyId"] == key_id
    service.call("DisableKey", {"KeyId": key_id})
    with service_error("Rejected.Disabled", 409):
        get(service)
    with service_error("Forbidden.KeyNotFound", 404):
        create(service, "other", EncryptionKeyId="00000000-0000-4000-8000-000000000000")
    with service_error("Forbidden.AliasNotFound", 404):
        create(service, "other", EncryptionKeyId="alias/missing")


def test_put_moves_current_to_previous_and_stages_select_versions(service: KmsService) -> None:
    create(service)
    put = service.call(
        "PutSecretValue", {"SecretName": "db/password", "SecretData": "two", "VersionId": "v2"}
    )
    assert put == {
        "SecretName": "db/password",
        "VersionId": "v2",
        "VersionStages": {"VersionStage": ["ACSCurrent"]},
    }
    assert get(service)["SecretData"] == "two"
    assert get(service, VersionStage="ACSPrevious")["SecretData"] == SECRET_VALUE
    assert get(service, VersionId="v1")["VersionStages"] == {"VersionStage": ["ACSPrevious"]}
    service.call(
        "PutSecretValue",
        {
            "SecretName": "db/password",
            "SecretData": "three",
            "VersionId": "v3",
            "VersionStages": '["Staging"]',
        },
    )
    assert get(service)["SecretData"] == "two"  # a custom stage leaves ACSCurrent alone
    assert get(service, VersionStage="Staging", VersionId="v3")["SecretData"] == "three"


def test_version_ids_listing_and_deprecated_versions(service: KmsService) -> None:
    create(service)
    for number in (2, 3):
        service.call(
            "PutSecretValue",
            {"SecretName": "db/password", "SecretData": f"{number}", "VersionId": f"v{number}"},
        )
    listed = service.call("ListSecretVersionIds", {"SecretName": "db/password"})
    assert listed["TotalCount"] == 2
    assert listed["PageSize"] == 20
    stages = {
        item["VersionId"]: item["VersionStages"] for item in listed["VersionIds"]["VersionId"]
    }
    assert stages == {
        "v2": {"VersionStage": ["ACSPrevious"]},
        "v3": {"VersionStage": ["ACSCurrent"]},
    }
    every = service.call(
        "ListSecretVersionIds", {"SecretName": "db/password", "IncludeDeprecated": "true"}
    )
    assert [v["VersionId"] for v in every["VersionIds"]["VersionId"]] == ["v1", "v2", "v3"]
    page = service.call(
        "ListSecretVersionIds",
        {
            "SecretName": "db/password",
            "IncludeDeprecated": "true",
            "PageSize": "2",
            "PageNumber": "2",
        },
    )
    assert [v["VersionId"] for v in page["VersionIds"]["VersionId"]] == ["v3"]


def test_update_secret_version_stage(service: KmsService, service_error: ErrorExpectation) -> None:
    create(service)
    service.call(
        "PutSecretValue", {"SecretName": "db/password", "SecretData": "2", "VersionId": "v2"}
    )
    name = {"SecretName": "db/password"}
    service.call(
        "UpdateSecretVersionStage", {**name, "VersionStage": "ACSCurrent", "MoveToVersion": "v1"}
    )
    assert get(service)["VersionId"] == "v1"
    assert get(service, VersionStage="ACSPrevious")["VersionId"] == "v2"
    service.call(
        "UpdateSecretVersionStage", {**name, "VersionStage": "Blue", "MoveToVersion": "v2"}
    )
    service.call(
        "UpdateSecretVersionStage", {**name, "VersionStage": "Blue", "RemoveFromVersion": "v2"}
    )
    with service_error("Forbidden.ResourceNotFound", 404):
        get(service, VersionStage="Blue")
    with service_error("InvalidParameter", 400):  # reserved stages are only moved
        service.call(
            "UpdateSecretVersionStage",
            {**name, "VersionStage": "ACSCurrent", "RemoveFromVersion": "v1"},
        )
    with service_error("MissingParameter", 400):
        service.call("UpdateSecretVersionStage", {**name, "VersionStage": "Blue"})
    with service_error("Forbidden.ResourceNotFound", 404):
        service.call(
            "UpdateSecretVersionStage", {**name, "VersionStage": "Blue", "MoveToVersion": "v9"}
        )


def test_describe_list_filters_tags_and_paging(service: KmsService) -> None:
    create(service, "app/a", Tags='[{"TagKey":"team","TagValue":"data"}]', Description="A")
    create(service, "app/b", Description="B")
    create(service, "app/c", Tags='[{"TagKey":"team","TagValue":"ops"}]')

    def names(**params: str) -> list[str]:
        body = service.call("ListSecrets", params)
        return [item["SecretName"] for item in body["SecretList"]["Secret"]]

    assert names() == ["app/a", "app/b", "app/c"]
    assert names(Filters='[{"Key":"SecretName","Values":["app/a","app/c"]}]') == ["app/a", "app/c"]
    assert names(Filters='[{"Key":"TagKey","Values":["team"]}]') == ["app/a", "app/c"]
    assert names(Filters='[{"Key":"TagValue","Values":["ops"]}]') == ["app/c"]
    assert names(Filters='[{"Key":"Description","Values":["B"]}]') == ["app/b"]
    assert names(Filters='[{"Key":"SecretType","Values":["Generic"]}]') == [
        "app/a",
        "app/b",
        "app/c",
    ]
    assert names(Filters='[{"Key":"Creator","Values":["1234567890123456"]}]') == [
        "app/a",
        "app/b",
        "app/c",
    ]
    both = '[{"Key":"TagKey","Values":["team"]},{"Key":"Description","Values":["A"]}]'
    assert names(Filters=both) == ["app/a"]
    assert names(PageSize="2", PageNumber="2") == ["app/c"]
    listed = service.call("ListSecrets", {"FetchTags": "true", "PageSize": "1"})
    assert listed["TotalCount"] == 3
    assert listed["PageSize"] == 1
    assert listed["SecretList"]["Secret"][0]["Tags"] == {
        "Tag": [{"TagKey": "team", "TagValue": "data"}]
    }
    described = service.call("DescribeSecret", {"SecretName": "app/a", "FetchTags": "true"})
    assert described["Description"] == "A"
    assert described["Tags"] == {"Tag": [{"TagKey": "team", "TagValue": "data"}]}
    assert "SecretData" not in json.dumps(described)


def test_update_secret_description(
    service: KmsService, clock: FakeClock, service_error: ErrorExpectation
) -> None:
    create(service)
    clock.advance(60)
    service.call("UpdateSecret", {"SecretName": "db/password", "Description": "new"})
    described = service.call("DescribeSecret", {"SecretName": "db/password"})
    assert (described["Description"], described["UpdateTime"]) == ("new", "2023-11-14T22:14:20Z")
    with service_error("InvalidParameter", 400):
        service.call(
            "UpdateSecret",
            {"SecretName": "db/password", "Description": "", "ExtendedConfig.CustomData.k": "v"},
        )


def test_delete_with_a_recovery_window_then_restore_or_purge(
    service: KmsService, clock: FakeClock, service_error: ErrorExpectation
) -> None:
    create(service)
    deleted = service.call(
        "DeleteSecret", {"SecretName": "db/password", "RecoveryWindowInDays": "7"}
    )
    assert deleted == {"SecretName": "db/password", "PlannedDeleteTime": "2023-11-21T22:13:20Z"}
    with service_error("Rejected.ResourceInDeleteWindow", 409):
        get(service)
    with service_error("Rejected.ResourceInDeleteWindow", 409):
        service.call(
            "PutSecretValue", {"SecretName": "db/password", "SecretData": "x", "VersionId": "v2"}
        )
    with service_error("Rejected.ResourceInDeleteWindow", 409):
        create(service)  # the name is still taken
    with service_error("Rejected.ResourceInDeleteWindow", 409):
        service.call("DeleteSecret", {"SecretName": "db/password"})
    described = service.call("DescribeSecret", {"SecretName": "db/password"})
    assert described["PlannedDeleteTime"] == "2023-11-21T22:13:20Z"
    service.call("RestoreSecret", {"SecretName": "db/password"})
    assert get(service)["SecretData"] == SECRET_VALUE

    service.call("DeleteSecret", {"SecretName": "db/password", "RecoveryWindowInDays": "7"})
    clock.advance(7 * DAY)
    with service_error("Forbidden.ResourceNotFound", 404):
        get(service)
    assert service.call("ListSecrets", {})["TotalCount"] == 0
    create(service)  # the name is free again
    assert get(service)["SecretData"] == SECRET_VALUE


def test_forced_deletion_and_window_bounds(
    service: KmsService, service_error: ErrorExpectation
) -> None:
    create(service)
    for days in ("6", "31"):
        with service_error("InvalidParameter", 400):
            service.call(
                "DeleteSecret", {"SecretName": "db/password", "RecoveryWindowInDays": days}
            )
    with service_error("InvalidParameter", 400):
        service.call(
            "DeleteSecret",
            {
                "SecretName": "db/password",
                "ForceDeleteWithoutRecovery": "true",
                "RecoveryWindowInDays": "7",
            },
        )
    service.call("DeleteSecret", {"SecretName": "db/password", "RecoveryWindowInDays": "30"})
    body = service.call(
        "DeleteSecret", {"SecretName": "db/password", "ForceDeleteWithoutRecovery": "true"}
    )
    assert body == {"SecretName": "db/password"}
    with service_error("Forbidden.ResourceNotFound", 404):
        service.call("DescribeSecret", {"SecretName": "db/password"})


DB = {"SecretName": "db/password"}
NEW = {"SecretName": "x", "SecretData": "v", "VersionId": "v1"}
ERROR_CASES: list[tuple[str, int, str, dict[str, str]]] = [
    ("Forbidden.ResourceNotFound", 404, "GetSecretValue", {"SecretName": "nope"}),
    ("Forbidden.ResourceNotFound", 404, "GetSecretValue", {**DB, "VersionId": "v9"}),
    ("Forbidden.ResourceNotFound", 404, "GetSecretValue", {**DB, "VersionStage": "ACSPrevious"}),
    ("Forbidden.ResourceNotFound", 404, "DescribeSecret", {"SecretName": "acs:kms:x:1:secret/a"}),
    ("Rejected.ResourceExist", 409, "CreateSecret", {**NEW, **DB}),
    ("Rejected.ResourceExist", 409, "PutSecretValue", {**NEW, **DB}),
    ("MissingParameter", 400, "CreateSecret", {"SecretName": "x", "VersionId": "v1"}),
    ("MissingParameter", 400, "CreateSecret", {"SecretName": "x", "SecretData": "v"}),
    ("InvalidParameter", 400, "CreateSecret", {**NEW, "SecretName": "acs/x"}),
    ("InvalidParameter", 400, "CreateSecret", {**NEW, "SecretName": "a b"}),
    ("InvalidParameter", 400, "CreateSecret", {**NEW, "SecretData": "v" * 30_721}),
    (
        "InvalidParameter",
        400,
        "CreateSecret",
        {**NEW, "SecretData": "!", "SecretDataType": "binary"},
    ),
    ("InvalidParameter", 400, "CreateSecret", {**NEW, "SecretType": "Rds"}),
    ("InvalidParameter", 400, "CreateSecret", {**NEW, "EnableAutomaticRotation": "true"}),
    ("InvalidParameter", 400, "GetSecretValue", {**DB, "Recipient": "{}"}),
    ("DryRunOperation", 400, "GetSecretValue", {**DB, "DryRun": "true"}),
    ("InvalidParameter", 400, "ListSecrets", {"Filters": '[{"Key":"Color","Values":["x"]}]'}),
    ("InvalidParameter", 400, "ListSecrets", {"PageSize": "101"}),
    ("InvalidParameter", 400, "BatchGetSecretValue", {"SecretsList": json.dumps([DB] * 21)}),
    ("MissingParameter", 400, "BatchGetSecretValue", {}),
]


@pytest.mark.parametrize(("code", "status", "action", "params"), ERROR_CASES)
def test_errors_with_their_documented_codes(
    service: KmsService,
    service_error: ErrorExpectation,
    code: str,
    status: int,
    action: str,
    params: dict[str, str],
) -> None:
    create(service)
    with service_error(code, status):
        service.call(action, params)


def test_arn_names_a_secret(service: KmsService) -> None:
    create(service)
    arn = "acs:kms:cn-hangzhou:1234567890123456:secret/db/password"
    assert get(service, SecretName=arn)["SecretData"] == SECRET_VALUE


def test_binary_values_round_trip_as_base64_text(service: KmsService) -> None:
    encoded = base64.b64encode(bytes(range(256))).decode()
    create(service, "blob", SecretData=encoded, SecretDataType="binary")
    value = get(service, "blob")
    assert (value["SecretData"], value["SecretDataType"]) == (encoded, "binary")


def test_batch_get_reports_each_failure_and_returns_the_rest(service: KmsService) -> None:
    create(service, "a")
    create(service, "b")
    service.call("PutSecretValue", {"SecretName": "b", "SecretData": "b2", "VersionId": "v2"})
    service.call("DeleteSecret", {"SecretName": "a"})
    requests = [
        {"SecretName": "a"},
        {"SecretName": "b", "VersionStage": "ACSPrevious"},
        {"SecretName": "b"},
        {"SecretName": "missing"},
    ]
    body = service.call("BatchGetSecretValue", {"SecretsList": json.dumps(requests)})
    assert [(v["SecretName"], v["SecretData"]) for v in body["SecretValues"]] == [
        ("b", SECRET_VALUE),
        ("b", "b2"),
    ]
    assert [(e["SecretName"], e["Code"], e["HttpStatus"]) for e in body["Errors"]] == [
        ("a", "Rejected.ResourceInDeleteWindow", "409"),
        ("missing", "Forbidden.ResourceNotFound", "404"),
    ]


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        ({}, set(string.ascii_letters + string.digits + string.punctuation)),
        ({"ExcludePunctuation": "true"}, set(string.ascii_letters + string.digits)),
        (
            {"ExcludeUppercase": "true", "ExcludeNumbers": "true", "ExcludeCharacters": "abc"},
            set(string.ascii_lowercase + string.punctuation) - set("abc"),
        ),
    ],
)
def test_random_passwords(service: KmsService, params: dict[str, str], allowed: set[str]) -> None:
    passwords = {service.call("GetRandomPassword", params)["RandomPassword"] for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) == 32
        assert set(password) <= allowed
    short = service.call("GetRandomPassword", {**params, "PasswordLength": "8"})["RandomPassword"]
    assert len(short) == 8
    # RequireEachIncludedType (the default): at least one of each class left in.
    for chars in (
        string.ascii_lowercase,
        string.ascii_uppercase,
        string.digits,
        string.punctuation,
    ):
        usable = set(chars) & allowed
        if usable:
            assert all(set(password) & usable for password in passwords)


def test_random_password_bounds(service: KmsService, service_error: ErrorExpectation) -> None:
    for length in ("7", "129"):
        with service_error("InvalidParameter", 400):
            service.call("GetRandomPassword", {"PasswordLength": length})
    every_class = {
        f"Exclude{name}": "true" for name in ("Lowercase", "Uppercase", "Numbers", "Punctuation")
    }
    with service_error("InvalidParameter", 400):
        service.call("GetRandomPassword", every_class)
