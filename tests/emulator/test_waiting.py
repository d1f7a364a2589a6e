"""What may not wait on the server's event loop (``kmsnb.emulator._waiting``), and the
keystore's reads and writes under that rule."""

from __future__ import annotations

import threading
from _thread import RLock
from pathlib import Path

import pytest

from kmsnb.emulator._waiting import WouldBlock, acquire, check_may_wait, not_waiting
from kmsnb.emulator.service import KmsService
from kmsnb.emulator.store import KeyStore


def _held_by_another_thread(lock: RLock) -> tuple[threading.Event, threading.Thread]:
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(30)
    return release, holder


def test_outside_the_block_everything_may_wait() -> None:
    check_may_wait()
    lock = RLock()
    acquire(lock)
    lock.release()


def test_inside_the_block_a_wait_raises_and_the_rule_ends_with_it() -> None:
    with not_waiting(), pytest.raises(WouldBlock):
        check_may_wait()
    check_may_wait()  # reset, even though the block raised


def test_a_lock_another_thread_holds_raises_instead_of_waiting() -> None:
    lock = RLock()
    release, holder = _held_by_another_thread(lock)
    try:
        with not_waiting(), pytest.raises(WouldBlock):
            acquire(lock)
    finally:
        release.set()
        holder.join(30)
    with not_waiting():
        acquire(lock)  # free now: taken without waiting
    lock.release()


def test_the_rule_is_per_thread() -> None:
    seen: list[bool] = []

    def elsewhere() -> None:
        try:
            check_may_wait()
            seen.append(True)
        except WouldBlock:
            seen.append(False)

    with not_waiting():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(30)
    assert seen == [True]


@pytest.fixture
def service(tmp_path: Path) -> KmsService:
    return KmsService(KeyStore(tmp_path / "store"))


def _generate(service: KmsService, key_id: str) -> str:
    body = service.call("GenerateDataKey", {"KeyId": key_id})
    return str(body["CiphertextBlob"])


def test_reads_of_a_current_snapshot_need_no_wait(service: KmsService) -> None:
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    blob = _generate(service, key_id)
    with not_waiting():
        assert service.call("Decrypt", {"CiphertextBlob": blob})["KeyId"] == key_id
        _generate(service, key_id)


def test_writes_and_a_changed_keystore_would_wait(service: KmsService, tmp_path: Path) -> None:
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    with not_waiting(), pytest.raises(WouldBlock):
        service.call("CreateKey", {})
    other = KeyStore(tmp_path / "store")
    try:
        KmsService(other).call("CreateKey", {})
    finally:
        other.close()
    with not_waiting(), pytest.raises(WouldBlock):
        _generate(service, key_id)  # the keystore changed: reading it is disk work
    _generate(service, key_id)
    with not_waiting():
        _generate(service, key_id)  # read now: current again


def test_a_read_while_a_write_holds_the_keystore_would_wait(service: KmsService) -> None:
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    _generate(service, key_id)
    release, holder = _held_by_another_thread(service.store._thread_lock)  # a write's lock
    try:
        with not_waiting(), pytest.raises(WouldBlock):
            _generate(service, key_id)
    finally:
        release.set()
        holder.join(30)
