"""Plain HTTP off the loopback interface is refused, and URIs never leak credentials
(issue 9, items 3 and 5)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from kmsnb.cli import _run, build_parser, main
from kmsnb.connection import connect
from kmsnb.kms.aliyun import AliyunKms

pytestmark = pytest.mark.unit

REMOTE = "http://10.20.30.40:8080"  # never contacted: socket connections fail the test


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Credentials from the environment, and any attempt to open a socket recorded and
    refused: constructing a client must send nothing."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAItransport")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "transport-secret")
    monkeypatch.delenv("KMSNB_ALLOW_INSECURE_HTTP", raising=False)
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("the test forbids network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == []


@pytest.mark.parametrize(
    "uri", [REMOTE, "http://kms.example.com", "http://[2001:db8::1]:80", "http://127.0.0.1.nip.io"]
)
def test_plain_http_to_another_machine_is_refused_at_construction(uri: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http") as caught:
        connect(uri)
    assert "KMSNB_ALLOW_INSECURE_HTTP" in str(caught.value)
    with pytest.raises(ValueError, match="plain http"):
        AliyunKms(endpoint=uri)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8080",
        "http://127.200.3.4:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
        "https://10.20.30.40:8443",
    ],
)
def test_loopback_and_https_need_no_opt_in(uri: str) -> None:
    assert isinstance(connect(uri), AliyunKms)


def test_the_three_opt_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert connect(REMOTE, allow_insecure_http=True).location == f"KMS at {REMOTE}"
    assert isinstance(AliyunKms(endpoint=REMOTE, allow_insecure_http=True), AliyunKms)
    monkeypatch.setenv("KMSNB_ALLOW_INSECURE_HTTP", "1")
    assert isinstance(connect(REMOTE), AliyunKms)
    monkeypatch.setenv("KMSNB_ALLOW_INSECURE_HTTP", "yes")  # only "1" opts in
    with pytest.raises(ValueError, match="plain http"):
        connect(REMOTE)


def test_the_cli_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kms", REMOTE, "key", "list"]) == 1
    assert "--allow-insecure-http" in capsys.readouterr().err
    args = build_parser().parse_args(["--allow-insecure-http", "--kms", REMOTE, "key", "list"])
    with _run.connect(args) as kms:  # no request: only constructing the client
        assert isinstance(kms, AliyunKms)


@pytest.mark.parametrize(
    "uri",
    [
        "http://LTAIabc:SeCrEtValue123@127.0.0.1:8080",
        "https://LTAIabc:SeCrEtValue123@kms.cn-hangzhou.aliyuncs.com",
        "LTAIabc:SeCrEtValue123@127.0.0.1:8080",
        "ftp://LTAIabc:SeCrEtValue123@host/x",
        "http://SeCrEtValue123@127.0.0.1:8080",
    ],
)
def test_a_uri_with_credentials_is_refused_without_quoting_them(uri: str) -> None:
    with pytest.raises(ValueError, match="KMS") as caught:
        connect(uri)
    assert "SeCrEtValue123" not in str(caught.value)
    assert "LTAIabc" not in str(caught.value)


def test_an_endpoint_with_credentials_is_refused_without_quoting_them() -> None:
    with pytest.raises(ValueError, match="user info") as caught:
        AliyunKms(endpoint="http://LTAIabc:SeCrEtValue123@127.0.0.1:8080")
    assert "SeCrEtValue123" not in str(caught.value)
