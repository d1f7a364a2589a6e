"""Fuzzing the engine's request parameters: any value of any parameter of any action is
answered or refused with a 4xx ``ServiceError``; never a 500, never another exception.

The engine is what both emulators run (the HTTP server turns anything else into a 500),
so this covers the in-process and the HTTP emulator alike.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsnb.emulator import ACTIONS, KeyStore, KmsService, ServiceError

pytestmark = pytest.mark.unit

PARAMETERS = (
    "AliasName",
    "CiphertextBlob",
    "Description",
    "DestinationEncryptionContext",
    "DestinationKeyId",
    "DryRun",
    "EnableAutomaticRotation",
    "EncryptionContext",
    "Filters",
    "KeyId",
    "KeySpec",
    "KeyUsage",
    "KeyVersionId",
    "NumberOfBytes",
    "Origin",
    "PageNumber",
    "PageSize",
    "PendingWindowInDays",
    "Plaintext",
    "ProtectionLevel",
    "RotationInterval",
    "SourceEncryptionContext",
    "TagKeys",
    "Tags",
    # Key import and Secrets Manager.
    "DKMSInstanceId",
    "EncryptedKeyMaterial",
    "EncryptionKeyId",
    "ExcludeCharacters",
    "FetchTags",
    "ForceDeleteWithoutRecovery",
    "ImportToken",
    "IncludeDeprecated",
    "KeyMaterialExpireUnix",
    "MoveToVersion",
    "PasswordLength",
    "RecoveryWindowInDays",
    "RemoveFromVersion",
    "SecretData",
    "SecretDataType",
    "SecretName",
    "SecretsList",
    "VersionId",
    "VersionStage",
    "VersionStages",
    "WrappingAlgorithm",
    "WrappingKeySpec",
)

_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "alias/x", "AES_256", "True", "7d", "é" * 5, "\x00\x1b[2J"]),
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
NASTY = [
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + '"b"' + "}" * 3000,
    "9" * 5000,
    "1e99999",
    "-0",
    "NaN",
    '{"k":"\\ud800"}',
    '{"\\udfff":"v"}',
    '[{"Key":[],"Values":["x"]}]',
    '[{"TagKey":"k","TagValue":"\\ud800"}]',
    '[{"TagKey":{},"TagValue":"v"}]',
    '[{"SecretName":"\\ud800"}]',
    '[{"SecretName":"fuzz","VersionStage":{}}]',
    '["ACSCurrent","\\udfff"]',
    "fuzz",
    "v" * 65,
    '[{"Key":{"a":1},"Values":[]}]',
    "\ud800",
    "alias/\ud800",
    "99999999999999999999999d",
    "acs:kms:cn-hangzhou:1234567890123456:key/\ud800",
    "acs:kms:cn-hangzhou:1234567890123456:alias/x",
    "",
    " ",
    "True",
]
_nasty_text = st.sampled_from(NASTY)


def values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        _json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),
        st.integers().map(str),
        _nasty_text,
    )


@contextmanager
def _service() -> Iterator[tuple[KmsService, str, str]]:
    with tempfile.TemporaryDirectory() as workdir:
        service = KmsService(KeyStore(Path(workdir) / "store"))
        key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
        blob = service.call("GenerateDataKey", {"KeyId": key_id})["CiphertextBlob"]
        service.call("CreateAlias", {"AliasName": "alias/x", "KeyId": key_id})
        service.call("CreateSecret", {"SecretName": "fuzz", "SecretData": "x", "VersionId": "v1"})
        yield service, key_id, blob
        service.store.close()


def _call(service: KmsService, action: str, params: dict[str, str]) -> None:
    status = 200
    try:
        service.call(action, params)
    except ServiceError as error:
        status = error.http_status
    assert status < 500, (action, params)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_parameters_of_any_action_get_a_4xx_at_worst(data: st.DataObject) -> None:
    with _service() as (service, key_id, blob):
        for _ in range(8):
            action = data.draw(st.sampled_from(sorted(ACTIONS)))
            names = data.draw(st.lists(st.sampled_from(PARAMETERS), max_size=5, unique=True))
            params = {name: data.draw(values()) for name in names}
            # Most calls need a real key or blob to get past the first check.
            if data.draw(st.booleans()):
                params.setdefault("KeyId", key_id)
                params.setdefault("DestinationKeyId", key_id)
                params.setdefault("CiphertextBlob", blob)
                params.setdefault("SecretName", "fuzz")
            _call(service, action, params)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_nasty_value_in_each_parameter(action: str) -> None:
    with _service() as (service, key_id, blob):
        base = {"KeyId": key_id, "DestinationKeyId": key_id, "CiphertextBlob": blob}
        base |= {"SecretName": "fuzz", "SecretData": "y", "VersionId": "v2"}
        for name in PARAMETERS:
            for value in NASTY:
                _call(service, action, {**base, name: value})
