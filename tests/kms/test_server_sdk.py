"""The official SDKs, new and old, driving the emulator's HTTP server unchanged.

Tests taking ``sdk`` or ``sdk_kind`` run under the four ways a client signs: the new SDK's
default ACS3-HMAC-SHA256, its ``signature_algorithm='v2'`` (RPC HMAC-SHA1) and
``signature_version='v4'`` (ACS4), and the old ``aliyunsdkcore`` SDK. The engine's own tests
cover the key-state matrix in full; a sample goes through HTTP here.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from kmsnb.cli import main
from kmsnb.emulator.server import (
    MAX_BODY_SIZE,
    MAX_URL_SIZE,
    EmulatorServer,
    resolve_credentials,
)
from kmsnb.emulator.service import KmsService, Limits
from kmsnb.emulator.store import KeyStore
from kmsnb.errors import KmsError

if TYPE_CHECKING:
    from conftest import RunningEmulator


pytestmark = pytest.mark.integration

CONTEXT = {"purpose": "unit test", "path": "a/b+c*~", "uni": "é"}
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def sdk(sdk_kind: str, emulator: RunningEmulator) -> Any:
    """A client of each SDK configuration in turn (``sdk_kind`` is set in conftest)."""
    return emulator.sdk(sdk_kind)


def expect_error(code: str, http_status: int, call: Callable[[], object]) -> KmsError:
    with pytest.raises(KmsError) as caught:
        call()
    assert (code, http_status) == (caught.value.code, caught.value.http_status)
    assert caught.value.request_id
    return caught.value


# --- a whole key lifecycle, every operation ------------------------------------------------------


def test_key_lifecycle_uses_every_operation(sdk: Any) -> None:
    """Create, use, rotate, alias, tag, disable, schedule and cancel deletion of keys."""
    key = sdk.call("CreateKey", Description="lifecycle")["KeyMetadata"]
    key_id = key["KeyId"]
    assert key["KeyState"] == "Enabled"
    assert sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["Description"] == "lifecycle"

    sdk.call("CreateAlias", AliasName="alias/life", KeyId=key_id)
    data_key = sdk.call(
        "GenerateDataKey", KeyId="alias/life", NumberOfBytes=32, EncryptionContext=CONTEXT
    )
    assert data_key["KeyId"] == key_id
    assert len(base64.b64decode(data_key["Plaintext"])) == 32
    blob = data_key["CiphertextBlob"]
    # The tutorial's scripts send the blob back with the newline of the file they kept it in.
    opened = sdk.call("Decrypt", CiphertextBlob=blob + "\n", EncryptionContext=CONTEXT)
    assert (opened["Plaintext"], opened["KeyId"]) == (data_key["Plaintext"], key_id)

    short = sdk.call("GenerateDataKeyWithoutPlaintext", KeyId=key_id, KeySpec="AES_128")
    assert "Plaintext" not in short
    short_key = sdk.call("Decrypt", CiphertextBlob=short["CiphertextBlob"])["Plaintext"]
    assert len(base64.b64decode(short_key)) == 16

    sealed = sdk.call("Encrypt", KeyId=key_id, Plaintext="hello, world")
    assert (
        sdk.call("Decrypt", CiphertextBlob=sealed["CiphertextBlob"])["Plaintext"] == "hello, world"
    )

    other_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    moved = sdk.call(
        "ReEncrypt",
        CiphertextBlob=blob,
        DestinationKeyId=other_id,
        SourceEncryptionContext=CONTEXT,
        DestinationEncryptionContext={"x": "y"},
    )
    assert moved["KeyId"] == other_id
    reopened = sdk.call(
        "Decrypt", CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"x": "y"}
    )
    assert reopened["Plaintext"] == data_key["Plaintext"]

    version = sdk.call("CreateKeyVersion", KeyId=key_id)["KeyVersion"]
    assert (
        sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["PrimaryKeyVersion"]
        == version["KeyVersionId"]
    )
    described = sdk.call("DescribeKeyVersion", KeyId=key_id, KeyVersionId=version["KeyVersionId"])
    assert described["KeyVersion"]["KeyVersionId"] == version["KeyVersionId"]
    versions = sdk.call("ListKeyVersions", KeyId=key_id)
    assert versions["TotalCount"] == 2
    assert len(versions["KeyVersions"]["KeyVersion"]) == 2
    # Blobs of the old version still open after rotation.
    assert (
        sdk.call("Decrypt", CiphertextBlob=blob, EncryptionContext=CONTEXT)["KeyVersionId"]
        == data_key["KeyVersionId"]
    )

    sdk.call("UpdateAlias", AliasName="alias/life", KeyId=other_id)
    assert sdk.call("DescribeKey", KeyId="alias/life")["KeyMetadata"]["KeyId"] == other_id
    aliases = sdk.call("ListAliases")["Aliases"]["Alias"]
    assert [(a["AliasName"], a["KeyId"]) for a in aliases] == [("alias/life", other_id)]
    by_key = sdk.call("ListAliasesByKeyId", KeyId=other_id)
    assert by_key["TotalCount"] == 1

    sdk.call("TagResource", KeyId=key_id, Tags='[{"TagKey":"team","TagValue":"data"}]')
    tags = sdk.call("ListResourceTags", KeyId=key_id)["Tags"]["Tag"]
    assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("team", "data")]
    sdk.call("UntagResource", KeyId=key_id, TagKeys='["team"]')
    assert not sdk.call("ListResourceTags", KeyId=key_id).get("Tags", {}).get("Tag")

    sdk.call("UpdateKeyDescription", KeyId=key_id, Description="renamed")
    sdk.call(
        "UpdateRotationPolicy",
        KeyId=key_id,
        EnableAutomaticRotation=True,
        RotationInterval="604800s",
    )
    metadata = sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert (metadata["Description"], metadata["AutomaticRotation"]) == ("renamed", "Enabled")

    sdk.call("DisableKey", KeyId=key_id)
    expect_error("Rejected.Disabled", 409, lambda: sdk.call("GenerateDataKey", KeyId=key_id))
    sdk.call("EnableKey", KeyId=key_id)
    sdk.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    sdk.call("CancelKeyDeletion", KeyId=key_id)
    assert sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    sdk.call("DeleteAlias", AliasName="alias/life")
    assert sdk.call("ListAliases").get("TotalCount") == 0
    listed = sdk.call("ListKeys", PageSize=100)
    assert {k["KeyId"] for k in listed["Keys"]["Key"]} == {key_id, other_id}


def test_context_written_by_one_sdk_opens_with_the_other(emulator: RunningEmulator) -> None:
    """Compact UTF-8 JSON from the new SDK, ``json.dumps`` with escapes from the old one."""
    new, old = emulator.sdk("acs3"), emulator.sdk("old-sdk")
    key_id = new.call("CreateKey")["KeyMetadata"]["KeyId"]
    data_key = new.call("GenerateDataKey", KeyId=key_id, EncryptionContext={"b": "2", "a": "é"})
    opened = old.call(
        "Decrypt", CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext={"a": "é", "b": "2"}
    )
    assert opened["Plaintext"] == data_key["Plaintext"]


@pytest.mark.filterwarnings("ignore:do_action\\(\\) method is deprecated")
def test_old_sdk_deprecated_do_action_sends_format_none(emulator: RunningEmulator) -> None:
    """Alibaba's tutorial calls ``do_action`` without ``set_accept_format``: ``Format=None``."""
    from aliyunsdkkms.request.v20160120.CreateKeyRequest import CreateKeyRequest

    request = CreateKeyRequest()
    request.set_endpoint(emulator.endpoint)
    body = json.loads(emulator.old_sdk().client.do_action(request))
    assert body["KeyMetadata"]["KeyState"] == "Enabled"


# --- error codes a request can reach -------------------------------------------------------------


def _make_key(sdk: Any, **params: Any) -> str:
    return str(sdk.call("CreateKey", **params)["KeyMetadata"]["KeyId"])


def _aliased_twice(sdk: Any) -> None:
    key_id = _make_key(sdk)
    sdk.call("CreateAlias", AliasName="alias/twice", KeyId=key_id)
    sdk.call("CreateAlias", AliasName="alias/twice", KeyId=key_id)


def _decrypt_with_other_context(sdk: Any) -> None:
    blob = sdk.call("GenerateDataKey", KeyId=_make_key(sdk), EncryptionContext={"a": "1"})
    sdk.call("Decrypt", CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"a": "2"})


def _use_disabled_key(sdk: Any) -> None:
    key_id = _make_key(sdk)
    sdk.call("DisableKey", KeyId=key_id)
    sdk.call("Encrypt", KeyId=key_id, Plaintext="x")


def _use_key_pending_deletion(sdk: Any) -> None:
    key_id = _make_key(sdk)
    sdk.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    sdk.call("GenerateDataKey", KeyId=key_id)


ERROR_CASES: dict[str, tuple[str, int, Callable[[Any], object]]] = {
    "key not found": (
        "Forbidden.KeyNotFound",
        404,
        lambda sdk: sdk.call("DescribeKey", KeyId=NO_SUCH_ID),
    ),
    "alias not found": (
        "Forbidden.AliasNotFound",
        404,
        lambda sdk: sdk.call("DeleteAlias", AliasName="alias/none"),
    ),
    "key version not found": (
        "Forbidden.KeyVersionNotFound",
        404,
        lambda sdk: sdk.call("DescribeKeyVersion", KeyId=_make_key(sdk), KeyVersionId=NO_SUCH_ID),
    ),
    "alias exists": ("AliasAlreadyExists", 400, _aliased_twice),
    "bad number of bytes": (
        "InvalidParameter",
        400,
        lambda sdk: sdk.call("GenerateDataKey", KeyId=_make_key(sdk), NumberOfBytes=1025),
    ),
    "wrong context": ("InvalidParameter", 400, _decrypt_with_other_context),
    "missing plaintext": (
        "MissingParameter",
        400,
        lambda sdk: sdk.call("Encrypt", KeyId=_make_key(sdk)),
    ),
    "dry run": (
        "DryRunOperation",
        400,
        lambda sdk: sdk.call("GenerateDataKey", KeyId=_make_key(sdk), DryRun="true"),
    ),
    "state change refused": (
        "Rejected.StateModifiedFailed",
        409,
        lambda sdk: sdk.call("CancelKeyDeletion", KeyId=_make_key(sdk)),
    ),
    "disabled": ("Rejected.Disabled", 409, _use_disabled_key),
    "pending deletion": ("Rejected.PendingDeletion", 409, _use_key_pending_deletion),
    "pending import": (
        "Rejected.PendingImport",
        409,
        lambda sdk: sdk.call("GenerateDataKey", KeyId=_make_key(sdk, Origin="EXTERNAL")),
    ),
}


@pytest.mark.parametrize("kind", ["acs3", "old-sdk"])
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_service_error_reaches_the_sdk(emulator: RunningEmulator, kind: str, case: str) -> None:
    code, http_status, call = ERROR_CASES[case]
    sdk = emulator.sdk(kind)
    expect_error(code, http_status, lambda: call(sdk))


def test_quota_exceeded(start_emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    service = KmsService(KeyStore(tmp_path / "small"), limits=Limits(keys=1))
    sdk = start_emulator(service=service).sdk("acs3")
    sdk.call("CreateKey")
    expect_error("Rejected.LimitExceeded", 400, lambda: sdk.call("CreateKey"))


# Expected outcome per key state, from the "Impact of CMK states" table (None: success).
STATE_MATRIX_SAMPLE: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    # operation:        Enabled, Disabled, PendingDeletion, PendingImport
    "GenerateDataKey": (
        None,
        "Rejected.Disabled",
        "Rejected.PendingDeletion",
        "Rejected.PendingImport",
    ),
    "DisableKey": (None, None, "Rejected.StateModifiedFailed", "Rejected.StateModifiedFailed"),
    "CancelKeyDeletion": (
        "Rejected.StateModifiedFailed",
        "Rejected.StateModifiedFailed",
        None,
        "Rejected.StateModifiedFailed",
    ),
    "CreateAlias": (None, None, "Rejected.StateModifiedFailed", None),
    "TagResource": (None, None, "Rejected.PendingDeletion", None),
    "DescribeKey": (None, None, None, None),
}
STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")
STATE_PARAMS = {
    "CreateAlias": {"AliasName": "alias/state"},
    "TagResource": {"Tags": '[{"TagKey":"k","TagValue":"v"}]'},
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("operation", sorted(STATE_MATRIX_SAMPLE))
def test_key_state_matrix_sample(emulator: RunningEmulator, operation: str, state: str) -> None:
    sdk = emulator.sdk("acs3")
    key_id = _make_key(sdk, Origin="EXTERNAL") if state == "PendingImport" else _make_key(sdk)
    if state == "Disabled":
        sdk.call("DisableKey", KeyId=key_id)
    elif state == "PendingDeletion":
        sdk.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert sdk.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == state

    expected = STATE_MATRIX_SAMPLE[operation][STATES.index(state)]

    def call() -> object:
        return sdk.call(operation, KeyId=key_id, **STATE_PARAMS.get(operation, {}))

    if expected is None:
        call()
    else:
        expect_error(expected, 409, call)


# --- authentication through the SDKs -------------------------------------------------------------


def test_wrong_secret_old_sdk_reports_invalid_access_key_secret(emulator: RunningEmulator) -> None:
    """The old SDK recognizes its own string to sign in the gateway's message (§5.3)."""
    sdk = emulator.sdk("old-sdk", secret="not-the-secret")
    expect_error("InvalidAccessKeySecret", 400, lambda: sdk.call("ListKeys"))


@pytest.mark.parametrize("kind", ["acs3", "rpc-v2", "acs4"])
def test_wrong_secret_new_sdk(emulator: RunningEmulator, kind: str) -> None:
    sdk = emulator.sdk(kind, secret="not-the-secret")
    expect_error("SignatureDoesNotMatch", 400, lambda: sdk.call("ListKeys"))


def test_unknown_access_key(emulator: RunningEmulator, sdk_kind: str) -> None:
    sdk = emulator.sdk(sdk_kind, access_key_id="LTAI5tNoSuchAccessKey00")
    expect_error("InvalidAccessKeyId.NotFound", 404, lambda: sdk.call("ListKeys"))


def _freeze_signing(
    monkeypatch: pytest.MonkeyPatch, *, timestamp: str | None = None, nonce: str | None = None
) -> None:
    """Make both SDKs sign with a fixed timestamp and/or nonce (their own helpers)."""
    from alibabacloud_openapi_util.client import Client as OpenApiUtil
    from alibabacloud_tea_openapi.utils import Utils
    from alibabacloud_tea_util.client import Client as TeaUtil
    from aliyunsdkcore.utils import parameter_helper

    if timestamp is not None:
        monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: timestamp))
        monkeypatch.setattr(OpenApiUtil, "get_timestamp", staticmethod(lambda: timestamp))
        monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: timestamp)
    if nonce is not None:
        monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: nonce))
        monkeypatch.setattr(TeaUtil, "get_nonce", staticmethod(lambda: nonce))
        monkeypatch.setattr(parameter_helper, "get_uuid", lambda: nonce)


def test_replayed_nonce_is_refused(
    emulator: RunningEmulator, sdk_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = emulator.sdk(sdk_kind)
    _freeze_signing(monkeypatch, nonce="0123456789abcdef0123456789abcdef")
    sdk.call("ListKeys")
    expect_error("SignatureNonceUsed", 400, lambda: sdk.call("ListKeys"))


def test_stale_timestamp_is_refused(
    emulator: RunningEmulator, sdk_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = emulator.sdk(sdk_kind)
    _freeze_signing(monkeypatch, timestamp="2020-01-01T00:00:00Z")
    expect_error("InvalidTimeStamp.Expired", 400, lambda: sdk.call("ListKeys"))


# --- the wire, below the SDKs --------------------------------------------------------------------


def _signed_path(emulator: RunningEmulator, method: str, params: dict[str, str]) -> str:
    """A request target signed by the old SDK's own RPC signer (independent of ours)."""
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    url, _ = get_signed_url(
        {"Version": "2016-01-20", **params},
        emulator.access_key_id,
        emulator.access_key_secret,
        "JSON",
        method,
        {},
    )
    return str(url)


def _send(
    emulator: RunningEmulator,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPResponse, dict[str, Any]]:
    conn = connection or http.client.HTTPConnection(
        emulator.server.host, emulator.server.port, timeout=10
    )
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = json.loads(response.read())
    if connection is None:
        conn.close()
    return response.status, response, payload


def test_success_and_error_responses_have_the_gateway_shape(emulator: RunningEmulator) -> None:
    status, response, body = _send(
        emulator, "POST", _signed_path(emulator, "POST", {"Action": "CreateKey"})
    )
    assert status == 200
    assert response.getheader("Content-Type") == "application/json;charset=utf-8"
    assert response.getheader("x-acs-request-id") == body["RequestId"]

    status, response, body = _send(
        emulator,
        "POST",
        _signed_path(emulator, "POST", {"Action": "DescribeKey", "KeyId": NO_SUCH_ID}),
    )
    assert status == 404
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "Forbidden.KeyNotFound"
    assert response.getheader("x-acs-request-id") == body["RequestId"]


def test_get_and_form_body_parameters(emulator: RunningEmulator) -> None:
    status, _, body = _send(emulator, "GET", _signed_path(emulator, "GET", {"Action": "CreateKey"}))
    assert status == 200
    key_id = body["KeyMetadata"]["KeyId"]

    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    form = {"KeyId": key_id, "NumberOfBytes": "16"}
    target, _ = get_signed_url(
        {"Version": "2016-01-20", "Action": "GenerateDataKey"},
        emulator.access_key_id,
        emulator.access_key_secret,
        "JSON",
        "POST",
        form,
    )
    status, _, body = _send(
        emulator,
        "POST",
        target,
        body=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert len(base64.b64decode(body["Plaintext"])) == 16


def test_replayed_request_is_refused(emulator: RunningEmulator) -> None:
    target = _signed_path(emulator, "POST", {"Action": "ListKeys"})
    assert _send(emulator, "POST", target)[0] == 200
    status, _, body = _send(emulator, "POST", target)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


def test_keep_alive_serves_several_requests_on_one_connection(emulator: RunningEmulator) -> None:
    conn = http.client.HTTPConnection(emulator.server.host, emulator.server.port, timeout=10)
    for _ in range(3):
        target = _signed_path(emulator, "POST", {"Action": "ListKeys"})
        assert _send(emulator, "POST", target, connection=conn)[0] == 200
    conn.close()


@pytest.mark.parametrize(
    ("method", "target", "code", "http_status"),
    [
        ("POST", "/?Action=ListKeys&Version=2016-01-20", "IncompleteSignature", 400),
        ("POST", "/?KeyId=%ff", "ParseRequestParameterException", 400),
        ("POST", "/other?Action=ListKeys", "InvalidAction.NotFound", 404),
        ("PUT", "/", "UnsupportedHTTPMethod", 403),
        ("POST", "/?Plaintext=" + "x" * MAX_URL_SIZE, "InvalidParameter", 400),
    ],
    ids=["unsigned", "bad-utf8", "path", "put", "long-url"],
)
def test_malformed_requests(
    emulator: RunningEmulator, method: str, target: str, code: str, http_status: int
) -> None:
    status, _, body = _send(emulator, method, target)
    assert (status, body["Code"]) == (http_status, code)


@pytest.mark.parametrize(
    ("params", "code", "http_status"),
    [
        ({"Action": "NoSuchAction"}, "InvalidAction.NotFound", 404),
        ({"Action": "ListKeys", "Version": "2099-01-01"}, "InvalidVersion", 400),
    ],
)
def test_unknown_action_or_version(
    emulator: RunningEmulator, params: dict[str, str], code: str, http_status: int
) -> None:
    status, _, body = _send(emulator, "POST", _signed_path(emulator, "POST", params))
    assert (status, body["Code"]) == (http_status, code)


def test_missing_action(emulator: RunningEmulator) -> None:
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    target, _ = get_signed_url(
        {"Version": "2016-01-20"},
        emulator.access_key_id,
        emulator.access_key_secret,
        "JSON",
        "POST",
        {},
    )
    status, _, body = _send(emulator, "POST", target)
    assert (status, body["Code"]) == (400, "MissingParameter")


def test_oversized_body_is_refused_and_the_connection_closed(emulator: RunningEmulator) -> None:
    """Refused on its Content-Length alone, before any of the body is read."""
    address = (emulator.server.host, emulator.server.port)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {MAX_BODY_SIZE + 1}\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
    assert (response.status, body["Code"]) == (413, "RequestEntityTooLarge")
    assert response.getheader("Connection") == "close"


def test_http_server_errors_are_json_and_do_not_echo_the_request(emulator: RunningEmulator) -> None:
    address = (emulator.server.host, emulator.server.port)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /?Plaintext=top-secret HTTP/1.1 junk\r\n\r\n")
        raw = sock.recv(65536)
    # A request line http.server cannot parse is answered as HTTP/0.9: the body alone.
    assert json.loads(raw[raw.index(b"{") :])["Code"] == "BadRequest"
    assert b"top-secret" not in raw


def test_logs_never_hold_parameters(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kmsnb.emulator")
    sdk = emulator.sdk("rpc-v2")
    key_id = _make_key(sdk)
    sealed = sdk.call(
        "Encrypt", KeyId=key_id, Plaintext="plain-secret", EncryptionContext={"ctx": "ctx-secret"}
    )
    with pytest.raises(KmsError):
        sdk.call(
            "Decrypt",
            CiphertextBlob=sealed["CiphertextBlob"],
            EncryptionContext={"ctx": "other-secret"},
        )
    _send(emulator, "POST", "/?Plaintext=raw-secret")
    assert caplog.records  # the server does log at DEBUG...
    for secret in (
        "plain-secret",
        "ctx-secret",
        "other-secret",
        "raw-secret",
        emulator.access_key_secret,
    ):
        assert secret not in caplog.text  # ...but never a parameter or the secret


class _BrokenService:
    """A service with a bug: its exception's text quotes the request."""

    def call(self, action: str, params: Any) -> Any:
        raise RuntimeError(f"failed on {dict(params)}")


@pytest.mark.usefixtures("no_proxy")
def test_unexpected_failure_is_internal_failure_and_logs_no_request_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kmsnb.emulator")
    broken: Any = _BrokenService()
    server = EmulatorServer(broken, credentials={"LTAIbroken": "broken-secret"})
    with server:
        from alibabacloud_kms20160120 import models
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.exceptions import ServerException
        from alibabacloud_tea_openapi.models import Config

        client = Client(
            Config(
                access_key_id="LTAIbroken",
                access_key_secret="broken-secret",
                endpoint=server.endpoint.removeprefix("http://"),
                protocol="http",
            )
        )
        with pytest.raises(ServerException) as caught:
            client.encrypt(models.EncryptRequest(key_id="k", plaintext="plain-secret"))
    assert (caught.value.code, caught.value.status_code) == ("InternalFailure", 500)
    assert "RuntimeError" in caplog.text
    assert "plain-secret" not in caplog.text


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_clients_lose_no_key(emulator: RunningEmulator) -> None:
    """8 threads, 200 GenerateDataKey + Decrypt pairs: no error, every key opens to itself."""
    key_id = _make_key(emulator.sdk("acs3"))
    thread_count, pair_count = 8, 200
    errors: list[BaseException] = []
    opened: list[set[str]] = [set() for _ in range(thread_count)]

    def work(index: int) -> None:
        sdk = emulator.sdk("acs3")  # one client per thread, as an application would
        try:
            for number in range(pair_count):
                context = {"thread": str(index), "n": str(number)}
                data_key = sdk.call("GenerateDataKey", KeyId=key_id, EncryptionContext=context)
                plain = sdk.call(
                    "Decrypt", CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context
                )
                assert plain["Plaintext"] == data_key["Plaintext"]
                opened[index].add(plain["Plaintext"])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set().union(*opened)) == thread_count * pair_count


# --- server configuration ------------------------------------------------------------------------


def test_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    service = KmsService(KeyStore(tmp_path))
    with pytest.raises(ValueError, match="allow_remote"):
        EmulatorServer(service, host="0.0.0.0", credentials={"id": "secret"})  # noqa: S104
    with pytest.warns(UserWarning, match="plain HTTP"):
        server = EmulatorServer(
            service,
            host="0.0.0.0",  # noqa: S104 (the point of the test)
            credentials={"id": "secret"},
            allow_remote=True,
        )
    server.stop()


def test_stop_closes_idle_keep_alive_connections(emulator: RunningEmulator) -> None:
    conn = http.client.HTTPConnection(emulator.server.host, emulator.server.port, timeout=10)
    assert (
        _send(
            emulator,
            "POST",
            _signed_path(emulator, "POST", {"Action": "ListKeys"}),
            connection=conn,
        )[0]
        == 200
    )
    emulator.server.stop()
    assert conn.sock is not None
    assert conn.sock.recv(1) == b""  # closed by the server
    conn.close()


def test_credentials_from_environment_or_generated() -> None:
    configured = resolve_credentials(
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret"}
    )
    assert (configured.access_key_id, configured.access_key_secret, configured.generated) == (
        "id",
        "s3cret",
        False,
    )
    generated = resolve_credentials({})
    assert generated.generated
    assert len(generated.access_key_secret) >= 32
    assert generated.access_key_secret not in repr(generated)


# --- the CLI: kmsnb emulator serve ---------------------------------------------------------------


def _serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmsnb",
            "emulator",
            "serve",
            "--port",
            "0",
            "--data",
            str(tmp_path / "cli"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        lines.append(line.rstrip("\n"))
    return process, lines


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_serve_prints_how_to_connect_and_stops_cleanly(
    tmp_path: Path, no_proxy: None, stop_signal: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    process, lines = _serve(tmp_path, env)
    try:
        endpoint = lines[0].rsplit(" ", 1)[-1]
        assert endpoint.startswith("http://127.0.0.1:")
        output = "\n".join(lines)
        assert f"KMSNB_KMS={endpoint}" in output
        assert str(tmp_path / "cli") in output
        access_key_id = output.split("ALIBABA_CLOUD_ACCESS_KEY_ID=")[1].split()[0]
        secret = output.split("ALIBABA_CLOUD_ACCESS_KEY_SECRET=")[1].split()[0]

        from alibabacloud_kms20160120 import models
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.models import Config

        host_port = endpoint.removeprefix("http://")
        client = Client(
            Config(
                access_key_id=access_key_id,
                access_key_secret=secret,
                endpoint=host_port,
                protocol="http",
            )
        )
        assert client.create_key(models.CreateKeyRequest()).body.key_metadata.key_state == "Enabled"
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_cli_serve_does_not_print_a_secret_from_the_environment(
    tmp_path: Path, no_proxy: None
) -> None:
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenvironment",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-value",
    }
    process, lines = _serve(tmp_path, env)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    output = "\n".join(lines) + out
    assert "LTAIenvironment" in output
    assert "env-secret-value" not in output


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["emulator"]) == 2
    assert main(["emulator", "serve", "--port", "x"]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["--help"]) == 0
    assert "emulator" in capsys.readouterr().out


def test_cli_failure_prints_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["emulator", "serve", "--host", "0.0.0.0", "--data", str(tmp_path)]  # noqa: S104
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("kmsnb: error: refusing to serve")


def test_cli_start_up_imports_no_heavy_module() -> None:
    code = (
        "import sys, kmsnb.cli; kmsnb.cli.build_parser();"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'IPython', 'alibabacloud_kms20160120', 'aliyunsdkcore', 'Tea', 'darabonba')];"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
