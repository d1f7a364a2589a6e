"""rewrap_file's output: the key slot is rewritten in place when it fits (same inode, same
payload bytes), the file is copied when it does not; the file keeps its owner, group and
mode; hard links are rewrapped in place and refused only when a copy is needed;
non-regular files are refused; any legal name works."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import kmsnb
from kmsnb._format.header import read_header, serialize_header
from kmsnb._format.writer import EncryptWriter
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


def _claiming_an_alias(path: Path, kms: LocalKms, key_id: str, **header: object) -> Path:
    """A file whose key slot names ``alias/old`` (29 bytes shorter than a key id) and has no
    reserved field, as kmsnb wrote before it had one: a key id's slot cannot fit there."""
    kms.create_alias("alias/old", key_id)
    data_key = kms.generate_data_key(key_id, {})
    fields: dict[str, object] = {"encryption_context": {}, "reserved_size": None, **header}
    built = serialize_header(
        data_key=data_key.plaintext,
        key_id="alias/old",
        key_version_id=data_key.key_version_id,
        wrapped_key=data_key.ciphertext_blob,
        plaintext_size=len(PLAINTEXT),
        **fields,  # type: ignore[arg-type]
    )
    with open(path, "wb") as sink, EncryptWriter(sink, built, data_key.plaintext) as writer:
        writer.write(PLAINTEXT)
    data_key.wipe()
    return path


def _payload(path: Path) -> bytes:
    """The payload region: every byte after the header."""
    with open(path, "rb") as source:
        read_header(source)  # leaves the file at the payload
        return source.read()


def test_rewrap_in_place_keeps_the_inode_and_every_payload_byte(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """The new slot fits the room kmsnb's writers keep: only the key slot region changes,
    over and over, and the old key is no longer needed."""
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    before, inode = path.read_bytes(), path.stat().st_ino
    header = read_header(io.BytesIO(before))
    for key in (keys[1], keys[0], keys[1]):
        info = rewrap_file(path, key, kms=local_kms)
        after = path.read_bytes()
        assert (path.stat().st_ino, len(after), info.header_size) == (
            inode,
            len(before),
            header.size,
        )
        assert after[: header.key_slot_offset] == before[: header.key_slot_offset]
        assert after[header.size :] == before[header.size :]  # the payload region
        assert kmsnb.inspect(path).key_id == key
    local_kms.disable_key(keys[0])
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT
    assert sorted(os.listdir(tmp_path)) == ["data.kms", "store"]


def test_a_slot_that_does_not_fit_is_copied_and_then_fits(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """No room for the longer slot: a new file with the same payload bytes replaces the
    old one, and its header keeps room, so the next rewrap is in place."""
    path = _claiming_an_alias(tmp_path / "data.kms", local_kms, keys[0])
    payload, inode = _payload(path), path.stat().st_ino

    info = rewrap_file(path, keys[1], kms=local_kms)

    assert path.stat().st_ino != inode
    assert (_payload(path), info.key_id) == (payload, keys[1])
    copied = path.stat().st_ino
    assert read_header(io.BytesIO(path.read_bytes())).reserved_size == 256
    rewrap_file(path, keys[0], kms=local_kms)
    assert (path.stat().st_ino, _payload(path)) == (copied, payload)
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT
    assert sorted(os.listdir(tmp_path)) == ["data.kms", "store"]


def test_a_slot_across_a_block_boundary_is_copied(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """A context that puts the key slot across offset 4096: one pwrite could be torn by
    a kill there, so the file is copied (and keeps working)."""
    path = tmp_path / "data.kms"
    context = {"pad": "x" * 3900}
    path.write_bytes(
        kmsnb.encrypt_bytes(PLAINTEXT, keys[0], kms=local_kms, encryption_context=context)
    )
    header = read_header(io.BytesIO(path.read_bytes()))
    assert header.key_slot_offset < 4096 < header.size
    inode, payload = path.stat().st_ino, _payload(path)
    rewrap_file(path, keys[1], kms=local_kms)
    assert (path.stat().st_ino != inode, _payload(path)) == (True, payload)
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT


def test_a_file_kmsnb_wrote_before_the_reserved_field_is_rewrapped_in_place(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """No reserved field, but a slot of the same size (key ids of one KMS): it fits."""
    path = tmp_path / "old.kms"
    data_key = local_kms.generate_data_key(keys[0], {})
    built = serialize_header(
        data_key=data_key.plaintext,
        key_id=data_key.key_id,
        key_version_id=data_key.key_version_id,
        wrapped_key=data_key.ciphertext_blob,
        encryption_context={},
        reserved_size=None,
    )
    with open(path, "wb") as sink, EncryptWriter(sink, built, data_key.plaintext) as writer:
        writer.write(PLAINTEXT)
    data_key.wipe()
    before, inode = path.read_bytes(), path.stat().st_ino
    rewrap_file(path, keys[1], kms=local_kms)
    assert (path.stat().st_ino, path.read_bytes()[built.size :]) == (inode, before[built.size :])
    assert read_header(io.BytesIO(path.read_bytes())).reserved_size is None
    assert kmsnb.decrypt_bytes(path.read_bytes(), kms=local_kms) == PLAINTEXT


def test_a_read_only_file_is_copied_keeping_its_mode(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """Without write permission on the file (but on its folder) rewrap replaces it, as it
    did before it could work in place; root may write it, so it is rewritten in place."""
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    path.chmod(0o440)
    inode = path.stat().st_ino
    rewrap_file(path, keys[1], kms=local_kms)
    assert (path.stat().st_ino == inode) == (os.geteuid() == 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert kmsnb.inspect(path).key_id == keys[1]


def test_a_hard_linked_file_is_rewrapped_under_every_name(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """In place, every name is the same inode: all of them move to the new key."""
    path = _encrypted(tmp_path / "data.kms", local_kms, keys[0])
    other = tmp_path / "also.kms"
    os.link(path, other)
    rewrap_file(path, keys[1], kms=local_kms)
    assert os.path.samefile(path, other)
    assert kmsnb.inspect(other).key_id == keys[1]


def test_a_hard_linked_file_that_must_be_copied_is_refused(
    tmp_path: Path, local_kms: LocalKms, keys: tuple[str, str]
) -> None:
    """Replacing it would leave the other name on the old key; both stay as they were."""
    path = _claiming_an_alias(tmp_path / "data.kms", local_kms, keys[0])
    other = tmp_path / "also.kms"
    os.link(path, other)
    before = path.read_bytes()

    with pytest.raises(ValueError, match="2 hard links"):
        rewrap_file(path, keys[1], kms=local_kms)

    assert os.path.samefile(path, other)
    assert path.read_bytes() == before
    assert kmsnb.inspect(other).key_id == "alias/old"


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
