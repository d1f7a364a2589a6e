"""encrypt_file / decrypt_file / inspect on s3:// against a real S3-protocol server (moto,
127.0.0.1): round trips in every direction, each destination published whole at the end
(a failure mid-upload leaves no object and no pending upload, an old object kept), and
URLs kmsnb cannot write refused before any KMS call and before anything is written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kmsnb
from kmsnb import _file_ops
from kmsnb.errors import IntegrityError, UnsupportedStorageError
from kmsnb.testing import InMemoryKms

from .conftest import object_keys, pending_uploads

pytestmark = pytest.mark.integration

#: Over two of kmsnb.storage's default 8 MiB parts: the upload is a real multipart one.
LARGE_SIZE = 20 * 1024 * 1024 + 12345


@pytest.fixture
def plaintext(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(os.urandom(LARGE_SIZE))
    return path


def _get(s3_client: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_a_local_file_encrypts_to_s3_and_decrypts_back(
    tmp_path: Path,
    plaintext: Path,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    url = f"s3://{bucket}/data/plain.bin.kms"
    written = kmsnb.encrypt_file(plaintext, url, key_id, kms=kms, storage_options=s3_options)
    stored = _get(s3_client, bucket, "data/plain.bin.kms")
    assert written.file_size == len(stored)
    assert written.plaintext_size == LARGE_SIZE
    assert kmsnb.envelope.inspect(url, storage_options=s3_options) == written
    back = tmp_path / "back.bin"
    read = kmsnb.decrypt_file(url, back, kms=kms, storage_options=s3_options)
    assert back.read_bytes() == plaintext.read_bytes()
    assert read.file_size == len(stored)
    assert pending_uploads(s3_client, bucket) == []


def test_an_object_encrypts_and_decrypts_to_objects(
    plaintext: Path,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    s3_client.put_object(Bucket=bucket, Key="plain.bin", Body=plaintext.read_bytes())
    source, encrypted, decrypted = (f"s3://{bucket}/{name}" for name in ("plain.bin", "x.kms", "y"))
    kmsnb.encrypt_file(source, encrypted, key_id, kms=kms, storage_options=s3_options)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms, storage_options=s3_options)
    assert _get(s3_client, bucket, "y") == plaintext.read_bytes()
    assert object_keys(s3_client, bucket) == ["plain.bin", "x.kms", "y"]


def test_a_small_file_round_trips(
    tmp_path: Path, bucket: str, s3_options: dict[str, Any], kms: InMemoryKms, key_id: str
) -> None:
    for size in (0, 1, 70_000):
        data = os.urandom(size)
        (tmp_path / "small").write_bytes(data)
        url = f"s3://{bucket}/small-{size}.kms"
        kmsnb.encrypt_file(tmp_path / "small", url, key_id, kms=kms, storage_options=s3_options)
        kmsnb.decrypt_file(
            url, tmp_path / "back", kms=kms, storage_options=s3_options, overwrite=True
        )
        assert (tmp_path / "back").read_bytes() == data


@contextlib.contextmanager
def _interrupt_after(size: int) -> Iterator[None]:
    """Ctrl-C once ``size`` bytes of plaintext went through the progress bar's count."""

    @contextlib.contextmanager
    def bar(total: int | None, label: str, *, show: bool | None) -> Iterator[Callable[[int], None]]:
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if done >= size:
                raise KeyboardInterrupt

        yield advance

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_file_ops, "progress_bar", bar)
        yield


def test_an_encryption_interrupted_mid_upload_leaves_no_object(
    plaintext: Path,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    """Parts were uploaded (over two parts' worth of plaintext), then Ctrl-C."""
    url = f"s3://{bucket}/x.kms"
    with _interrupt_after(LARGE_SIZE - 1024), pytest.raises(KeyboardInterrupt):
        kmsnb.encrypt_file(plaintext, url, key_id, kms=kms, storage_options=s3_options)
    assert object_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_a_failed_overwrite_keeps_the_old_object(
    plaintext: Path,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    s3_client.put_object(Bucket=bucket, Key="x.kms", Body=b"the old object")
    url = f"s3://{bucket}/x.kms"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        kmsnb.encrypt_file(plaintext, url, key_id, kms=kms, storage_options=s3_options)
    with _interrupt_after(LARGE_SIZE - 1024), pytest.raises(KeyboardInterrupt):
        kmsnb.encrypt_file(
            plaintext, url, key_id, kms=kms, storage_options=s3_options, overwrite=True
        )
    assert _get(s3_client, bucket, "x.kms") == b"the old object"
    assert pending_uploads(s3_client, bucket) == []


def test_a_decryption_that_fails_to_verify_publishes_nothing(
    tmp_path: Path,
    plaintext: Path,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    """A chunk near the end is tampered with: over two parts of verified plaintext were
    uploaded before it, and none of it becomes an object."""
    encrypted = tmp_path / "x.kms"
    kmsnb.encrypt_file(plaintext, encrypted, key_id, kms=kms)
    data = bytearray(encrypted.read_bytes())
    data[-100] ^= 1
    s3_client.put_object(Bucket=bucket, Key="x.kms", Body=bytes(data))
    with pytest.raises(IntegrityError):
        kmsnb.decrypt_file(
            f"s3://{bucket}/x.kms", f"s3://{bucket}/plain", kms=kms, storage_options=s3_options
        )
    assert object_keys(s3_client, bucket) == ["x.kms"]
    assert pending_uploads(s3_client, bucket) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:9/x.kms",  # fsspec has an ftp:// implementation; not atomic
        "simplecache::s3://bucket/x.kms",  # chained: not writable
        "nosuchprotocol://bucket/x.kms",
    ],
)
def test_a_url_kmsnb_cannot_write_is_refused_before_the_kms_and_the_disk(
    tmp_path: Path,
    plaintext: Path,
    url: str,
    kms: InMemoryKms,
    key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsupportedStorageError, match="cannot"):
        kmsnb.encrypt_file(plaintext, url, key_id, kms=kms)
    encrypted = tmp_path / "x.kms"
    kmsnb.encrypt_file(plaintext, encrypted, key_id, kms=kms)
    calls = dict(kms.calls)
    with pytest.raises(UnsupportedStorageError, match="cannot"):
        kmsnb.decrypt_file(encrypted, url, kms=kms)
    assert dict(kms.calls) == calls
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "x.kms"])  # no ./ftp:/ folder


def test_storage_options_need_a_url(
    tmp_path: Path, plaintext: Path, kms: InMemoryKms, key_id: str
) -> None:
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        kmsnb.encrypt_file(
            plaintext, tmp_path / "x.kms", key_id, kms=kms, storage_options={"anon": True}
        )
    kmsnb.encrypt_file(plaintext, tmp_path / "x.kms", key_id, kms=kms)
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        kmsnb.envelope.inspect(tmp_path / "x.kms", storage_options={"anon": True})


def test_a_missing_object_is_file_not_found(
    tmp_path: Path, bucket: str, s3_options: dict[str, Any], kms: InMemoryKms
) -> None:
    url = f"s3://{bucket}/missing.kms"
    with pytest.raises(FileNotFoundError):
        kmsnb.decrypt_file(url, tmp_path / "out", kms=kms, storage_options=s3_options)
    with pytest.raises(FileNotFoundError):
        kmsnb.envelope.inspect(url, storage_options=s3_options)
    assert not (tmp_path / "out").exists()
