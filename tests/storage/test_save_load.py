"""kmsnb.save / kmsnb.load / kmsnb.inspect on s3:// against a real S3-protocol server (moto,
127.0.0.1): every kind of value round trips, the receipt describes the object as stored,
a save that fails mid-upload leaves no object, and unwritable URLs are refused."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kmsnb
from kmsnb.errors import UnsupportedStorageError
from kmsnb.testing import InMemoryKms

from .conftest import object_keys, pending_uploads

pytestmark = pytest.mark.integration


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"region": ["north", "south", "east"], "amount": [1.5, 2.0, 3.25]})


def _get(s3_client: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def _check_receipt(saved: kmsnb.Saved, s3_client: Any, bucket: str, key: str) -> None:
    stored = _get(s3_client, bucket, key)
    assert saved.path == f"s3://{bucket}/{key}"
    assert saved.ciphertext_size == len(stored)
    assert saved.sha256 == hashlib.sha256(stored).hexdigest()


@pytest.mark.parametrize(
    ("name", "options", "content"),
    [
        ("sales.parquet.kms", {}, "parquet"),
        ("sales.csv.kms", {}, "csv"),
        ("sales.parquet", {"columns": ["region"]}, "parquet"),
    ],
)
def test_a_dataframe_round_trips(
    frame: pd.DataFrame,
    name: str,
    options: dict[str, Any],
    content: str,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    url = f"s3://{bucket}/{name}"
    saved = kmsnb.save(frame, url, key_id, kms=kms, storage_options=s3_options, **options)
    assert (saved.content, saved.shape, saved.column_mode) == (
        content,
        (3, 2),
        "columns" in options,
    )
    _check_receipt(saved, s3_client, bucket, name)
    loaded = kmsnb.load(url, kms=kms, storage_options=s3_options)
    pd.testing.assert_frame_equal(frame, loaded)
    projected = kmsnb.load(url, kms=kms, storage_options=s3_options, columns=["amount"])
    pd.testing.assert_frame_equal(frame[["amount"]], projected)
    info = kmsnb.inspect(url, storage_options=s3_options)
    assert isinstance(info, kmsnb.FileInfo) != ("columns" in options)


@pytest.mark.parametrize("value", [b"\x00secret bytes", "a saved str, é", b""])
def test_bytes_and_str_round_trip(
    value: bytes | str,
    bucket: str,
    s3_options: dict[str, Any],
    s3_client: Any,
    kms: InMemoryKms,
    key_id: str,
) -> None:
    url = f"s3://{bucket}/value.kms"
    saved = kmsnb.save(value, url, key_id, kms=kms, storage_options=s3_options)
    _check_receipt(saved, s3_client, bucket, "value.kms")
    assert kmsnb.load(url, kms=kms, storage_options=s3_options) == value


def test_a_large_stream_round_trips_in_parts(
    bucket: str, s3_options: dict[str, Any], s3_client: Any, kms: InMemoryKms, key_id: str
) -> None:
    data = os.urandom(17 * 1024 * 1024 + 3)
    url = f"s3://{bucket}/stream.kms"
    saved = kmsnb.save(io.BytesIO(data), url, key_id, kms=kms, storage_options=s3_options)
    _check_receipt(saved, s3_client, bucket, "stream.kms")
    assert saved.plaintext_size == len(data)
    assert kmsnb.load(url, kms=kms, storage_options=s3_options) == data


class _FailingSource(io.RawIOBase):
    """A binary file that gives ``size`` random bytes, then fails to read."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise OSError("the source disk went away")
        count = min(len(buffer), self._left)
        buffer[:count] = os.urandom(count)
        self._left -= count
        return count


def test_a_save_that_fails_mid_upload_leaves_no_object(
    bucket: str, s3_options: dict[str, Any], s3_client: Any, kms: InMemoryKms, key_id: str
) -> None:
    """Two parts' worth went out, then the source failed: no object, no pending upload,
    and an old object is kept whole."""
    url = f"s3://{bucket}/stream.kms"
    with pytest.raises(OSError, match="went away"):
        kmsnb.save(
            _FailingSource(18 * 1024 * 1024), url, key_id, kms=kms, storage_options=s3_options
        )
    assert object_keys(s3_client, bucket) == []
    s3_client.put_object(Bucket=bucket, Key="stream.kms", Body=b"old")
    with pytest.raises(OSError, match="went away"):
        kmsnb.save(
            _FailingSource(18 * 1024 * 1024),
            url,
            key_id,
            kms=kms,
            storage_options=s3_options,
            overwrite=True,
        )
    assert _get(s3_client, bucket, "stream.kms") == b"old"
    assert pending_uploads(s3_client, bucket) == []


def test_an_existing_object_is_kept_and_costs_no_kms_call(
    frame: pd.DataFrame, bucket: str, s3_options: dict[str, Any], kms: InMemoryKms, key_id: str
) -> None:
    url = f"s3://{bucket}/sales.parquet.kms"
    kmsnb.save(frame, url, key_id, kms=kms, storage_options=s3_options)
    calls = dict(kms.calls)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        kmsnb.save(frame, url, key_id, kms=kms, storage_options=s3_options)
    assert dict(kms.calls) == calls
    saved = kmsnb.save(
        frame.head(1), url, key_id, kms=kms, storage_options=s3_options, overwrite=True
    )
    assert saved.shape == (1, 2)
    assert len(kmsnb.load(url, kms=kms, storage_options=s3_options)) == 1


def test_an_unwritable_url_is_refused_and_nothing_is_written(
    tmp_path: Path,
    frame: pd.DataFrame,
    kms: InMemoryKms,
    key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for value in (frame, b"bytes"):
        with pytest.raises(UnsupportedStorageError, match="cannot write"):
            kmsnb.save(value, "ftp://127.0.0.1:9/x.kms", key_id, kms=kms)
    assert dict(kms.calls) == {}
    assert os.listdir(tmp_path) == []


def test_storage_options_need_a_url(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        kmsnb.save(b"x", tmp_path / "x.kms", key_id, kms=kms, storage_options={"anon": True})
    kmsnb.save(b"x", tmp_path / "x.kms", key_id, kms=kms)
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        kmsnb.load(tmp_path / "x.kms", kms=kms, storage_options={"anon": True})
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        kmsnb.inspect(tmp_path / "x.kms", storage_options={"anon": True})
