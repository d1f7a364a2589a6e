"""KeyStore: files and modes, the root key, atomic writes, sharing between instances."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from kmsnb.emulator import (
    KeyStore,
    KeyStoreCorruptedError,
    KeyStoreError,
    KmsService,
    Limits,
    default_store_dir,
)
from kmsnb.emulator import store as store_module
from kmsnb.emulator._keystore_dir import StoreDirectory
from kmsnb.emulator._sm4 import SM4_KEY_SIZE

pytestmark = pytest.mark.unit

NewKey = Callable[..., str]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def round_trip(service: KmsService, key_id: str) -> None:
    """GenerateDataKey then Decrypt; proves the key's material is there and usable."""
    body = service.call("GenerateDataKey", {"KeyId": key_id, "EncryptionContext": '{"k":"v"}'})
    opened = service.call(
        "Decrypt", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext": '{"k":"v"}'}
    )
    assert opened["Plaintext"] == body["Plaintext"]


def test_default_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "here"))
    assert tmp_path / "here" == default_store_dir()
    assert tmp_path / "here" == KeyStore().path


def test_the_directory_is_spelled_as_a_path_and_given_as_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The keystore keeps its directory as a string (start-up: no pathlib) spelled as
    ``str(Path(...))`` spells it (kmsnb._path_text), ``~`` expanded, and ``path`` is that
    Path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for given, expected in [("rel//ks/.", "rel/ks"), ("~/ks/", f"{tmp_path}/home/ks")]:
        store = KeyStore(given)
        assert (expected, Path(expected)) == (store.directory, store.path)
        assert f"KeyStore({expected!r})" == repr(store)


def test_default_dir_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSNB_EMULATOR_DIR")
    expected = Path(platformdirs.user_data_dir("kmsnb")) / "emulator"
    assert expected == default_store_dir()


def test_file_modes(store_dir: Path, new_key: NewKey) -> None:
    new_key()
    assert mode_of(store_dir) == 0o700
    names = sorted(path.name for path in store_dir.iterdir())
    assert names == ["keystore.json", "lock", "root.key"]
    for name in names:
        assert mode_of(store_dir / name) == 0o600, name


def test_keystore_holds_no_clear_material(store: KeyStore, new_key: NewKey) -> None:
    key_id = new_key()
    document = json.loads((store.path / "keystore.json").read_bytes())
    version = document["versions"][0]
    assert key_id == version["key_id"]
    # nonce || AES-GCM(material) || tag: 12 + 32 + 16 bytes, not the bare 32-byte key.
    assert len(base64.b64decode(version["wrapped_material"])) == 60
    root_key = (store.path / "root.key").read_text().strip()
    assert root_key not in (store.path / "keystore.json").read_text()


def test_root_key_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: Any
) -> None:
    root_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("KMSNB_EMULATOR_ROOT_KEY", root_key)
    service = KmsService(KeyStore(tmp_path / "s"), clock=clock)
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    assert not (tmp_path / "s" / "root.key").exists()
    round_trip(KmsService(KeyStore(tmp_path / "s")), key_id)

    monkeypatch.setenv("KMSNB_EMULATOR_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyStoreError, match="root key does not open"):
        KeyStore(tmp_path / "s")
    monkeypatch.delenv("KMSNB_EMULATOR_ROOT_KEY")
    with pytest.raises(KeyStoreError, match="root key does not open"):
        KeyStore(tmp_path / "s")  # a fresh root.key is made, and it is not the right one


def test_root_key_file_can_move_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, store: KeyStore, new_key: NewKey
) -> None:
    key_id = new_key()
    monkeypatch.setenv("KMSNB_EMULATOR_ROOT_KEY", (store.path / "root.key").read_text())
    (store.path / "root.key").unlink()
    round_trip(KmsService(KeyStore(store.path)), key_id)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_malformed_root_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv("KMSNB_EMULATOR_ROOT_KEY", value)
    with pytest.raises(KeyStoreError) as info:
        KeyStore(tmp_path / "s")
    assert value not in str(info.value)


def test_explicit_root_key(tmp_path: Path) -> None:
    root_key = os.urandom(32)
    service = KmsService(KeyStore(tmp_path / "s", root_key=root_key))
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    round_trip(KmsService(KeyStore(tmp_path / "s", root_key=root_key)), key_id)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path / "s", root_key=b"short")


def test_corrupted_keystore(store: KeyStore, new_key: NewKey) -> None:
    new_key()
    (store.path / "keystore.json").write_text('{"format": "something else"}')
    with pytest.raises(KeyStoreCorruptedError, match="not a readable keystore"):
        KeyStore(store.path)


def test_tampered_material_fails_the_mac(store: KeyStore, new_key: NewKey) -> None:
    new_key()
    path = store.path / "keystore.json"
    document = json.loads(path.read_bytes())
    wrapped = bytearray(base64.b64decode(document["versions"][0]["wrapped_material"]))
    wrapped[20] ^= 1
    document["versions"][0]["wrapped_material"] = base64.b64encode(wrapped).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreCorruptedError, match="failed authentication"):
        KeyStore(store.path)


def test_failed_write_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, store: KeyStore, service: KmsService, new_key: NewKey
) -> None:
    """A write that fails before the rename leaves the file, the memory, no temp file."""
    key_id = new_key()
    before = (store.path / "keystore.json").read_bytes()

    def failing_rename(*args: object, **kwargs: object) -> None:
        raise OSError("an I/O error")

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(KeyStoreError, match=r"cannot write .*keystore\.json"):
        service.call("DisableKey", {"KeyId": key_id})
    monkeypatch.undo()

    assert before == (store.path / "keystore.json").read_bytes()
    assert list(store.path.glob(".*")) == []
    assert service.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["KeyState"] == "Enabled"
    service.call("DisableKey", {"KeyId": key_id})
    assert service.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["KeyState"] == "Disabled"


def test_failed_transaction_writes_nothing(store: KeyStore) -> None:
    generation = store.snapshot().generation

    def change_then_fail() -> None:
        with store.transaction() as draft:
            draft.aliases["alias/x"] = "k"
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError, match="abandon"):
        change_then_fail()
    assert "alias/x" not in store.snapshot().aliases
    assert generation == store.snapshot().generation
    with store.transaction() as draft:
        draft.aliases["alias/x"] = "k"
    assert generation + 1 == store.snapshot().generation
    assert "alias/x" in KeyStore(store.path).snapshot().aliases


def test_orphan_temp_files_are_removed(store: KeyStore) -> None:
    orphan = store.path / ".keystore.json.0123.tmp"
    orphan.write_text("half a write")
    KeyStore(store.path)
    assert not orphan.exists()


def test_instances_see_each_other(store: KeyStore, clock: Any) -> None:
    first = KmsService(store, clock=clock)
    second = KmsService(KeyStore(store.path), clock=clock)
    key_id = first.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    round_trip(second, key_id)
    second.call("DisableKey", {"KeyId": key_id})
    assert first.call("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["KeyState"] == "Disabled"
    first.call("CreateAlias", {"AliasName": "alias/shared", "KeyId": key_id})
    second.call("EnableKey", {"KeyId": "alias/shared"})
    version = first.call("CreateKeyVersion", {"KeyId": key_id})["KeyVersion"]["KeyVersionId"]
    assert version == second.call("GenerateDataKey", {"KeyId": key_id})["KeyVersionId"]


def test_write_id_catches_a_repeated_file_identity(
    monkeypatch: pytest.MonkeyPatch, store: KeyStore
) -> None:
    """Should a new file look like the cached one (inode reused in one tick), no update
    is lost, and readers notice within the recheck interval."""
    monkeypatch.setattr(StoreDirectory, "identity", lambda self, name: (1, 2, 3, 4))
    first, second = KeyStore(store.path), KeyStore(store.path)
    first.snapshot()
    with second.transaction() as draft:
        draft.aliases["alias/a"] = "k"
    with first.transaction() as draft:
        draft.aliases["alias/b"] = "k"
    assert {"alias/a", "alias/b"} == set(KeyStore(store.path).snapshot().aliases)

    with second.transaction() as draft:
        draft.aliases["alias/c"] = "k"
    assert "alias/c" not in first.snapshot().aliases  # a cached read, less than 1 s old
    monkeypatch.setattr(store_module, "_RECHECK_SECONDS", 0.0)
    assert "alias/c" in first.snapshot().aliases


def test_threads_share_a_service(service: KmsService, new_key: NewKey) -> None:
    shared_key = new_key()
    created: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                created.append(service.call("CreateKey", {})["KeyMetadata"]["KeyId"])
                for _ in range(20):
                    round_trip(service, shared_key)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = service.call("ListKeys", {"PageSize": "100"})
    assert listed["TotalCount"] == 31
    assert {item["KeyId"] for item in listed["Keys"]["Key"]} == {*created, shared_key}


CREATE_KEYS = """
import sys
from kmsnb.emulator import KeyStore, KmsService, Limits
service = KmsService(KeyStore(sys.argv[1]), limits=Limits(keys=1000))
for _ in range(int(sys.argv[2])):
    print(service.call("CreateKey", {})["KeyMetadata"]["KeyId"], flush=True)
"""


@pytest.mark.slow
def test_processes_share_a_store(store: KeyStore) -> None:
    """Concurrent writers in several processes lose no change (the flock works)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_KEYS, str(store.path), "25"], stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    created = set()
    for child in children:
        output, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        created.update(output.decode().split())
    assert len(created) == 75
    service = KmsService(store, limits=Limits(keys=1000))
    assert created == set(store.snapshot().keys)
    round_trip(service, created.pop())


def test_the_store_knows_the_size_of_sm4_material() -> None:
    """The store sizes SM4 material without importing the SM4 module (start-up)."""
    assert store_module.SM4_MATERIAL_SIZE == SM4_KEY_SIZE
