"""A keystore that cannot be written, and one whose disk is full.

A read-only keystore still decrypts and lists (its lock is opened read-only and shared);
a change names the keystore and says it is read-only. A full disk says so and names the
keystore, never the network. The filesystems are real where the machine allows: a read-only
bind mount or permissions, a small tmpfs, ``RLIMIT_FSIZE`` in a child process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsnb.cli import main
from kmsnb.emulator import KeyStoreFullError, KeyStoreReadOnlyError, KmsService
from kmsnb.emulator import _keystore_dir as keystore_dir
from kmsnb.emulator.store import KeyStore
from kmsnb.errors import KmsError
from kmsnb.kms.local import LocalKms

pytestmark = pytest.mark.unit

CONTEXT = {"team": "ro"}


def _mount(*arguments: str) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        result = subprocess.run(["mount", *arguments], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, str, str]:
    """A keystore with a key, an alias, a secret under the key and a data key blob; closed."""
    path = tmp_path / "store"
    with LocalKms(path) as kms:
        key_id = kms.create_key("ro").key_id
        kms.create_alias("alias/ro", key_id)
        kms.create_secret("ro/secret", "read me", encryption_key_id=key_id)
        blob = kms.generate_data_key(key_id, CONTEXT).ciphertext_blob
    return path, key_id, blob


@pytest.fixture
def read_only(
    populated: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str, str]]:
    """The keystore made read-only: a read-only bind mount as root (where mounts are
    allowed), permissions otherwise; as root without mounts, writes are made to fail with
    EROFS as a read-only filesystem fails them."""
    path = populated[0]
    if _mount("--bind", str(path), str(path)):
        if _mount("-o", "remount,bind,ro", str(path)):
            yield populated
            _umount(path)
            return
        _umount(path)
    if os.geteuid() != 0:
        for name in ("root.key", "keystore.json", "lock"):
            (path / name).chmod(0o400)
        path.chmod(0o500)
        yield populated
        path.chmod(0o700)
        return
    real_open = os.open

    def read_only_open(file: object, flags: int, *args: object, **kwargs: object) -> int:
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writing and (kwargs.get("dir_fd") is not None or str(file).startswith(str(path))):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keystore_dir.os, "open", read_only_open)
    yield populated


def test_a_read_only_keystore_decrypts_and_lists(read_only: tuple[Path, str, str]) -> None:
    path, key_id, blob = read_only
    with LocalKms(path) as kms:
        assert kms.decrypt_data_key(blob, CONTEXT).plaintext
        assert [key.key_id for key in kms.list_keys()] == [key_id]
        assert [alias.alias_name for alias in kms.list_aliases()] == ["alias/ro"]
        assert kms.describe_key("alias/ro").key_state == "Enabled"
        with kms.generate_data_key(key_id, CONTEXT) as data_key:  # needs no write either
            opened = kms.decrypt_data_key(data_key.ciphertext_blob, CONTEXT)
            assert opened.plaintext == data_key.plaintext
        with kms.get_secret_value("ro/secret") as secret:
            assert secret.reveal() == "read me"
        assert [info.name for info in kms.list_secrets()] == ["ro/secret"]


@pytest.mark.parametrize(
    "change", ["create_key", "disable_key", "create_alias", "put_secret_value", "delete_secret"]
)
def test_a_change_to_a_read_only_keystore_names_it(
    read_only: tuple[Path, str, str], change: str
) -> None:
    path, key_id, _ = read_only
    arguments = {
        "create_key": (),
        "disable_key": (key_id,),
        "create_alias": ("alias/x", key_id),
        "put_secret_value": ("ro/secret", "new"),
        "delete_secret": ("ro/secret",),
    }
    with LocalKms(path) as kms, pytest.raises(KeyStoreReadOnlyError) as caught:
        getattr(kms, change)(*arguments[change])
    message = str(caught.value)
    assert str(path) in message
    assert "read-only" in message
    assert "network" not in message
    assert not isinstance(caught.value, KmsError | OSError)


def test_the_cli_lists_a_read_only_keystore_and_refuses_changes_plainly(
    read_only: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, key_id, _ = read_only
    assert main(["--kms", f"local:{path}", "key", "list"]) == 0
    assert key_id in capsys.readouterr().out
    assert main(["--kms", f"local:{path}", "key", "create"]) == 1
    err = capsys.readouterr().err
    assert "read-only" in err
    assert str(path) in err
    assert "network" not in err


def test_a_read_only_store_opens_its_lock_read_only_and_shared(
    read_only: tuple[Path, str, str],
) -> None:
    store = KeyStore(read_only[0])
    try:
        assert store.read_only
    finally:
        store.close()


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A keystore on a full filesystem: a 1 MiB tmpfs filled up where mounts are allowed,
    else one whose writes fail with ENOSPC as a full disk fails them."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)):
        path = mount_point / "store"
        KmsService(KeyStore(path)).call("CreateKey", {})
        filler = mount_point / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as file:  # until ENOSPC
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        yield path
        _umount(mount_point)
        return
    path = tmp_path / "store"
    KmsService(KeyStore(path)).call("CreateKey", {})
    real_write = os.write

    def full_write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keystore_dir.os, "write", full_write)
    yield path
    monkeypatch.setattr(keystore_dir.os, "write", real_write)


def test_a_full_disk_says_so_and_names_the_keystore(full_disk: Path) -> None:
    before = (full_disk / "keystore.json").read_bytes()
    with LocalKms(full_disk) as kms:
        with pytest.raises(KeyStoreFullError) as caught:
            kms.create_key("no room")
        message = str(caught.value)
        assert "disk holding the keystore is full" in message
        assert str(full_disk) in message
        assert "network" not in message
        assert len(kms.list_keys()) == 1  # nothing changed, nothing lost
    assert before == (full_disk / "keystore.json").read_bytes()
    assert [p.name for p in full_disk.iterdir() if p.name.startswith(".")] == []


def test_the_cli_on_a_full_disk_blames_the_disk_not_the_network(
    full_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kms", f"local:{full_disk}", "key", "create"]) == 1
    err = capsys.readouterr().err
    assert "full" in err
    assert str(full_disk) in err
    assert "network" not in err


CREATE_UNDER_A_SIZE_LIMIT = """
import json, resource, signal, sys
from kmsnb.emulator import KeyStoreError
from kmsnb.kms.local import LocalKms
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG rather than death (Python's default)
kms = LocalKms(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    for number in range(1000):
        kms.create_key("x" * 4000)
except KeyStoreError as error:
    print(json.dumps({"class": type(error).__name__, "message": str(error), "made": number}))
"""


def test_a_file_size_limit_is_reported_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    LocalKms(path).close()
    limit = 64 * 1024
    result = subprocess.run(
        [sys.executable, "-c", CREATE_UNDER_A_SIZE_LIMIT, str(path), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["class"] == "KeyStoreFullError"
    assert "file size limit" in report["message"]
    assert str(path / "keystore.json") in report["message"]
    with LocalKms(path) as kms:  # every key acknowledged before the limit is there
        assert len(kms.list_keys()) == report["made"] > 0
    assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != limit  # only the child's
