"""rewrap_file's output: the file keeps its owner, group and mode; hard links, non-regular
files are refused; any legal name works."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import kmsnb
from kmsnb.kms.local import LocalKms
from kmsnb.rewrap import rewrap_file

pytestmark = [pytest.mark.unit]

PLAINTEXT = os.urandom(100_000)


@pytest.fixture
def local_kms(tmp_path: Path) -> Iterator[LocalKms]:
    with LocalKms(tmp_path / "store") as kms:
        yield kms


@pytest.fixture
def keys(local_kms: LocalKms) -> tuple[str, str]:
    return local_kms.create_key("old").key_id, local_kms.create_key("new").key_id


def _encrypted(path: Path, kms: LocalKms, key_id: str) -> Path:
    path.write_bytes(kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=kms))
    return path


def test_rewrap_keeps_owner_group_and_mode(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """Root rewrapping a user's 0640 file leaves it the user's, readable by the user."""
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    if os.geteuid() == 0:
        owner, group = 12345, 23456  # another user's file
    else:
        owner, group = os.geteuid(), os.getgroups()[-1] if os.getgroups() else os.getegid()
    os.chown(path, owner, group)
    path.chmod(0o640)

    info = rewrap_file(path, keys[1], kms=local_kms)

    status = path.stat()
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (owner, group, 0o640)
    assert info.key_id == keys[1]
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT
    assert sorted(os.listdir(tmp_path)) == ["data.kms", "store"]


def test_a_file_with_other_hard_links_is_refused(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """Replacing it would leave the other name on the old key; both stay as they were."""
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    other = tmp_path / "also.kms"
    os.link(path, other)
    before = path.read_bytes()

    with pytest.raises(ValueError, match="2 hard links"):
        rewrap_file(path, keys[1], kms=local_kms)

    assert os.path.samefile(path, other)
    assert path.read_bytes() == before
    assert kmsnb.inspect(other).key_id == keys[0]


def test_only_regular_files_are_rewrapped(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        rewrap_file(fifo, keys[1], kms=local_kms)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_rewrap_works_on_a_255_byte_name(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    path = _encrypted(tmp_path / ("r" * 251 + ".kms"), local_kms, keys[0])
    assert rewrap_file(path, keys[1], kms=local_kms).key_id == keys[1]
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, "store"])


def test_a_symbolic_link_is_followed_and_kept(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    link = tmp_path / "link.kms"
    link.symlink_to(path.name)
    rewrap_file(link, keys[1], kms=local_kms)
    assert link.is_symlink()
    assert kmsnb.inspect(path).key_id == keys[1]
