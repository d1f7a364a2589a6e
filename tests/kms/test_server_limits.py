"""The emulator's HTTP server under hostile or clumsy clients: framing, timeouts, many
connections, bursts, large contexts, what its reprs and logs show.

No test asserts a duration: slow clients are counted, timeouts are client-side limits on
how long a test waits, and speed lives in ``bench/bench_server.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb._format.header import MAX_CONTEXT_SIZE
from kmsnb.emulator._params import MAX_ENCRYPTION_CONTEXT_SIZE, context_size
from kmsnb.emulator.faults import FaultConfig
from kmsnb.emulator.server import LISTEN_BACKLOG, EmulatorServer
from kmsnb.emulator.service import KmsService
from kmsnb.emulator.store import KeyStore
from kmsnb.errors import KmsError
from kmsnb.kms.local import LocalKms

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import RunningEmulator

pytestmark = pytest.mark.integration


def _signed_target(emulator: RunningEmulator, action: str, **params: str) -> str:
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    url, _ = get_signed_url(
        {"Version": "2016-01-20", "Action": action, **params},
        emulator.access_key_id,
        emulator.access_key_secret,
        "JSON",
        "POST",
        {},
    )
    return str(url)


def _exchange(server: EmulatorServer, raw: bytes, timeout: float = 10) -> tuple[int, Any]:
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


# --- framing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_length",
    [
        [b"+5"],
        [b"5 "],
        [b"0x5"],
        [b"5.0"],
        [b"-1"],
        [b"1_0"],
        [b""],
        ["\u0665".encode()],  # ARABIC-INDIC DIGIT FIVE: int() would take it
        [b"5, 5"],
        [b"5", b"5"],
        [b"5", b"0"],
    ],
    ids=[
        "plus",
        "trailing-space",
        "hex",
        "decimal-point",
        "negative",
        "underscore",
        "empty",
        "non-ascii-digit",
        "list",
        "twice-same",
        "twice-different",
    ],
)
def test_only_one_plain_decimal_content_length_is_accepted(
    emulator: RunningEmulator, content_length: list[bytes]
) -> None:
    target = _signed_target(emulator, "ListKeys").encode()
    headers = b"".join(b"Content-Length: " + value + b"\r\n" for value in content_length)
    raw = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\nhello"
    status, body = _exchange(emulator.server, raw)
    assert (status, body["Code"]) == (400, "InvalidParameter")


def test_a_plain_content_length_is_accepted(emulator: RunningEmulator) -> None:
    target = _signed_target(emulator, "ListKeys").encode()
    raw = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    assert _exchange(emulator.server, raw)[0] == 200


def test_chunked_bodies_are_refused(emulator: RunningEmulator) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert _exchange(emulator.server, raw)[0] == 411


@pytest.mark.parametrize(
    "header_line",
    [
        b"X-Smuggled\nContent-Length: 5",  # a bare LF: a second line to a lenient parser
        b"X-Smuggled: a\rb",  # a bare CR
        b"X-Smuggled: a\x00b",  # a NUL
        b"No colon here",
        b"Bad Name: value",  # a space is not a token character
        b": no name",
        b" folded before any header",
    ],
    ids=["bare-lf", "bare-cr", "nul", "no-colon", "space-in-name", "empty-name", "leading-fold"],
)
def test_malformed_header_lines_are_refused(emulator: RunningEmulator, header_line: bytes) -> None:
    target = _signed_target(emulator, "ListKeys").encode()
    raw = b"POST " + target + b" HTTP/1.1\r\n" + header_line + b"\r\nHost: x\r\n\r\nhello"
    status, body = _exchange(emulator.server, raw)
    assert (status, body["Code"]) == (400, "BadRequest")


def test_too_many_header_lines_are_refused(emulator: RunningEmulator) -> None:
    target = _signed_target(emulator, "ListKeys").encode()
    headers = b"".join(b"X-Filler-%d: x\r\n" % number for number in range(101))
    raw = b"POST " + target + b" HTTP/1.1\r\n" + headers + b"\r\n"
    status, body = _exchange(emulator.server, raw)
    assert (status, body["Code"]) == (431, "RequestHeaderFieldsTooLarge")


def test_well_formed_header_variants_are_accepted(emulator: RunningEmulator) -> None:
    """Blanks around values, any case, repeats and a folded line are all still HTTP."""
    block = b"Host:  x\r\nX-A: 1 \r\nx-a:2\r\nX-Folded: first\r\n\tsecond"
    target = _signed_target(emulator, "ListKeys").encode()
    raw = b"POST " + target + b" HTTP/1.1\r\n" + block + b"\r\n\r\n"
    assert _exchange(emulator.server, raw)[0] == 200


# --- timeouts and many connections ---------------------------------------------------------------


def test_a_stalled_body_is_answered_408_without_a_traceback(
    start_emulator: Callable[..., RunningEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kmsnb.emulator")
    emulator = start_emulator(request_timeout_s=0.3)
    target = _signed_target(emulator, "ListKeys").encode()
    raw = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part"
    status, body = _exchange(emulator.server, raw)
    assert (status, body["Code"]) == (408, "RequestTimeout")
    assert "Traceback" not in caplog.text
    assert all(record.levelno < logging.ERROR for record in caplog.records)
    assert emulator.sdk("acs3").call("ListKeys")["TotalCount"] == 0  # still serving


def test_a_stalled_request_line_is_answered_408(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    emulator = start_emulator(request_timeout_s=0.3)
    status, body = _exchange(emulator.server, b"POST /?Action=ListKeys")
    assert (status, body["Code"]) == (408, "RequestTimeout")


def test_a_trickling_request_is_cut_off(start_emulator: Callable[..., RunningEmulator]) -> None:
    """A byte now and then does not keep a request alive past its deadline."""
    emulator = start_emulator(request_timeout_s=0.5)
    address = (emulator.server.host, emulator.server.port)
    with socket.create_connection(address, timeout=10) as sock:
        answer = b""
        for _ in range(100):  # 10 s at most: far beyond the deadline
            try:
                sock.send(b"x")
                sock.settimeout(0.1)
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            break
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_idle_connection_is_closed(start_emulator: Callable[..., RunningEmulator]) -> None:
    emulator = start_emulator(idle_timeout_s=0.2)
    with socket.create_connection((emulator.server.host, emulator.server.port), timeout=10) as s:
        assert s.recv(1) == b""  # closed by the server, long before the client's timeout


def test_a_request_answered_slower_than_the_timeouts_is_not_cut_off(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    """The deadlines are for requests arriving and for idle connections, not for the
    answer: one that takes three timeouts to make still comes, on a connection kept."""
    emulator = start_emulator(
        request_timeout_s=0.2, idle_timeout_s=0.2, faults=FaultConfig(latency_s=0.6)
    )
    kms = emulator.aliyun_kms()
    key_id = kms.create_key("slow").key_id
    for _ in range(2):  # the second on the same pooled connection, or a new one: both fine
        with kms.generate_data_key(key_id, {"slow": "yes"}) as data_key:
            assert len(data_key.plaintext) == 32


def _trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """Send a byte of a never-ending request on every socket, now and then."""
    while not stop.wait(0.5):
        for sock in sockets:
            with contextlib.suppress(OSError):  # the server cut it off: allowed
                sock.send(b"x")


@pytest.mark.slow
@pytest.mark.usefixtures("many_files")
def test_300_trickling_connections_hold_few_threads_and_block_no_one(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    emulator = start_emulator()
    address = (emulator.server.host, emulator.server.port)
    stop = threading.Event()
    with ExitStack() as stack:
        slow = []
        for _ in range(300):
            sock = stack.enter_context(socket.create_connection(address, timeout=10))
            sock.sendall(b"POST /?Action=ListKeys&KeyId=")  # ... and never the rest
            slow.append(sock)
        trickler = threading.Thread(target=_trickle, args=(slow, stop))
        trickler.start()
        stack.callback(trickler.join)
        stack.callback(stop.set)
        # A normal client gets its answer; 5 s is how long it waits, not a speed check.
        sdk = emulator.sdk("acs3")
        started = time.monotonic()
        key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
        status, _ = _exchange(
            emulator.server,
            f"POST {_signed_target(emulator, 'DescribeKey', KeyId=key_id)} HTTP/1.1\r\n"
            "Host: x\r\n\r\n".encode(),
            timeout=5,
        )
        assert status == 200
        prefix = f"kmsnb-emulator-{emulator.server.port}"
        server_threads = sum(t.name.startswith(prefix) for t in threading.enumerate())
        print(
            f"\n300 trickling connections: {server_threads} server threads "
            f"({threading.active_count()} in the process), normal requests answered in "
            f"{time.monotonic() - started:.2f} s"
        )
        assert threading.active_count() <= 64
        assert server_threads <= emulator.server.limits.worker_count + 1


# --- the listen backlog --------------------------------------------------------------------------


def burst(server: EmulatorServer, count: int) -> list[tuple[float, float, int]]:
    """``count`` raw connections at once; (connect seconds, total seconds, status) each.

    A connection that the kernel's accept queue had no room for waits for a SYN
    retransmission: a second or more before ``connect`` returns.
    """
    barrier = threading.Barrier(count)
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        started = time.monotonic()
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            connected = time.monotonic()
            sock.sendall(b"POST /?Action=ListKeys HTTP/1.1\r\nHost: x\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
        with lock:
            results.append((connected - started, time.monotonic() - started, response.status))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_the_listen_backlog_absorbs_a_burst(emulator: RunningEmulator) -> None:
    """60 simultaneous connections: a count, with a wide margin, of those that waited for a
    SYN retransmission (the backlog of 5 made 44 of 60 wait a second or more)."""
    assert emulator.server.limits.listen_backlog == LISTEN_BACKLOG >= 128
    results = burst(emulator.server, 60)
    assert [status for _, _, status in results] == [400] * 60  # unsigned, answered
    retransmitted = sum(connect >= 1.0 for connect, _, _ in results)
    assert retransmitted <= 3


# --- encryption context sizes --------------------------------------------------------------------


def _context_of_size(size: int, char: str = "é") -> dict[str, str]:
    """A one-pair context taking exactly ``size`` bytes in kmsnb's header encoding."""
    value_bytes = size - 2 - 4 - 1
    char_size = len(char.encode())
    value = char * (value_bytes // char_size) + "v" * (value_bytes % char_size)
    context = {"k": value}
    assert context_size(context) == size
    return context


def test_one_context_bound_the_file_header_shares() -> None:
    assert MAX_ENCRYPTION_CONTEXT_SIZE == MAX_CONTEXT_SIZE


@pytest.mark.parametrize("kind", ["acs3", "old-sdk"])
def test_the_http_and_in_process_emulators_accept_the_same_contexts(
    emulator: RunningEmulator, tmp_path: Path, kind: str
) -> None:
    """A 40 KB context (and one at the bound) works over HTTP as in process, both ways."""
    sdk = emulator.sdk(kind)
    key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    local = LocalKms(service=emulator.service)
    for context in (_context_of_size(40_000), _context_of_size(MAX_ENCRYPTION_CONTEXT_SIZE)):
        over_http = sdk.call("GenerateDataKey", KeyId=key_id, EncryptionContext=context)
        opened = local.decrypt_data_key(over_http["CiphertextBlob"], context).plaintext
        assert over_http["Plaintext"]
        assert opened
        with local.generate_data_key(key_id, context) as in_process:
            plain = sdk.call(
                "Decrypt", CiphertextBlob=in_process.ciphertext_blob, EncryptionContext=context
            )
            assert plain["Plaintext"]


@pytest.mark.parametrize("kind", ["acs3", "old-sdk"])
def test_both_emulators_refuse_a_context_past_the_bound(
    emulator: RunningEmulator, kind: str
) -> None:
    sdk = emulator.sdk(kind)
    key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    too_big = _context_of_size(MAX_ENCRYPTION_CONTEXT_SIZE + 1)
    with pytest.raises(KmsError) as over_http:
        sdk.call("GenerateDataKey", KeyId=key_id, EncryptionContext=too_big)
    with pytest.raises(KmsError) as in_process:
        LocalKms(service=emulator.service).generate_data_key(key_id, too_big)
    assert over_http.value.code == in_process.value.code == "InvalidParameter"
    assert over_http.value.http_status == in_process.value.http_status == 400


def test_a_deeply_nested_context_is_invalid_parameter_not_500(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kmsnb.emulator")
    sdk = emulator.sdk("old-sdk")  # sends a str context as it is
    key_id = sdk.call("CreateKey")["KeyMetadata"]["KeyId"]
    nested = "[" * 50_000 + "]" * 50_000
    for context in (nested, '{"k":' + nested + "}", '{"k":' + "{" * 5000 + "}" * 5000 + "}"):
        for action, name in (("GenerateDataKey", "EncryptionContext"), ("Encrypt", "Plaintext")):
            params = {"KeyId": key_id, "EncryptionContext": context, "Plaintext": "p"}
            if action == "GenerateDataKey":
                del params["Plaintext"]
            with pytest.raises(KmsError) as caught:
                sdk.call(action, **params)
            assert (caught.value.code, caught.value.http_status) == ("InvalidParameter", 400), name
    assert "Traceback" not in caplog.text
    assert "RecursionError" not in caplog.text


# --- nothing secret in reprs or logs -------------------------------------------------------------


def test_no_repr_or_str_of_the_server_shows_a_secret(
    tmp_path: Path, no_proxy: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kmsnb")
    secret = "Sup3rSecretAccessKeyValue0123456789"
    server = EmulatorServer(KmsService(KeyStore(tmp_path / "s")), credentials={"LTAIid": secret})
    with server:
        shown = [
            repr(server),
            str(server),
            repr(server.credentials),
            str(server.credentials),
            f"{server.credentials}",
            repr(dict(server.credentials).keys()),
            repr(server.limits),
        ]
    assert "LTAIid" in repr(server.credentials)
    assert server.credentials["LTAIid"] == secret  # still there for whoever asks for it
    for text in [*shown, caplog.text]:
        assert secret not in text


@pytest.fixture
def many_files() -> Iterator[None]:
    """The 300-connection test needs about 700 descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_keystore_failure_reaches_http_clients_as_a_500_naming_it(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP answer to a full disk says what the in-process error says."""
    import errno
    import os

    from kmsnb.emulator import _keystore_dir

    def full_write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sdk = emulator.sdk("acs3")
    monkeypatch.setattr(_keystore_dir.os, "write", full_write)
    with pytest.raises(KmsError) as caught:
        sdk.call("CreateKey")
    monkeypatch.undo()
    assert (caught.value.code, caught.value.http_status) == ("InternalFailure", 500)
    message = caught.value.__cause__.data["Message"]  # type: ignore[union-attr]
    assert "disk holding the keystore is full" in message
    assert str(emulator.store_path) in message
    assert sdk.call("CreateKey")["KeyMetadata"]["KeyState"] == "Enabled"  # still serving
