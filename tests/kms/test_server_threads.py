"""Which thread of the emulator's HTTP server answers what (``kmsnb.emulator._waiting``).

The data plane (GenerateDataKey, Decrypt...) is answered on the event loop, unless the
call would wait: for a lock a write holds, to read a keystore another process changed,
or to write. Then it runs on a worker, verified once (its nonce spent once), and the loop
goes on answering other connections meanwhile. Everything else runs on a worker.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.emulator.clock import MovableClock
from kmsnb.emulator.service import KmsService
from kmsnb.emulator.store import KeyStore

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import RunningEmulator

pytestmark = pytest.mark.integration

CONTEXT = {"purpose": "threads"}


class _AnyWorker:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and "-worker" in other

    def __repr__(self) -> str:
        return "<a worker thread>"


ANY_WORKER = _AnyWorker()


def _record_threads(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    on_a_worker: Mapping[str, threading.Event] | None = None,
) -> list[tuple[str, str]]:
    """(action, the name of the thread that ran it) for each call the service answers;
    ``on_a_worker[action]`` is set when a call of ``action`` starts on a worker thread."""
    calls: list[tuple[str, str]] = []
    answer = emulator.service.call

    def recording(action: str, params: Mapping[str, str]) -> dict[str, Any]:
        thread = threading.current_thread().name
        calls.append((action, thread))
        if on_a_worker is not None and action in on_a_worker and "-worker" in thread:
            on_a_worker[action].set()
        return answer(action, params)

    monkeypatch.setattr(emulator.service, "call", recording)
    return calls


def _loop_thread(emulator: RunningEmulator) -> str:
    return f"kmsnb-emulator-{emulator.server.port}"


def _round_trip(emulator: RunningEmulator, key_id: str) -> str:
    """A GenerateDataKey and its Decrypt; the key version they name."""
    kms = emulator.aliyun_kms()
    with (
        kms.generate_data_key(key_id, CONTEXT) as data_key,
        kms.decrypt_data_key(data_key.ciphertext_blob, CONTEXT) as unwrapped,
    ):
        assert unwrapped.plaintext == data_key.plaintext
        assert unwrapped.key_version_id == data_key.key_version_id
        return str(data_key.key_version_id)


def _ran_on(calls: list[tuple[str, str]], action: str) -> list[str]:
    return [thread for name, thread in calls if name == action]


def test_the_data_plane_is_answered_on_the_loop_and_changes_on_workers(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _record_threads(emulator, monkeypatch)
    key_id = emulator.aliyun_kms().create_key("threads").key_id
    _round_trip(emulator, key_id)
    _round_trip(emulator, key_id)
    loop = _loop_thread(emulator)
    assert _ran_on(calls, "GenerateDataKey")[-1] == loop
    assert _ran_on(calls, "Decrypt")[-1] == loop
    (create_thread,) = _ran_on(calls, "CreateKey")
    assert create_thread.startswith(f"{loop}-worker")


def test_a_key_another_keystore_made_is_found_at_once(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's snapshot is current; another process (here: another KeyStore of the
    # same folder) then adds a key. Reading that change is disk work: a worker's.
    first = emulator.aliyun_kms().create_key("first").key_id
    _round_trip(emulator, first)
    calls = _record_threads(emulator, monkeypatch)
    other = KeyStore(emulator.store_path)
    try:
        second = KmsService(other).call("CreateKey", {})["KeyMetadata"]["KeyId"]
    finally:
        other.close()
    _round_trip(emulator, second)
    generate_threads = _ran_on(calls, "GenerateDataKey")
    # Tried on the loop, which found the keystore changed; then run once on a worker.
    assert generate_threads[0] == _loop_thread(emulator)
    assert generate_threads[-1].startswith(f"{_loop_thread(emulator)}-worker")
    assert len(generate_threads) == 2


@contextlib.contextmanager
def _stalled_writes(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Every keystore write waits for ``release`` (a slow disk); ``writing`` is set once
    one has started."""
    store = emulator.service.store
    write = store._write
    writing, release = threading.Event(), threading.Event()

    def slow_write(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        release.wait(30)
        return write(*args, **kwargs)

    monkeypatch.setattr(store, "_write", slow_write)
    try:
        yield writing, release
    finally:
        release.set()


def _answer_of_bad_path(emulator: RunningEmulator) -> int:
    """The status of a request the loop answers without the keystore (unknown path)."""
    with socket.create_connection((emulator.server.host, emulator.server.port), timeout=10) as sock:
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert json.loads(response.read())["Code"] == "InvalidAction.NotFound"
        return response.status


def test_a_call_that_would_wait_for_a_write_goes_to_a_worker_and_the_loop_serves_on(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = emulator.aliyun_kms().create_key("before").key_id
    _round_trip(emulator, key_id)
    with _stalled_writes(emulator, monkeypatch) as (writing, release):
        _while_a_write_stalls(emulator, key_id, writing, release, monkeypatch)


def _while_a_write_stalls(
    emulator: RunningEmulator,
    key_id: str,
    writing: threading.Event,
    release: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generating_on_a_worker = threading.Event()
    calls = _record_threads(emulator, monkeypatch, {"GenerateDataKey": generating_on_a_worker})
    errors: list[BaseException] = []

    def in_background(work: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    creating = in_background(lambda: emulator.aliyun_kms().create_key("stalled"))
    assert writing.wait(30), "the CreateKey never reached the keystore"
    # The write holds the keystore's lock: a data key waits for it, on a worker...
    generating = in_background(lambda: _round_trip(emulator, key_id))
    assert generating_on_a_worker.wait(30), "the GenerateDataKey never reached a worker"
    # ...while the loop still answers every connection.
    assert _answer_of_bad_path(emulator) == 404
    assert creating.is_alive()
    release.set()
    creating.join(30)
    generating.join(30)
    assert not errors, errors  # SignatureNonceUsed here would mean it was verified twice
    assert _ran_on(calls, "GenerateDataKey") == [_loop_thread(emulator), ANY_WORKER]
    assert _ran_on(calls, "Decrypt")[-1] == _loop_thread(emulator)  # the write is over


def test_a_rotation_a_data_key_finds_due_is_done_on_a_worker(
    start_emulator: Callable[..., RunningEmulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Housekeeping writes the keystore: the loop hands the call to a worker, which rotates
    # the key and answers under the new version.
    clock = MovableClock()
    emulator = start_emulator(service=KmsService(KeyStore(tmp_path / "rotating"), clock=clock))
    sdk = emulator.sdk("acs3")
    created = sdk.call("CreateKey", EnableAutomaticRotation=True, RotationInterval="7d")
    key_id = created["KeyMetadata"]["KeyId"]
    first = _round_trip(emulator, key_id)
    calls = _record_threads(emulator, monkeypatch)
    clock.advance(8 * 86400)
    second = _round_trip(emulator, key_id)
    assert second != first
    assert _ran_on(calls, "GenerateDataKey") == [_loop_thread(emulator), ANY_WORKER]
    _round_trip(emulator, key_id)  # rotated: the loop again
    assert _ran_on(calls, "GenerateDataKey")[-1] == _loop_thread(emulator)
