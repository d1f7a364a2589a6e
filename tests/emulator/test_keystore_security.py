"""The keystore refuses what someone else could have planted or edited.

Unsafe ownership and modes (as ssh refuses key files), symbolic links and odd files in
place of ``root.key``, ``lock``, ``keystore.json`` or the directory, edits of
``keystore.json`` (its MAC), and keystores written by kmsnb 0.1 until their owner vouches
for them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsnb.emulator import (
    KeyStore,
    KeyStoreCorruptedError,
    KeyStoreMigrationError,
    KeyStoreUnsafeError,
    KmsService,
)
from kmsnb.emulator import _keystore_dir as keystore_dir
from kmsnb.errors import KmsAccessDeniedError, KmsnbError
from kmsnb.kms.local import LocalKms

pytestmark = pytest.mark.unit

FILES = ("root.key", "lock", "keystore.json")
KEYSTORE_0_1 = Path(__file__).parent / "keystore_0.1"


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A keystore with one key in it, closed."""
    path = tmp_path / "store"
    with LocalKms(path) as kms:
        kms.create_key("k")
    return path


@pytest.fixture
def foreign(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make ``path`` belong to someone else: chown as root, else change who we are."""

    def make_foreign(path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, 12345, -1, follow_symlinks=False)
        else:
            real = os.geteuid()
            monkeypatch.setattr(keystore_dir.os, "geteuid", lambda: real + 1)

    return make_foreign


def _refused(path: Path, named: Path) -> KeyStoreUnsafeError:
    with pytest.raises(KeyStoreUnsafeError) as caught:
        KeyStore(path)
    assert str(named) in str(caught.value)
    return caught.value


# --- ownership and modes -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o770, 0o1777])
def test_a_directory_others_can_write_is_refused(made: Path, mode: int) -> None:
    made.chmod(mode)
    error = _refused(made, made)
    assert "chmod" in str(error)


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o711])
def test_a_directory_others_can_only_read_is_accepted(made: Path, mode: int) -> None:
    made.chmod(mode)
    KeyStore(made).close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601])
def test_a_root_key_others_can_touch_is_refused(made: Path, mode: int) -> None:
    (made / "root.key").chmod(mode)
    _refused(made, made / "root.key")


@pytest.mark.parametrize("name", ["keystore.json", "lock"])
@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_metadata_others_can_write_is_refused(made: Path, name: str, mode: int) -> None:
    (made / name).chmod(mode)
    _refused(made, made / name)


@pytest.mark.parametrize("name", [".", *FILES])
def test_a_path_owned_by_someone_else_is_refused(
    made: Path, foreign: Callable[[Path], None], name: str
) -> None:
    target = made if name == "." else made / name
    foreign(target)
    error = _refused(made, made if os.geteuid() != 0 else target)
    assert "not to you" in str(error)


def test_the_issue_scenario_a_planted_root_key_in_an_open_directory(
    tmp_path: Path, foreign: Callable[[Path], None]
) -> None:
    """0777 directory, another user's 0644 root.key: refused before the key is used."""
    planted = tmp_path / "shared"
    planted.mkdir()
    (planted / "root.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (planted / "root.key").chmod(0o644)
    planted.chmod(0o777)
    foreign(planted / "root.key")
    with pytest.raises(KeyStoreUnsafeError):
        LocalKms(planted)
    planted.chmod(0o700)
    with pytest.raises(KeyStoreUnsafeError) as caught:
        LocalKms(planted)
    assert str(planted / "root.key") in str(caught.value)


# --- symbolic links and odd files ----------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_a_symlinked_file_is_refused(made: Path, tmp_path: Path, name: str) -> None:
    elsewhere = tmp_path / f"elsewhere-{name}"
    shutil.copy2(made / name, elsewhere)
    (made / name).unlink()
    (made / name).symlink_to(elsewhere)
    error = _refused(made, made / name)
    assert "symbolic link" in str(error)


def test_a_dangling_symlink_is_not_created_through(made: Path, tmp_path: Path) -> None:
    """A link where the lock file would be created: refused, nothing made at its target."""
    (made / "lock").unlink()
    target = tmp_path / "created-through-the-link"
    (made / "lock").symlink_to(target)
    _refused(made, made / "lock")
    assert not target.exists()


def test_a_symlinked_directory_is_refused(made: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-store"
    link.symlink_to(made)
    _refused(link, link)


def test_a_fifo_in_place_of_the_keystore_is_refused_without_hanging(made: Path) -> None:
    (made / "keystore.json").unlink()
    os.mkfifo(made / "keystore.json", 0o600)
    error = _refused(made, made / "keystore.json")
    assert "regular file" in str(error)


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    with pytest.raises(KeyStoreUnsafeError, match="not a directory"):
        KeyStore(path)


def test_unsafe_errors_are_kmsnb_errors_not_os_errors(made: Path) -> None:
    (made / "root.key").chmod(0o644)
    with pytest.raises(KmsnbError) as caught:
        LocalKms(made)
    assert not isinstance(caught.value, OSError)


# --- the metadata is authenticated ---------------------------------------------------------------


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads((path / "keystore.json").read_bytes())
    change(document)
    (path / "keystore.json").write_text(json.dumps(document))


def test_moving_a_version_to_another_key_is_detected(tmp_path: Path) -> None:
    """The issue's attack: a disabled key's version re-filed under an enabled key."""
    path = tmp_path / "store"
    with LocalKms(path) as kms:
        disabled, enabled = kms.create_key("d").key_id, kms.create_key("e").key_id
        data_key = kms.generate_data_key(disabled, {"a": "b"})
        kms.disable_key(disabled)
        with pytest.raises(KmsAccessDeniedError):
            kms.decrypt_data_key(data_key.ciphertext_blob, {"a": "b"})
    stolen = data_key.key_version_id

    def refile(document: dict[str, Any]) -> None:
        for key in document["keys"]:
            if key["key_id"] == disabled:
                key["version_ids"].remove(stolen)
            if key["key_id"] == enabled:
                key["version_ids"].append(stolen)
        for version in document["versions"]:
            if version["version_id"] == stolen:
                version["key_id"] = enabled

    _edit(path, refile)
    with pytest.raises(KeyStoreCorruptedError, match="failed authentication"):
        LocalKms(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["keys"][0].update(key_state="Enabled"),
        lambda d: d["keys"][0].update(description="edited"),
        lambda d: d["aliases"].update({"alias/x": d["keys"][1]["key_id"]}),
        lambda d: d["versions"][0].update(key_id=d["keys"][1]["key_id"]),
        lambda d: d.update(generation=d["generation"] + 1),
        lambda d: d["keys"].pop(),
        lambda d: d.update(mac=base64.b64encode(bytes(32)).decode()),
        lambda d: d.pop("mac"),
    ],
    ids=[
        "enable",
        "describe",
        "alias",
        "version-key",
        "generation",
        "drop-key",
        "zero-mac",
        "no-mac",
    ],
)
def test_any_edit_of_the_metadata_is_detected(tmp_path: Path, change: Any) -> None:
    path = tmp_path / "store"
    with LocalKms(path) as kms:
        first = kms.create_key("one").key_id
        kms.create_key("two")
        kms.disable_key(first)
    _edit(path, change)
    with pytest.raises(KeyStoreCorruptedError) as caught:
        LocalKms(path)
    assert str(path / "keystore.json") in str(caught.value)


def test_spacing_and_member_order_are_not_edits(made: Path) -> None:
    document = json.loads((made / "keystore.json").read_bytes())
    reordered = dict(reversed(list(document.items())))
    (made / "keystore.json").write_text(json.dumps(reordered, indent=2, ensure_ascii=True))
    with LocalKms(made) as kms:
        assert [key.description for key in kms.list_keys()] == ["k"]


# --- keystores written by kmsnb 0.1 --------------------------------------------------------------


@pytest.fixture
def keystore_0_1(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    path = tmp_path / "old"
    path.mkdir(mode=0o700)
    for name in ("root.key", "keystore.json"):
        shutil.copy(KEYSTORE_0_1 / name, path / name)
        (path / name).chmod(0o600)
    return path, json.loads((KEYSTORE_0_1 / "expected.json").read_text())


def test_a_0_1_keystore_is_refused_until_its_owner_vouches_for_it(
    keystore_0_1: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = keystore_0_1
    before = (path / "keystore.json").read_bytes()
    with pytest.raises(KeyStoreMigrationError) as caught:
        LocalKms(path)
    assert str(path / "keystore.json") in str(caught.value)
    assert "KMSNB_EMULATOR_MIGRATE=1" in str(caught.value)
    assert before == (path / "keystore.json").read_bytes()  # untouched


def test_a_vouched_0_1_keystore_is_upgraded_and_keeps_every_key(
    keystore_0_1: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected = keystore_0_1
    monkeypatch.setenv("KMSNB_EMULATOR_MIGRATE", "1")
    with LocalKms(path) as kms:
        enabled = expected["enabled"]
        plain = kms.decrypt_data_key(enabled["ciphertext_blob"], expected["context"]).plaintext
        assert base64.b64encode(bytes(plain)).decode() == enabled["plaintext"]
        keys = {key.key_id: key for key in kms.list_keys()}
        assert keys[expected["disabled"]["key_id"]].key_state == "Disabled"
        assert kms.describe_key("alias/v1-enabled").key_id == enabled["key_id"]
        assert len(kms.list_key_versions(enabled["key_id"])) == 2
    document = json.loads((path / "keystore.json").read_bytes())
    assert document["format"] == "kmsnb-emulator-keystore/2"
    assert "mac" in document
    monkeypatch.delenv("KMSNB_EMULATOR_MIGRATE")
    LocalKms(path).close()  # from now on, no vouching needed


def test_a_migrated_keystore_cannot_be_downgraded_to_dodge_its_mac(
    keystore_0_1: tuple[Path, dict[str, Any]],
) -> None:
    """Strip the MAC, call it format 1, enable the disabled key: refused as unvouched."""
    path, _expected = keystore_0_1
    KeyStore(path, migrate=True).close()

    def downgrade(document: dict[str, Any]) -> None:
        del document["mac"]
        document["format"] = "kmsnb-emulator-keystore/1"
        for key in document["keys"]:
            key["key_state"] = "Enabled"

    _edit(path, downgrade)
    with pytest.raises(KeyStoreMigrationError):
        LocalKms(path)


def test_a_0_1_keystore_is_checked_as_strictly_as_any(
    keystore_0_1: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = keystore_0_1
    _edit(path, lambda d: d["keys"][0].update(creation_time=1e308))
    with pytest.raises(KeyStoreCorruptedError, match="creation_time"):
        KeyStore(path, migrate=True)


def test_modes_after_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    KmsService(KeyStore(path)).call("CreateKey", {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for name in FILES:
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o600, name


def test_an_independent_verifier_accepts_the_mac_kmsnb_writes(made: Path) -> None:
    """docs/emulator.md's definition of ``mac``, rebuilt from hmac, json and HKDF."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    root = base64.b64decode((made / "root.key").read_text())
    key = HKDF(hashes.SHA256(), 32, None, b"kmsnb emulator keystore.json v2 mac").derive(root)
    document = json.loads((made / "keystore.json").read_bytes())
    mac = base64.b64decode(document.pop("mac"))
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert hmac.compare_digest(mac, hmac.new(key, canonical.encode(), hashlib.sha256).digest())
    assert document["format"] == "kmsnb-emulator-keystore/2"
