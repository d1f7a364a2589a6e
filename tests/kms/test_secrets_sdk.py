"""Secrets Manager over HTTP, driven by the official SDKs; and the clock moved over HTTP.

Every secrets operation goes through the new SDK's three signing modes and the old
``aliyunsdkkms`` SDK; the kmsnb backends (``AliyunKms`` through the SDK, ``LocalKms`` in
process) share one code path for secrets and must agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.cli import main
from kmsnb.emulator.admin import ADVANCE_CLOCK, EmulatorAdmin
from kmsnb.emulator.clock import MovableClock
from kmsnb.emulator.server import EmulatorServer
from kmsnb.emulator.service import KmsService, ServiceError
from kmsnb.emulator.store import KeyStore
from kmsnb.errors import KmsAccessDeniedError, KmsError
from kmsnb.kms.local import LocalKms

if TYPE_CHECKING:
    from conftest import RunningEmulator

pytestmark = pytest.mark.integration

ACCESS_KEY_ID = "LTAI5tFakeAccessKeyId01"
ACCESS_KEY_SECRET = "FakeAccessKeySecret0123456789abc"
VALUE = "db-password-7f3a"


@pytest.fixture
def sdk(sdk_kind: str, emulator: RunningEmulator) -> Any:
    return emulator.sdk(sdk_kind)


def expect_error(code: str, http_status: int, call: Any) -> None:
    with pytest.raises(KmsError) as caught:
        call()
    assert (caught.value.code, caught.value.http_status) == (code, http_status)


def batch_get(sdk: Any, items: list[dict[str, str]]) -> Any:
    """BatchGetSecretValue: a list of models (new SDK), or a CommonRequest (the old SDK has
    no request class for it)."""
    if sdk.name != "old-sdk":
        from alibabacloud_kms20160120 import models

        secrets_list = [
            models.BatchGetSecretValueRequestSecretsList(
                secret_name=item["SecretName"], version_stage=item.get("VersionStage")
            )
            for item in items
        ]
        return sdk.call("BatchGetSecretValue", SecretsList=secrets_list)
    from aliyunsdkcore.request import CommonRequest

    request = CommonRequest(
        domain=sdk._endpoint, version="2016-01-20", action_name="BatchGetSecretValue"
    )
    request.set_accept_format("JSON")
    request.add_query_param("SecretsList", json.dumps(items))
    return json.loads(sdk.client.do_action_with_exception(request))


def test_every_secrets_operation(sdk: Any) -> None:
    """The twelve operations, in a secret's life, through each SDK and signing mode."""
    created = sdk.call(
        "CreateSecret",
        SecretName="app/db",
        SecretData=VALUE,
        VersionId="v1",
        Description="the app's database",
        Tags=json.dumps([{"TagKey": "team", "TagValue": "data"}]),
    )
    assert created["SecretName"] == "app/db"
    assert created["Arn"].endswith(":secret/app/db")
    assert sdk.call("GetSecretValue", SecretName="app/db")["SecretData"] == VALUE
    put = sdk.call("PutSecretValue", SecretName="app/db", SecretData="second", VersionId="v2")
    assert put["VersionStages"] == {"VersionStage": ["ACSCurrent"]}
    previous = sdk.call("GetSecretValue", SecretName="app/db", VersionStage="ACSPrevious")
    assert (previous["SecretData"], previous["VersionId"]) == (VALUE, "v1")
    by_id = sdk.call("GetSecretValue", SecretName="app/db", VersionId="v2")
    assert by_id["SecretData"] == "second"
    sdk.call("UpdateSecret", SecretName="app/db", Description="renamed")
    described = sdk.call("DescribeSecret", SecretName="app/db", FetchTags="true")
    assert described["Description"] == "renamed"
    assert described["Tags"] == {"Tag": [{"TagKey": "team", "TagValue": "data"}]}
    versions = sdk.call("ListSecretVersionIds", SecretName="app/db")
    assert {v["VersionId"] for v in versions["VersionIds"]["VersionId"]} == {"v1", "v2"}
    sdk.call(
        "UpdateSecretVersionStage",
        SecretName="app/db",
        VersionStage="ACSCurrent",
        MoveToVersion="v1",
    )
    assert sdk.call("GetSecretValue", SecretName="app/db")["SecretData"] == VALUE
    listed = sdk.call(
        "ListSecrets", Filters=json.dumps([{"Key": "TagKey", "Values": ["team"]}]), PageSize=10
    )
    assert [s["SecretName"] for s in listed["SecretList"]["Secret"]] == ["app/db"]
    batch = batch_get(sdk, [{"SecretName": "app/db"}, {"SecretName": "missing"}])
    assert [v["SecretData"] for v in batch["SecretValues"]] == [VALUE]
    assert [e["Code"] for e in batch["Errors"]] == ["Forbidden.ResourceNotFound"]
    password = sdk.call("GetRandomPassword", PasswordLength="16", ExcludePunctuation="true")
    assert len(password["RandomPassword"]) == 16
    deleted = sdk.call("DeleteSecret", SecretName="app/db", RecoveryWindowInDays="7")
    assert deleted["PlannedDeleteTime"]
    # The documented 4xx for a secret in its recovery window.
    expect_error(
        "Rejected.ResourceInDeleteWindow",
        409,
        lambda: sdk.call("GetSecretValue", SecretName="app/db"),
    )
    sdk.call("RestoreSecret", SecretName="app/db")
    assert sdk.call("GetSecretValue", SecretName="app/db")["SecretData"] == VALUE
    sdk.call("DeleteSecret", SecretName="app/db", ForceDeleteWithoutRecovery="true")
    expect_error(
        "Forbidden.ResourceNotFound", 404, lambda: sdk.call("DescribeSecret", SecretName="app/db")
    )


def test_errors_reach_the_sdks_with_their_codes(sdk: Any) -> None:
    sdk.call("CreateSecret", SecretName="dup", SecretData="x", VersionId="v1")
    expect_error(
        "Rejected.ResourceExist",
        409,
        lambda: sdk.call("CreateSecret", SecretName="dup", SecretData="x", VersionId="v1"),
    )
    expect_error(
        "Forbidden.ResourceNotFound", 404, lambda: sdk.call("GetSecretValue", SecretName="nope")
    )


@pytest.fixture
def backends(emulator: RunningEmulator) -> list[Any]:
    """The Alibaba backend against the server, and LocalKms on the same keystore."""
    return [emulator.aliyun_kms(), LocalKms(service=emulator.service)]


def test_backends_share_one_code_path_for_secrets(backends: list[Any]) -> None:
    aliyun, local = backends
    aliyun.create_secret("shared", "from aliyun", version_id="v1")
    assert local.get_secret_value("shared").reveal() == "from aliyun"
    local.put_secret_value("shared", b"\x00binary\xff", version_id="v2")
    for client in (aliyun, local):
        secret = client.get_secret_value("shared")
        assert (secret.data_type, secret.reveal_bytes()) == ("binary", b"\x00binary\xff")
        assert repr(secret) == "Secret('shared', ••••)"
        assert client.get_secret_value("shared", version_stage="ACSPrevious").reveal() == (
            "from aliyun"
        )
        assert [info.name for info in client.list_secrets()] == ["shared"]
        assert client.describe_secret("shared").encryption_key_id
    assert aliyun.delete_secret("shared", recovery_window_in_days=7)
    with pytest.raises(KmsError) as caught:
        local.get_secret_value("shared")
    assert caught.value.code == "Rejected.ResourceInDeleteWindow"
    local.restore_secret("shared")
    assert aliyun.delete_secret("shared", force=True) is None
    assert local.list_secrets() == []


# --- the clock, over HTTP ------------------------------------------------------------------------


@pytest.fixture
def movable(tmp_path: Path, no_proxy: None) -> Iterator[tuple[EmulatorServer, MovableClock]]:
    clock = MovableClock()
    store = KeyStore(tmp_path / "movable")
    server = EmulatorServer(
        KmsService(store, clock=clock),
        credentials={ACCESS_KEY_ID: ACCESS_KEY_SECRET},
        admin=EmulatorAdmin(clock),
    ).start()
    yield server, clock
    server.stop()
    store.close()


def _client(endpoint: str, secret: str = ACCESS_KEY_SECRET) -> Any:
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(
        Config(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=secret,
            endpoint=endpoint.removeprefix("http://"),
            protocol="http",
        )
    )


def test_a_key_with_7_day_rotation_rotates_over_http_after_advance_8d(
    movable: tuple[EmulatorServer, MovableClock],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from alibabacloud_kms20160120 import models

    server, clock = movable
    client = _client(server.endpoint)
    created = client.create_key(
        models.CreateKeyRequest(enable_automatic_rotation=True, rotation_interval="7d")
    ).body.key_metadata
    client.create_secret(
        models.CreateSecretRequest(secret_name="s", secret_data="v", version_id="v1")
    )
    client.delete_secret(models.DeleteSecretRequest(secret_name="s", recovery_window_in_days="7"))
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    monkeypatch.setenv("KMSNB_KMS", server.endpoint)  # found like every command: KMSNB_KMS

    assert main(["emulator", "advance", "8d"]) == 0
    assert "691200 s ahead of the system clock" in capsys.readouterr().out
    assert clock.offset == 8 * 86400

    after = client.describe_key(models.DescribeKeyRequest(key_id=created.key_id)).body
    assert after.key_metadata.primary_key_version != created.primary_key_version
    versions = client.list_key_versions(models.ListKeyVersionsRequest(key_id=created.key_id))
    assert versions.body.total_count == 2
    from Tea.exceptions import TeaException

    with pytest.raises(TeaException) as caught:  # the recovery window ended: purged
        client.get_secret_value(models.GetSecretValueRequest(secret_name="s"))
    assert caught.value.code == "Forbidden.ResourceNotFound"


def test_advance_is_authenticated_and_refused_from_elsewhere(
    movable: tuple[EmulatorServer, MovableClock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, clock = movable
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    assert main(["--kms", server.endpoint, "emulator", "advance", "8d"]) == 1
    assert clock.offset == 0
    # From a non-loopback peer the admin action is refused even when signed.
    admin = EmulatorAdmin(clock)
    with pytest.raises(ServiceError, match="only from the machine") as caught:
        admin.call(ADVANCE_CLOCK, {"Seconds": "60"}, peer="192.0.2.7")
    assert (caught.value.code, caught.value.http_status) == ("Forbidden.NoPermission", 403)
    assert admin.call(ADVANCE_CLOCK, {"Seconds": "60"}, peer="::ffff:127.0.0.1")["Clock"] == (
        "movable"
    )
    # A local keystore has no clock to move.
    assert main(["--kms", f"local:{tmp_path / 'k'}", "emulator", "advance", "1d"]) == 1


def test_advance_is_refused_when_the_clock_is_the_system_clock(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emulator.access_key_secret)
    # This server has no admin at all: the action is unknown to it.
    assert main(["--kms", emulator.endpoint, "emulator", "advance", "8d"]) == 1
    assert "Specified api is not found" in capsys.readouterr().err
    admin = EmulatorAdmin(None)
    with pytest.raises(ServiceError) as caught:
        admin.call(ADVANCE_CLOCK, {"Seconds": "60"}, peer="127.0.0.1")
    assert caught.value.code == "UnsupportedOperation"


def test_serve_with_a_movable_clock_end_to_end(tmp_path: Path, no_proxy: None) -> None:
    """``kmsnb emulator serve --clock movable`` in a process; ``advance`` from another."""
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    }
    command = [sys.executable, "-m", "kmsnb", "emulator", "serve", "--clock", "movable"]
    process = subprocess.Popen(
        [*command, "--data", str(tmp_path / "served")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            lines.append(line.rstrip("\n"))
        endpoint = lines[0].rsplit(" ", 1)[-1]
        assert f"The clock is movable: kmsnb --kms {endpoint} emulator advance 8d" in lines
        from alibabacloud_kms20160120 import models

        client = _client(endpoint)
        key = client.create_key(
            models.CreateKeyRequest(enable_automatic_rotation=True, rotation_interval="7d")
        ).body.key_metadata
        advanced = subprocess.run(
            [sys.executable, "-m", "kmsnb", "--kms", endpoint, "emulator", "advance", "8d"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert advanced.returncode == 0, advanced.stderr
        rotated = client.describe_key(models.DescribeKeyRequest(key_id=key.key_id)).body
        assert rotated.key_metadata.primary_key_version != key.primary_key_version
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_admin_errors_are_kmsnb_errors(
    movable: tuple[EmulatorServer, MovableClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmsnb.kms._emulator_admin import call_emulator_admin

    server, _ = movable
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    from kmsnb.kms.aliyun import AliyunKms

    kms = AliyunKms(endpoint=server.endpoint)
    with pytest.raises(KmsError) as caught:
        call_emulator_admin(kms, ADVANCE_CLOCK, {"Seconds": "-5"})
    assert (caught.value.code, caught.value.http_status) == ("InvalidParameter", 400)
    body = call_emulator_admin(kms, "KmsnbDescribeClock", {})
    assert body["Clock"] == "movable"
    with pytest.raises(KmsAccessDeniedError):
        call_emulator_admin(
            AliyunKms(endpoint=server.endpoint, credential=_bad_credential()), ADVANCE_CLOCK, {}
        )


def _bad_credential() -> Any:
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    return Client(
        Config(type="access_key", access_key_id=ACCESS_KEY_ID, access_key_secret="wrong-secret")
    )
