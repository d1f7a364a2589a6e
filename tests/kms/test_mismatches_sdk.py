"""The smaller mismatches with the SDK's documentation (issue 15), each through the SDK.

ListKeys filters applied, PageSize 0, NextRotationDate while rotation is suspended,
DKMSInstanceId echoed, key import for Origin=EXTERNAL, Aliyun_SM4 keys, the ACS3-HMAC-SM3
signature, and Recipient refused rather than ignored.
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from kmsnb.errors import KmsError

if TYPE_CHECKING:
    from conftest import RunningEmulator

pytestmark = pytest.mark.integration


@pytest.fixture
def sdk(emulator: RunningEmulator) -> Any:
    return emulator.sdk("acs3")


def expect_error(code: str, http_status: int, call: Any) -> None:
    with pytest.raises(KmsError) as caught:
        call()
    assert (caught.value.code, caught.value.http_status) == (code, http_status)


def key_ids(sdk: Any, *filters: tuple[str, list[str]]) -> set[str]:
    body = sdk.call(
        "ListKeys",
        Filters=json.dumps([{"Key": key, "Values": values} for key, values in filters]),
        PageSize=100,
    )
    return {item["KeyId"] for item in body["Keys"]["Key"]}


# The model names DKMSInstanceId's field dkmsinstance_id: DkmsinstanceId snake-cases to it.


def test_list_keys_applies_every_documented_filter(sdk: Any, emulator: RunningEmulator) -> None:
    tagged = sdk.call("CreateKey", Tags=json.dumps([{"TagKey": "team", "TagValue": "data"}]))
    tagged_id = tagged["KeyMetadata"]["KeyId"]
    instance_id = sdk.call("CreateKey", DkmsinstanceId="kst-hzz0000000001")["KeyMetadata"]["KeyId"]
    plain_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    sdk.call("CreateAlias", AliasName="alias/plain", KeyId=plain_id)
    every = {tagged_id, instance_id, plain_id}
    assert key_ids(sdk, ("AliasName", ["alias/plain", "alias/none"])) == {plain_id}
    assert key_ids(sdk, ("DKMSInstanceId", ["kst-hzz0000000001"])) == {instance_id}
    assert key_ids(sdk, ("TagKey", ["team"])) == {tagged_id}
    assert key_ids(sdk, ("TagValue", ["data"])) == {tagged_id}
    assert key_ids(sdk, ("KeyId", [plain_id, tagged_id])) == {plain_id, tagged_id}
    assert key_ids(sdk, ("Creator", [emulator.service.account_id])) == every
    assert key_ids(sdk, ("Creator", ["someone-else"])) == set()
    assert key_ids(sdk, ("KeyState", ["Enabled"]), ("TagKey", ["team"])) == {tagged_id}
    expect_error("InvalidParameter", 400, lambda: key_ids(sdk, ("Color", ["red"])))


def test_page_size_zero_where_documented(sdk: Any) -> None:
    key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    sdk.call("CreateAlias", AliasName="alias/zero", KeyId=key_id)
    for action, params in (
        ("ListAliases", {}),
        ("ListAliasesByKeyId", {"KeyId": key_id}),
        ("ListKeyVersions", {"KeyId": key_id}),
    ):
        body = sdk.call(action, PageSize=0, **params)
        assert (body["PageSize"], body["TotalCount"]) == (0, 1), action
    expect_error("InvalidParameter", 400, lambda: sdk.call("ListAliases", PageSize=101))
    expect_error("InvalidParameter", 400, lambda: sdk.call("ListKeys", PageSize=0))


def test_next_rotation_date_while_rotation_is_suspended(sdk: Any) -> None:
    created = sdk.call("CreateKey", EnableAutomaticRotation=True, RotationInterval="7d")
    key_id = created["KeyMetadata"]["KeyId"]
    next_date = created["KeyMetadata"]["NextRotationDate"]
    sdk.call("DisableKey", KeyId=key_id)
    metadata = sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert (metadata["AutomaticRotation"], metadata["NextRotationDate"]) == ("Suspended", next_date)


def test_dkms_instance_id_is_echoed(sdk: Any) -> None:
    created = sdk.call("CreateKey", DkmsinstanceId="kst-hzz0000000002")["KeyMetadata"]
    assert created["DKMSInstanceId"] == "kst-hzz0000000002"
    described = sdk.call("DescribeKey", KeyId=created["KeyId"])["KeyMetadata"]
    assert described["DKMSInstanceId"] == "kst-hzz0000000002"


def _import(sdk: Any, key_id: str, material: bytes, algorithm: str, **options: Any) -> None:
    parameters = sdk.call(
        "GetParametersForImport",
        KeyId=key_id,
        WrappingAlgorithm=algorithm,
        WrappingKeySpec="RSA_2048",
    )
    assert parameters["TokenExpireTime"].endswith("Z")
    public_key: Any = serialization.load_der_public_key(base64.b64decode(parameters["PublicKey"]))
    wrapping: Any = {
        "RSAES_PKCS1_V1_5": padding.PKCS1v15(),
        "RSAES_OAEP_SHA_1": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),  # noqa: S303
        "RSAES_OAEP_SHA_256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
    }[algorithm]
    sdk.call(
        "ImportKeyMaterial",
        KeyId=key_id,
        ImportToken=options.pop("token", parameters["ImportToken"]),
        EncryptedKeyMaterial=base64.b64encode(public_key.encrypt(material, wrapping)).decode(),
        KeyMaterialExpireUnix=options.pop("expire", 0),
    )


@pytest.mark.parametrize(
    "algorithm", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSAES_PKCS1_V1_5"]
)
def test_external_keys_leave_pending_import(sdk: Any, algorithm: str) -> None:
    key = sdk.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport"
    material = os.urandom(32)
    _import(sdk, key["KeyId"], material, algorithm)
    described = sdk.call("DescribeKey", KeyId=key["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "Enabled"
    blob = sdk.call("Encrypt", KeyId=key["KeyId"], Plaintext="hello")["CiphertextBlob"]
    assert sdk.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == "hello"

    sdk.call("DeleteKeyMaterial", KeyId=key["KeyId"])
    assert sdk.call("DescribeKey", KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    expect_error("Rejected.PendingImport", 409, lambda: sdk.call("Decrypt", CiphertextBlob=blob))
    expect_error(
        "InvalidKeyMaterial", 400, lambda: _import(sdk, key["KeyId"], os.urandom(32), algorithm)
    )
    _import(sdk, key["KeyId"], material, algorithm)  # only the same material comes back
    assert sdk.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == "hello"


def test_import_errors(sdk: Any, emulator: RunningEmulator) -> None:
    internal = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    external = sdk.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}
    expect_error(
        "Unsupported.Origin",
        400,
        lambda: sdk.call("GetParametersForImport", KeyId=internal, **params),
    )
    expect_error(
        "InvalidParameter",
        400,
        lambda: sdk.call(
            "GetParametersForImport",
            KeyId=external,
            WrappingAlgorithm="SM2PKE",
            WrappingKeySpec="EC_SM2",
        ),
    )
    material = os.urandom(32)
    expect_error(
        "InvalidImportToken",
        400,
        lambda: _import(sdk, external, material, "RSAES_OAEP_SHA_256", token="bm90IGEgdG9rZW4="),
    )
    expect_error(
        "InvalidKeyMaterial",
        400,
        lambda: _import(sdk, external, os.urandom(16), "RSAES_OAEP_SHA_256"),
    )
    expect_error(
        "InvalidParameter",
        400,
        lambda: _import(sdk, external, material, "RSAES_OAEP_SHA_256", expire=1),
    )
    expect_error(
        "Rejected.PendingImport", 409, lambda: sdk.call("CreateKeyVersion", KeyId=external)
    )
    _import(sdk, external, material, "RSAES_OAEP_SHA_256")
    pending = sdk.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    sdk.call("ScheduleKeyDeletion", KeyId=pending, PendingWindowInDays=7)
    expect_error(
        "Rejected.PendingDeletion",
        409,
        lambda: sdk.call("GetParametersForImport", KeyId=pending, **params),
    )
    # Imported material is the user's: no rotation, manual or automatic.
    expect_error("Unsupported.Origin", 400, lambda: sdk.call("CreateKeyVersion", KeyId=external))
    expect_error(
        "Unsupported.Origin",
        400,
        lambda: sdk.call(
            "UpdateRotationPolicy",
            KeyId=external,
            EnableAutomaticRotation=True,
            RotationInterval="7d",
        ),
    )


def test_imported_material_expires(sdk: Any, emulator: RunningEmulator) -> None:
    key_id = sdk.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    import time

    expire = 4_102_444_800  # 2100-01-01: far enough ahead of the server's (system) clock
    _import(sdk, key_id, os.urandom(32), "RSAES_OAEP_SHA_256", expire=expire)
    metadata = sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert metadata["MaterialExpireTime"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(expire)
    )
    # The engine's housekeeping at a later time (the server's clock is the system's).
    from kmsnb.emulator import KmsService

    later = KmsService(emulator.service.store, clock=lambda: expire + 1.0)
    assert (
        later.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["KeyState"] == "PendingImport"
    )


def test_sm4_keys(sdk: Any) -> None:
    key = sdk.call("CreateKey", KeySpec="Aliyun_SM4")["KeyMetadata"]
    assert key["KeySpec"] == "Aliyun_SM4"
    data_key = sdk.call("GenerateDataKey", KeyId=key["KeyId"], EncryptionContext={"a": "1"})
    opened = sdk.call(
        "Decrypt", CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext={"a": "1"}
    )
    assert opened["Plaintext"] == data_key["Plaintext"]
    expect_error(
        "InvalidParameter",
        400,
        lambda: sdk.call(
            "Decrypt", CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext={"a": "2"}
        ),
    )
    sdk.call("CreateKeyVersion", KeyId=key["KeyId"])  # rotation makes SM4 material too
    again = sdk.call("Encrypt", KeyId=key["KeyId"], Plaintext="text")
    assert sdk.call("Decrypt", CiphertextBlob=again["CiphertextBlob"])["Plaintext"] == "text"
    assert key_ids(sdk, ("KeySpec", ["Aliyun_SM4"])) == {key["KeyId"]}
    sm4_external = sdk.call("CreateKey", KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyMetadata"]
    _import(sdk, sm4_external["KeyId"], os.urandom(16), "RSAES_OAEP_SHA_256")
    blob = sdk.call("Encrypt", KeyId=sm4_external["KeyId"], Plaintext="x")["CiphertextBlob"]
    assert sdk.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == "x"


def test_acs3_hmac_sm3_signature(emulator: RunningEmulator) -> None:
    from alibabacloud_kms20160120 import models

    client = emulator.new_sdk(signature_algorithm="ACS3-HMAC-SM3")
    created = client.create_key(models.CreateKeyRequest(description="signed with SM3"))
    assert created.body.key_metadata.key_state == "Enabled"
    secret = client.create_secret(
        models.CreateSecretRequest(secret_name="sm3", secret_data="body", version_id="v1")
    )
    assert secret.body.secret_name == "sm3"  # a form body, hashed with SM3
    wrong = emulator.new_sdk(signature_algorithm="ACS3-HMAC-SM3", secret="not-the-secret")
    from Tea.exceptions import TeaException

    with pytest.raises(TeaException) as caught:
        wrong.list_keys(models.ListKeysRequest())
    assert caught.value.code == "SignatureDoesNotMatch"


def test_recipient_is_refused_not_ignored(sdk: Any) -> None:
    key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    data_key = sdk.call("GenerateDataKey", KeyId=key_id)
    attestation = base64.b64encode(b"attestation document").decode()
    expect_error(
        "InvalidParameter",
        400,
        lambda: sdk.call("GenerateDataKey", KeyId=key_id, Recipient=attestation),
    )
    expect_error(
        "InvalidParameter",
        400,
        lambda: sdk.call(
            "Decrypt", CiphertextBlob=data_key["CiphertextBlob"], Recipient=attestation
        ),
    )
    sdk.call("CreateSecret", SecretName="r", SecretData="v", VersionId="v1")
    expect_error(
        "InvalidParameter",
        400,
        lambda: sdk.call("GetSecretValue", SecretName="r", Recipient=attestation),
    )
