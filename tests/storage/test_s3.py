"""open_output / open_input on s3:// against a real S3-protocol server (moto, 127.0.0.1):
streaming in parts, nothing visible before the commit, nothing left after a failure, an
old object kept, and a conditional create that one of two racing writers wins."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest

from kmsnb.storage import MIN_PART_SIZE, open_input, open_output

from .conftest import object_keys, pending_uploads

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE
STEP = 64 * 1024


class Boom(Exception):
    """The failure a test injects mid-write."""


def _fail_midway(url: Any, data: bytes, error: BaseException | None = None, **options: Any) -> None:
    """Write ``data`` through open_output, then fail inside the block."""
    with open_output(url, **options) as output:
        output.write(data)
        raise error if error is not None else Boom


def _body_ran(url: Any, **options: Any) -> bool:
    """Whether open_output let the block run (it raises first when it refuses)."""
    entered = False
    with open_output(url, **options):
        entered = True
    return entered


def _url(bucket: str, key: str = "data.kms") -> str:
    return f"s3://{bucket}/{key}"


def _get(s3_client: Any, bucket: str, key: str = "data.kms") -> bytes:
    data: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_a_small_write_round_trips(bucket: str, s3_options: dict[str, Any]) -> None:
    with open_output(_url(bucket), storage_options=s3_options) as output:
        output.write(b"hello ")
        output.write(b"world")
    with open_input(_url(bucket), storage_options=s3_options) as source:
        assert source.read() == b"hello world"


def test_a_large_write_goes_out_in_parts_while_it_is_written(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    """Memory stays near one part: after each write, all but at most one part's worth of
    what was written has been uploaded, and nothing is visible before the commit."""
    data = os.urandom(3 * PART + 3 * STEP + 100)  # the last writes fill no part
    written = 0
    uploaded_sizes: list[int] = []
    with open_output(_url(bucket), storage_options=s3_options, part_size=PART) as output:
        for start in range(0, len(data), STEP):
            written += output.write(data[start : start + STEP])
            if written % PART < STEP and written >= PART:  # just after a part filled
                (upload,) = pending_uploads(s3_client, bucket)
                parts = s3_client.list_parts(
                    Bucket=bucket, Key="data.kms", UploadId=upload["UploadId"]
                ).get("Parts", [])
                uploaded = sum(part["Size"] for part in parts)
                uploaded_sizes.append(uploaded)
                assert written - uploaded <= PART + STEP
                assert object_keys(s3_client, bucket) == []
    assert len(uploaded_sizes) == 3
    assert uploaded_sizes == sorted(uploaded_sizes)
    assert uploaded_sizes[-1] >= 3 * PART - STEP
    assert _get(s3_client, bucket) == data
    assert pending_uploads(s3_client, bucket) == []


def test_an_exception_mid_write_leaves_no_object_and_no_upload(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    with pytest.raises(Boom):
        _fail_midway(_url(bucket), os.urandom(2 * PART + 7), storage_options=s3_options)
    assert object_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_a_failed_overwrite_keeps_the_old_object(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    s3_client.put_object(Bucket=bucket, Key="data.kms", Body=b"old")
    with pytest.raises(KeyboardInterrupt):
        _fail_midway(
            _url(bucket),
            os.urandom(PART + 1),
            KeyboardInterrupt(),
            overwrite=True,
            storage_options=s3_options,
        )
    assert _get(s3_client, bucket) == b"old"
    assert pending_uploads(s3_client, bucket) == []


def test_overwrite_replaces_the_object_whole(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    s3_client.put_object(Bucket=bucket, Key="data.kms", Body=b"old")
    new = os.urandom(PART + 99)
    with open_output(
        _url(bucket), overwrite=True, storage_options=s3_options, part_size=PART
    ) as output:
        output.write(new)
    assert _get(s3_client, bucket) == new


def test_an_existing_object_is_refused_before_any_work(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    s3_client.put_object(Bucket=bucket, Key="data.kms", Body=b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _body_ran(_url(bucket), storage_options=s3_options)
    assert _get(s3_client, bucket) == b"old"


@pytest.mark.parametrize("size", [5, 2 * PART + 3], ids=["single-put", "multipart"])
def test_of_two_racing_creators_exactly_one_wins(
    bucket: str, s3_options: dict[str, Any], s3_client: Any, size: int
) -> None:
    """Both pass the early existence check; the store's If-None-Match referees the
    commits: the first wins, the second gets FileExistsError and leaves nothing."""
    first, second = os.urandom(size), os.urandom(size)
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(open_output(_url(bucket), storage_options=s3_options))
        other_writer = open_output(_url(bucket), storage_options=s3_options)
        other = other_writer.__enter__()
        one.write(first)
        other.write(second)
        stack.close()  # the first commits
        with pytest.raises(FileExistsError, match="exists"):
            other_writer.__exit__(None, None, None)
    assert _get(s3_client, bucket) == first
    assert pending_uploads(s3_client, bucket) == []


def test_an_empty_object_is_created_exclusively(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    with open_output(_url(bucket), storage_options=s3_options):
        pass
    assert _get(s3_client, bucket) == b""
    racing = open_output(_url(bucket, "empty"), storage_options=s3_options)
    racing.__enter__()
    s3_client.put_object(Bucket=bucket, Key="empty", Body=b"theirs")
    with pytest.raises(FileExistsError):
        racing.__exit__(None, None, None)
    assert _get(s3_client, bucket, "empty") == b"theirs"


def test_reads_are_seekable_ranged_reads(
    bucket: str, s3_options: dict[str, Any], s3_client: Any
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    s3_client.put_object(Bucket=bucket, Key="data.kms", Body=data)
    with open_input(_url(bucket), storage_options=s3_options, block_size=1024 * 1024) as source:
        assert source.seekable()
        source.seek(len(data) - 10)
        assert source.read() == data[-10:]
        source.seek(5)
        assert source.read(20) == data[5:25]


def test_a_missing_object_is_file_not_found(bucket: str, s3_options: dict[str, Any]) -> None:
    with pytest.raises(FileNotFoundError):
        open_input(_url(bucket, "absent"), storage_options=s3_options)


def _leave_an_upload(s3_client: Any, bucket: str, key: str) -> str:
    """What a writer killed mid-upload leaves: an incomplete multipart upload with a part."""
    upload_id: str = s3_client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3_client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(PART)
    )
    return upload_id


def test_the_next_write_aborts_stale_uploads_of_its_key_only(
    bucket: str, s3_options: dict[str, Any], s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmsnb.storage import _open

    _leave_an_upload(s3_client, bucket, "data.kms")
    other = _leave_an_upload(s3_client, bucket, "data.kms.other")
    # Uploads younger than the bound may be another writer's, in flight: kept. (moto
    # dates every upload 2010-11-10, so "young" is an infinite bound here.)
    monkeypatch.setattr(_open, "STALE_UPLOAD_AFTER_S", float("inf"))
    with open_output(_url(bucket), storage_options=s3_options) as output:
        output.write(b"first")
    assert len(pending_uploads(s3_client, bucket)) == 2
    # Once stale, the next write to the key aborts its own, not the other key's.
    monkeypatch.setattr(_open, "STALE_UPLOAD_AFTER_S", 0.0)
    with open_output(_url(bucket), storage_options=s3_options, overwrite=True) as output:
        output.write(b"second")
    assert [upload["UploadId"] for upload in pending_uploads(s3_client, bucket)] == [other]
    assert _get(s3_client, bucket) == b"second"
