"""Replaying captured SDK requests against the emulator's HTTP server.

A Decrypt made by the official SDK is captured on the wire, as anyone reading an SDK debug
log or a proxy's would see it, and sent again with its nonce padded or re-encoded in every
way that could keep the signature valid. None may return the data key.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.emulator.server import EmulatorServer
from kmsnb.errors import KmsError

if TYPE_CHECKING:
    from conftest import RunningEmulator

pytestmark = pytest.mark.integration

CONTEXT = {"purpose": "replay"}


class CapturingProxy:
    """Forwards HTTP/1.1 requests to ``target`` and keeps the raw bytes of each."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target, timeout=10) as upstream:
            reader = client.makefile("rb")
            while True:
                raw = read_request(reader)
                if raw is None:
                    return
                self.requests.append(raw)
                upstream.sendall(raw)
                response = http.client.HTTPResponse(upstream)
                response.begin()
                body = response.read()
                head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
                for name, value in response.getheaders():
                    head += f"{name}: {value}\r\n"
                client.sendall(head.encode("latin-1") + b"\r\n" + body)

    def close(self) -> None:
        self._listener.close()


def read_request(reader: Any) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return head + (reader.read(int(match.group(1))) if match else b"")


@pytest.fixture
def capture(emulator: RunningEmulator) -> Iterator[CapturingProxy]:
    proxy = CapturingProxy((emulator.server.host, emulator.server.port))
    yield proxy
    proxy.close()


def send_raw(server: EmulatorServer, raw: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def _replace_header(raw: bytes, name: bytes, new_line: Callable[[bytes], bytes]) -> bytes:
    pattern = re.compile(rb"(?im)^" + name + rb": ([^\r\n]*)\r\n")
    match = pattern.search(raw)
    assert match is not None, name
    return raw[: match.start()] + new_line(match.group(1)) + raw[match.end() :]


HEADER_VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "as captured": lambda n: b"x-acs-signature-nonce: " + n + b"\r\n",
    "trailing space": lambda n: b"x-acs-signature-nonce: " + n + b" \r\n",
    "trailing tab": lambda n: b"x-acs-signature-nonce: " + n + b"\t\r\n",
    "two spaces": lambda n: b"x-acs-signature-nonce: " + n + b"  \r\n",
    "leading spaces": lambda n: b"x-acs-signature-nonce:   " + n + b"\r\n",
    "no space": lambda n: b"x-acs-signature-nonce:" + n + b"\r\n",
    "upper-case name": lambda n: b"X-ACS-SIGNATURE-NONCE: " + n + b"\r\n",
    "folded line": lambda n: b"x-acs-signature-nonce: " + n + b"\r\n \r\n",
    "space and tab": lambda n: b"x-acs-signature-nonce: " + n + b" \t \r\n",
    "repeated header": lambda n: (b"x-acs-signature-nonce: " + n + b"\r\n") * 2,
    "nonce and padded nonce": lambda n: (
        b"x-acs-signature-nonce: " + n + b"\r\nx-acs-signature-nonce: " + n + b" \r\n"
    ),
}


def _captured_decrypt(emulator: RunningEmulator, capture: CapturingProxy, **config: Any) -> bytes:
    """A Decrypt of a fresh data key, sent by the new SDK through the proxy; its bytes."""
    from alibabacloud_kms20160120 import models
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi.models import Config

    key_id = emulator.service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    blob = emulator.service.call(
        "GenerateDataKey", {"KeyId": key_id, "EncryptionContext": json.dumps(CONTEXT)}
    )["CiphertextBlob"]
    client = Client(
        Config(
            access_key_id=emulator.access_key_id,
            access_key_secret=emulator.access_key_secret,
            endpoint=f"127.0.0.1:{capture.port}",
            protocol="http",
            **config,
        )
    )
    answer = client.decrypt(models.DecryptRequest(ciphertext_blob=blob, encryption_context=CONTEXT))
    assert answer.body.plaintext  # the genuine request worked
    (raw,) = [r for r in capture.requests if b"Decrypt" in r]
    return raw


def test_acs3_decrypt_replays_with_padded_nonces_are_refused(
    emulator: RunningEmulator, capture: CapturingProxy
) -> None:
    raw = _captured_decrypt(emulator, capture)
    refused = {}
    for name, variant in HEADER_VARIANTS.items():
        replay = _replace_header(raw, b"x-acs-signature-nonce", variant)
        status, body = send_raw(emulator.server, replay)
        assert "Plaintext" not in body, name
        refused[name] = (status, body["Code"])
    # Every variant that the signature still covers is recognised as the used nonce.
    assert {code for _, code in refused.values()} <= {
        "SignatureNonceUsed",
        "SignatureDoesNotMatch",
    }
    for name in ("as captured", "trailing space", "trailing tab", "two spaces", "folded line"):
        assert refused[name] == (400, "SignatureNonceUsed"), name
    print(f"\nACS3 Decrypt replays refused: {len(refused)} of {len(HEADER_VARIANTS)}: {refused}")


def test_rpc_decrypt_replays_with_re_encoded_nonces_are_refused(
    emulator: RunningEmulator, capture: CapturingProxy
) -> None:
    """In RPC mode the nonce is a query parameter: every re-encoding is refused."""
    raw = _captured_decrypt(emulator, capture, signature_algorithm="v2")
    match = re.search(rb"SignatureNonce=([^&\s]+)", raw)
    assert match is not None
    nonce = match.group(1)
    variants = [nonce, nonce + b"%20", nonce + b"+", nonce + b"%09", nonce + b"%20%20"]
    variants += [nonce.upper(), nonce + b"&SignatureNonce=" + nonce]
    for variant in variants:
        replay = raw.replace(b"SignatureNonce=" + nonce, b"SignatureNonce=" + variant, 1)
        status, body = send_raw(emulator.server, replay)
        assert "Plaintext" not in body
        assert status == 400
        assert body["Code"] in ("SignatureNonceUsed", "SignatureDoesNotMatch")
    print(f"\nRPC Decrypt replays refused: {len(variants)} of {len(variants)}")


def _signed_target(emulator: RunningEmulator, action: str) -> str:
    """A request target signed by the old SDK's RPC signer, with a fresh nonce."""
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    url, _ = get_signed_url(
        {"Version": "2016-01-20", "Action": action},
        emulator.access_key_id,
        emulator.access_key_secret,
        "JSON",
        "POST",
        {},
    )
    return str(url)


def test_a_full_nonce_cache_throttles_and_forgets_nothing(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    """Past its bound the cache refuses new requests (429); no used nonce becomes new."""
    emulator = start_emulator(max_nonce_count=3)
    targets = [_signed_target(emulator, "ListKeys") for _ in range(4)]
    requests = [f"POST {t} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for t in targets]
    for raw in requests[:3]:
        assert send_raw(emulator.server, raw)[0] == 200
    status, body = send_raw(emulator.server, requests[3])
    assert (status, body["Code"]) == (429, "Rejected.Throttling")
    for raw in requests[:3]:  # each remembered request is still refused as a replay
        assert send_raw(emulator.server, raw)[1]["Code"] == "SignatureNonceUsed"
    # The SDKs see it as throttling (kmsnb retries it: the KMS did nothing).
    with pytest.raises(KmsError, match=r"Rejected\.Throttling"):
        emulator.sdk("acs3").call("ListKeys")


def test_acs3_sm3_decrypt_replays_with_padded_nonces_are_refused(
    emulator: RunningEmulator, capture: CapturingProxy
) -> None:
    """ACS3-HMAC-SM3 goes through the same nonce rule as ACS3-HMAC-SHA256."""
    raw = _captured_decrypt(emulator, capture, signature_algorithm="ACS3-HMAC-SM3")
    assert b"ACS3-HMAC-SM3" in raw
    for name in ("as captured", "trailing space", "trailing tab", "folded line"):
        replay = _replace_header(raw, b"x-acs-signature-nonce", HEADER_VARIANTS[name])
        status, body = send_raw(emulator.server, replay)
        assert "Plaintext" not in body, name
        assert (status, body["Code"]) == (400, "SignatureNonceUsed"), name


def test_a_replayed_admin_call_does_not_move_the_clock_twice(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """The admin clock call is signed like a KMS call and its nonce is used up the same way."""
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    from kmsnb.emulator.admin import ADVANCE_CLOCK, EmulatorAdmin
    from kmsnb.emulator.clock import MovableClock
    from kmsnb.emulator.service import KmsService
    from kmsnb.emulator.store import KeyStore
    from kmsnb.kms._emulator_admin import call_emulator_admin
    from kmsnb.kms.aliyun import AliyunKms

    clock = MovableClock()
    service = KmsService(KeyStore(tmp_path / "movable"), clock=clock)
    emulator = start_emulator(service=service, admin=EmulatorAdmin(clock))
    proxy = CapturingProxy((emulator.server.host, emulator.server.port))
    try:
        credential = Client(
            Config(
                type="access_key",
                access_key_id=emulator.access_key_id,
                access_key_secret=emulator.access_key_secret,
            )
        )
        kms = AliyunKms(endpoint=f"http://127.0.0.1:{proxy.port}", credential=credential)
        answer = call_emulator_admin(kms, ADVANCE_CLOCK, {"Seconds": "3600"})
        assert answer["OffsetSeconds"] == 3600
        (raw,) = [r for r in proxy.requests if ADVANCE_CLOCK.encode() in r]
        for name in ("as captured", "trailing space", "folded line"):
            replay = _replace_header(raw, b"x-acs-signature-nonce", HEADER_VARIANTS[name])
            status, body = send_raw(emulator.server, replay)
            assert (status, body["Code"]) == (400, "SignatureNonceUsed"), name
        assert clock.offset == 3600  # moved once
    finally:
        proxy.close()
