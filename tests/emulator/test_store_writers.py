"""No path that writes the keystore loses another instance's change.

Every write is a read-modify-write under the exclusive flock: the state is read again
under the lock (the file's identity, then its write id) before it is changed. Here one
instance holds a stale cache, another writes, then the first writes: through each kind of
call, through the housekeeping that reads trigger (a rotation due, a deletion window
passed), through the migration of a 0.1 keystore, and while waiting for the lock. The
file's identity is made to repeat (an inode reused within one timestamp tick) so that
only the write id can tell the first instance that its cache is stale.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsnb.emulator import KeyStore, KmsService
from kmsnb.emulator import store as store_module
from kmsnb.emulator._keystore_dir import StoreDirectory

from .conftest import DAY, FakeClock

pytestmark = pytest.mark.unit

KEYSTORE_0_1 = Path(__file__).parent / "keystore_0.1"
_PATIENCE_S = 60.0  # against a hang if the lock were broken; never reached otherwise


@pytest.fixture(params=["identity changes", "identity repeats"])
def identity(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """With "repeats", every instance sees the same identity for every version of the
    file, and a cached read never rechecks: a cache is stale until a write looks."""
    if request.param == "identity repeats":
        monkeypatch.setattr(StoreDirectory, "identity", lambda self, name: (1, 2, 3, 4))
        monkeypatch.setattr(store_module, "_RECHECK_SECONDS", float("inf"))
    return str(request.param)


@pytest.fixture
def stores(store_dir: Path) -> Iterator[tuple[KeyStore, KeyStore]]:
    first, second = KeyStore(store_dir), KeyStore(store_dir)
    yield first, second
    first.close()
    second.close()


def _key(service: KmsService, **params: str) -> str:
    key_id: str = service.call("CreateKey", params)["KeyMetadata"]["KeyId"]
    return key_id


def _change_elsewhere(service: KmsService) -> tuple[str, str]:
    """The other instance's change: a key and an alias to it."""
    key_id = _key(service, Description="made elsewhere")
    service.call("CreateAlias", {"AliasName": "alias/elsewhere", "KeyId": key_id})
    return key_id, "alias/elsewhere"


def _assert_kept(store_dir: Path, key_id: str, alias: str) -> None:
    fresh = KeyStore(store_dir)
    try:
        state = fresh.snapshot()
        assert key_id in state.keys
        assert state.aliases.get(alias) == key_id
    finally:
        fresh.close()


def _stale(stale: KeyStore, alias: str, identity: str) -> None:
    """Check that the scenario is what it claims: the first instance's cache is stale."""
    if identity == "identity repeats":
        assert alias not in stale.snapshot().aliases


# -- housekeeping that a read triggers --------------------------------------------------------

READS: dict[str, Callable[[str], tuple[str, dict[str, str]]]] = {
    "GenerateDataKey": lambda key_id: ("GenerateDataKey", {"KeyId": key_id}),
    "Encrypt": lambda key_id: ("Encrypt", {"KeyId": key_id, "Plaintext": "aGk="}),
    "DescribeKey": lambda key_id: ("DescribeKey", {"KeyId": key_id}),
    "ListKeys": lambda key_id: ("ListKeys", {}),
    "ListKeyVersions": lambda key_id: ("ListKeyVersions", {"KeyId": key_id}),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_rotation_due_on_a_stale_read_keeps_the_other_instances_changes(
    stores: tuple[KeyStore, KeyStore], store_dir: Path, clock: FakeClock, identity: str,
    read: str,
) -> None:  # fmt: skip
    first_store, second_store = stores
    first, second = KmsService(first_store, clock=clock), KmsService(second_store, clock=clock)
    rotating = _key(first, EnableAutomaticRotation="true", RotationInterval="7d")
    first.call("DescribeKey", {"KeyId": rotating})  # the first instance's cache
    key_id, alias = _change_elsewhere(second)
    _stale(first_store, alias, identity)
    clock.advance(8 * DAY)

    first.call(*READS[read](rotating))  # rotates the key: a write, from a stale cache

    _assert_kept(store_dir, key_id, alias)
    assert len(KeyStore(store_dir).snapshot().keys[rotating].version_ids) == 2


def test_a_purge_on_a_stale_read_keeps_the_other_instances_changes(
    stores: tuple[KeyStore, KeyStore], store_dir: Path, clock: FakeClock, identity: str
) -> None:
    first_store, second_store = stores
    first, second = KmsService(first_store, clock=clock), KmsService(second_store, clock=clock)
    doomed = _key(first)
    first.call("ScheduleKeyDeletion", {"KeyId": doomed, "PendingWindowInDays": "7"})
    key_id, alias = _change_elsewhere(second)
    _stale(first_store, alias, identity)
    clock.advance(8 * DAY)

    first.call("ListKeys", {})  # purges the key: a write, from a stale cache

    _assert_kept(store_dir, key_id, alias)
    assert doomed not in KeyStore(store_dir).snapshot().keys


def test_a_secret_purge_on_a_stale_write_keeps_the_other_instances_changes(
    stores: tuple[KeyStore, KeyStore], store_dir: Path, clock: FakeClock, identity: str
) -> None:
    first_store, second_store = stores
    first, second = KmsService(first_store, clock=clock), KmsService(second_store, clock=clock)
    first.call("CreateSecret", {"SecretName": "old", "SecretData": "v", "VersionId": "v1"})
    first.call("DeleteSecret", {"SecretName": "old", "RecoveryWindowInDays": "7"})
    key_id, alias = _change_elsewhere(second)
    _stale(first_store, alias, identity)
    clock.advance(8 * DAY)

    first.call("CreateSecret", {"SecretName": "new", "SecretData": "v", "VersionId": "v1"})

    _assert_kept(store_dir, key_id, alias)
    assert set(KeyStore(store_dir).snapshot().secrets) == {"new"}


# -- every kind of write ------------------------------------------------------------------------

WRITES: dict[str, Callable[[str], tuple[str, dict[str, str]]]] = {
    "CreateKey": lambda key_id: ("CreateKey", {}),
    "CreateAlias": lambda key_id: ("CreateAlias", {"AliasName": "alias/mine", "KeyId": key_id}),
    "UpdateAlias": lambda key_id: ("UpdateAlias", {"AliasName": "alias/own", "KeyId": key_id}),
    "DeleteAlias": lambda key_id: ("DeleteAlias", {"AliasName": "alias/own"}),
    "CreateKeyVersion": lambda key_id: ("CreateKeyVersion", {"KeyId": key_id}),
    "DisableKey": lambda key_id: ("DisableKey", {"KeyId": key_id}),
    "UpdateKeyDescription": lambda key_id: (
        "UpdateKeyDescription",
        {"KeyId": key_id, "Description": "changed"},
    ),
    "UpdateRotationPolicy": lambda key_id: (
        "UpdateRotationPolicy",
        {"KeyId": key_id, "EnableAutomaticRotation": "true", "RotationInterval": "30d"},
    ),
    "ScheduleKeyDeletion": lambda key_id: (
        "ScheduleKeyDeletion",
        {"KeyId": key_id, "PendingWindowInDays": "7"},
    ),
    "CreateSecret": lambda key_id: (
        "CreateSecret",
        {"SecretName": "s", "SecretData": "v", "VersionId": "v1"},
    ),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_from_a_stale_instance_keeps_the_other_instances_changes(
    stores: tuple[KeyStore, KeyStore], store_dir: Path, clock: FakeClock, identity: str,
    write: str,
) -> None:  # fmt: skip
    first_store, second_store = stores
    first, second = KmsService(first_store, clock=clock), KmsService(second_store, clock=clock)
    mine = _key(first)
    first.call("CreateAlias", {"AliasName": "alias/own", "KeyId": mine})
    key_id, alias = _change_elsewhere(second)
    _stale(first_store, alias, identity)

    first.call(*WRITES[write](mine))

    _assert_kept(store_dir, key_id, alias)


# -- waiting for the lock -----------------------------------------------------------------------


def test_a_writer_that_waited_for_the_lock_reads_the_state_again(
    stores: tuple[KeyStore, KeyStore], store_dir: Path, identity: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The second instance holds the lock, mid-transaction; the first, its cache loaded
    before, asks for the lock then; once it has it, it writes on top of the second's
    change."""
    first, second = stores
    first.snapshot()
    inside, first_waits = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold_the_lock() -> None:
        try:
            with second.transaction() as draft:
                draft.aliases["alias/second"] = "k"
                inside.set()
                if not first_waits.wait(_PATIENCE_S):
                    raise AssertionError("the first writer never asked for the lock")
        except BaseException as error:  # reported by the test's thread
            errors.append(error)

    lock = first._dir.lock

    def announced_lock(*, exclusive: bool) -> Any:
        first_waits.set()
        return lock(exclusive=exclusive)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert inside.wait(_PATIENCE_S)
    monkeypatch.setattr(first._dir, "lock", announced_lock)
    with first.transaction() as draft:
        draft.aliases["alias/first"] = "k"
    holder.join(_PATIENCE_S)
    assert errors == []
    assert {"alias/first", "alias/second"} == set(KeyStore(store_dir).snapshot().aliases)


# -- the migration of a 0.1 keystore, written when it opens -------------------------------------


def test_opening_a_migrated_keystore_again_keeps_what_was_written_since(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "old"
    path.mkdir(mode=0o700)
    for name in ("root.key", "keystore.json"):
        shutil.copy(KEYSTORE_0_1 / name, path / name)
        (path / name).chmod(0o600)
    first = KeyStore(path, migrate=True)  # upgrades the file to format 2
    key_id = _key(KmsService(first, clock=clock))
    second = KeyStore(path, migrate=True)  # must not upgrade again from a stale copy
    assert key_id in second.snapshot().keys
    assert key_id in KeyStore(path).snapshot().keys
    first.close()
    second.close()
