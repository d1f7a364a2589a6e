"""``kmsnb emulator exec -- CMD``: unchanged programs against the emulator.

Every child runs under ``guard.py``, which installs an audit hook that refuses (and
records) any socket connection or name lookup outside loopback before it leaves, so a
redirection that missed a path fails the test instead of sending traffic anywhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kmsnb.cli import main
from kmsnb.connection import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TUTORIAL = Path(__file__).parent / "tutorial"
SALES = "region,revenue\nnorth,120.5\nsouth,98.0\n"

GUARD = r"""
import os, runpy, sys

LOOPBACK = {"127.0.0.1", "localhost", "::1", None}
record = os.environ["KMSNB_TEST_ESCAPES"]

def refuse_outside_loopback(event, args):
    host = None
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode()
    if host not in LOOPBACK:
        with open(record, "a") as escapes:
            escapes.write(f"{event} {host}\n")
        raise OSError(f"test guard: refused {event} to {host}")

sys.addaudithook(refuse_outside_loopback)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""

CLIENTS = r"""
import http.client, json, os

results = {}
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config

# New SDK: the region alone (the default chain finds the emulator's AccessKey) ...
new = Client(Config(region_id="cn-shanghai", credential=CredentialClient()))
results["new-region"] = new.create_key(models.CreateKeyRequest()).body.key_metadata.key_state
# ... an explicit public endpoint, and the VPC network.
explicit = Client(Config(endpoint="kms.cn-beijing.aliyuncs.com", credential=CredentialClient()))
results["new-explicit"] = explicit.list_keys(models.ListKeysRequest()).body.total_count
vpc = Client(Config(region_id="cn-hangzhou", network="vpc", credential=CredentialClient()))
results["new-vpc"] = vpc.list_keys(models.ListKeysRequest()).body.total_count

# Old SDK: a region outside endpoints.json, the placeholder, and a hard-wired HTTPS host.
from aliyunsdkcore.client import AcsClient
from aliyunsdkkms.request.v20160120.ListKeysRequest import ListKeysRequest

ak, sk = os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
for region in ("cn-wulanchabu", "Region-Id"):
    body = json.loads(AcsClient(ak, sk, region).do_action_with_exception(ListKeysRequest()))
    results[f"old-{region}"] = body["TotalCount"]
request = ListKeysRequest()
request.set_endpoint("kms.cn-hangzhou.aliyuncs.com")
body = json.loads(AcsClient(ak, sk, "cn-hangzhou").do_action_with_exception(request))
results["old-set-endpoint"] = body["TotalCount"]

# Clients that build the URL themselves: requests (urllib3) and http.client, over HTTPS.
import requests

reply = requests.post("https://kms-vpc.cn-hangzhou.aliyuncs.com/?Action=ListKeys", timeout=10)
results["requests"] = [reply.status_code, reply.json()["Code"]]
connection = http.client.HTTPSConnection("kms.ap-southeast-1.aliyuncs.com", timeout=10)
connection.request("POST", "/?Action=ListKeys")
reply = connection.getresponse()
results["http.client"] = [reply.status, json.loads(reply.read())["Code"]]

# kmsnb itself, through KMSNB_KMS.
import kmsnb
results["kmsnb"] = len(kmsnb.connect().list_keys())

results["environment"] = {
    name: os.environ.get(name)
    for name in ("HTTPS_PROXY", "http_proxy", "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
                 "ALIBABA_CLOUD_SECURITY_TOKEN")
}
print(json.dumps(results))
"""

SECRETS_MANAGER_CLIENT = r"""
from alibabacloud_secretsmanager_client_v2.secret_manager_cache_client_builder import (
    SecretManagerCacheClientBuilder,
)

client = SecretManagerCacheClientBuilder.new_client()
print("secret:", client.get_secret_value("db/password"))
client.close()
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("KMSNB_KMS", "KMSNB_EMULATOR_ROOT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default-store"))
    (tmp_path / "guard.py").write_text(GUARD)
    (tmp_path / "data").mkdir()
    return tmp_path


def exec_under_emulator(
    workdir: Path, *command: str, extra_env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """``kmsnb emulator exec --store STORE -- python guard.py COMMAND...`` in ``workdir``."""
    env = {
        **os.environ,
        "KMSNB_TEST_ESCAPES": str(workdir / "escapes.txt"),
        # Set, to show that the child gets rid of them.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "not-for-the-emulator",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "kmsnb", "emulator", "exec", "--store", str(workdir / "store")]
    return subprocess.run(
        [*argv, "--", sys.executable, str(workdir / "guard.py"), *command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **options,
    )


def no_escapes(workdir: Path) -> None:
    escapes = workdir / "escapes.txt"
    assert not escapes.exists(), escapes.read_text()


def test_the_tutorial_scripts_run_unchanged(workdir: Path) -> None:
    """Alibaba's envelope-encryption tutorial: AcsClient(..., 'Region-Id'), HTTPS, do_action."""
    kms = connect(f"local:{workdir / 'store'}")
    key = kms.create_key("tutorial")
    kms.create_alias("alias/Apollo/WorkKey", key.key_id)
    kms.close()  # type: ignore[attr-defined]
    (workdir / "data" / "sales.csv").write_text(SALES)

    encrypted = exec_under_emulator(workdir, str(TUTORIAL / "encrypt_script.py"))
    assert encrypted.returncode == 0, encrypted.stderr
    lines = (workdir / "data" / "sales.csv.cipher").read_text().splitlines()
    assert len(lines) == 4
    assert SALES.encode() not in (workdir / "data" / "sales.csv.cipher").read_bytes()

    decrypted = exec_under_emulator(workdir, str(TUTORIAL / "decrypt_script.py"))
    assert decrypted.returncode == 0, decrypted.stderr
    assert (workdir / "data" / "decrypted_sales.csv").read_text() == SALES
    no_escapes(workdir)
    # kmsnb reads what the tutorial wrote, with the same keystore.
    store = f"local:{workdir / 'store'}"
    out = workdir / "by-kmsnb.csv"
    assert (
        main(["--kms", store, "decrypt", str(workdir / "data/sales.csv.cipher"), "-o", str(out)])
        == 0
    )
    assert out.read_text() == SALES


def test_every_python_client_is_redirected(workdir: Path) -> None:
    (workdir / "clients.py").write_text(CLIENTS)
    result = exec_under_emulator(workdir, "clients.py")
    assert result.returncode == 0, result.stderr
    no_escapes(workdir)
    results = json.loads(result.stdout.splitlines()[-1])
    assert results["new-region"] == "Enabled"
    keys = 1  # the key the new SDK created; every client sees the same emulator
    for name in ("new-explicit", "new-vpc", "old-cn-wulanchabu", "old-Region-Id"):
        assert results[name] == keys, name
    assert results["old-set-endpoint"] == keys
    assert results["kmsnb"] == keys
    # Unsigned requests that named a KMS host reached the emulator, which refused them.
    assert results["requests"] == [400, "IncompleteSignature"]
    assert results["http.client"] == [400, "IncompleteSignature"]
    assert results["environment"] == {
        "HTTPS_PROXY": None,
        "http_proxy": None,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_SECURITY_TOKEN": None,
    }


def test_the_secrets_manager_client_reads_a_secret_made_with_kmsnb_secret_create(
    workdir: Path,
) -> None:
    store = f"local:{workdir / 'store'}"
    created = subprocess.run(
        [sys.executable, "-m", "kmsnb", "--kms", store, "secret", "create", "db/password"],
        input="hunter2-from-stdin\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    assert "hunter2" not in created.stdout + created.stderr
    (workdir / "sm.py").write_text(SECRETS_MANAGER_CLIENT)
    result = exec_under_emulator(workdir, "sm.py")
    assert result.returncode == 0, result.stderr
    assert "secret: hunter2-from-stdin\n" in result.stdout
    no_escapes(workdir)


def test_exit_status_missing_command_and_the_next_sitecustomize(workdir: Path) -> None:
    (workdir / "seven.py").write_text("raise SystemExit(7)\n")
    (workdir / "nothing.py").write_text("")
    assert exec_under_emulator(workdir, "seven.py").returncode == 7
    # The shim hands over to a sitecustomize further down the path, which it shadows.
    other = workdir / "other-site"
    other.mkdir()
    (other / "sitecustomize.py").write_text(  # in the child, not in kmsnb itself
        "import os\nif 'KMSNB_EXEC_EMULATOR' in os.environ: print('next sitecustomize ran')\n"
    )
    chained = exec_under_emulator(workdir, "nothing.py", extra_env={"PYTHONPATH": str(other)})
    assert chained.stdout == "next sitecustomize ran\n"
    missing = subprocess.run(
        [sys.executable, "-m", "kmsnb", "emulator", "exec", "--store", str(workdir / "s"), "--",
         "no-such-command-kmsnb"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 127
    assert "no-such-command-kmsnb: command not found" in missing.stderr
    assert main(["emulator", "exec", "--store", str(workdir / "s")]) == 1


def test_signals_reach_the_child_and_the_emulator_stops(workdir: Path) -> None:
    script = (
        "import os, sys, time\n"
        "print(os.getpid(), os.environ['KMSNB_EXEC_EMULATOR'], flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsnb", "emulator", "exec", "--store", str(workdir / "s"), "--",
         sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        child_pid, endpoint = process.stdout.readline().split()
        assert endpoint.startswith("http://127.0.0.1:")
        port = int(endpoint.rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # it serves
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The child died of the SIGTERM passed on, and exec answered as a shell does; the
    # emulator was a thread of the process that has now exited.
    assert process.returncode == 128 + signal.SIGTERM, err
    with pytest.raises(ProcessLookupError):
        os.kill(int(child_pid), 0)


def test_an_existing_emulator_with_endpoint(workdir: Path) -> None:
    from kmsnb.emulator import KeyStore, KmsService
    from kmsnb.emulator.server import EmulatorServer

    store = KeyStore(workdir / "served")
    service = KmsService(store)
    service.call("CreateKey", {})
    with EmulatorServer(service, credentials={"LTAIserved": "served-secret"}) as server:
        _count_keys_through(workdir, server.endpoint)
    store.close()
    refused = ["emulator", "exec", "--endpoint", "https://kms.cn-hangzhou.aliyuncs.com", "--", "x"]
    assert main(refused) == 1


def _count_keys_through(workdir: Path, endpoint: str) -> None:
    (workdir / "count.py").write_text("import kmsnb; print(len(kmsnb.connect().list_keys()))\n")
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIserved",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "served-secret",
        "KMSNB_TEST_ESCAPES": str(workdir / "escapes.txt"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "kmsnb", "emulator", "exec", "--endpoint", endpoint, "--",
         sys.executable, str(workdir / "guard.py"), "count.py"],
        cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    no_escapes(workdir)
