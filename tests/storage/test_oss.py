"""oss:// through the OSS SDK v2, against a small OSS server on 127.0.0.1 (fake_oss):
the credential chain and endpoint mapping, streaming parts, atomic and exclusive
writes (x-oss-forbid-overwrite), ranged reads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from kmsnb.storage import MIN_PART_SIZE, endpoint_for, open_input, open_output, oss_settings

from .fake_oss import FakeOss, serve_fake_oss

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE
URL = "oss://bucket/dir/data.kms"
KEY = ("bucket", "dir/data.kms")


class Boom(Exception):
    """The failure a test injects mid-write."""


def _fail_midway(url: Any, data: bytes, error: BaseException | None = None, **options: Any) -> None:
    """Write ``data`` through open_output, then fail inside the block."""
    with open_output(url, **options) as output:
        output.write(data)
        raise error if error is not None else Boom


@pytest.fixture
def oss() -> Iterator[FakeOss]:
    with serve_fake_oss() as state:
        yield state


@pytest.fixture
def options(oss: FakeOss) -> dict[str, Any]:
    return {"endpoint": oss.endpoint, "region": "cn-hangzhou", "key": "AKIDTEST", "secret": "s"}


@pytest.mark.unit
def test_the_endpoint_comes_from_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_REGION_ID", "cn-shanghai")
    assert oss_settings({}).endpoint == "oss-cn-shanghai.aliyuncs.com"
    assert oss_settings({"region": "eu-central-1"}).endpoint == endpoint_for("eu-central-1")
    internal = oss_settings({"region": "cn-beijing", "internal": True})
    assert internal.endpoint == "oss-cn-beijing-internal.aliyuncs.com"
    given = oss_settings({"region": "cn-beijing", "endpoint": "https://oss.example"})
    assert given.endpoint == "https://oss.example"


@pytest.mark.unit
def test_misused_options_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIBABA_CLOUD_REGION_ID", raising=False)
    with pytest.raises(ValueError, match="needs a region"):
        oss_settings({})
    with pytest.raises(ValueError, match=r"unknown storage_options .*'endpoint_url'"):
        oss_settings({"region": "cn-hangzhou", "endpoint_url": "x"})
    with pytest.raises(ValueError, match="both 'key' and 'secret'"):
        oss_settings({"region": "cn-hangzhou", "key": "AK"})


@pytest.mark.unit
def test_credentials_default_to_the_alibaba_cloud_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The KMS side's chain: the ALIBABA_CLOUD_* variables, read when asked."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKIDCHAIN")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "chain-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "chain-token")
    credential = oss_settings({"region": "cn-hangzhou"}).credential.get_credential()
    assert credential.access_key_id == "AKIDCHAIN"
    assert credential.security_token == "chain-token"
    assert "chain-secret" not in repr(oss_settings({"region": "cn-hangzhou"}))


def test_requests_are_signed_with_the_chain_credentials(
    oss: FakeOss, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKIDCHAIN")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "chain-secret")
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    with open_output(
        URL, storage_options={"endpoint": oss.endpoint, "region": "cn-hangzhou"}
    ) as out:
        out.write(b"x")
    (put,) = [r for r in oss.requests if r.method == "PUT"]
    assert "AKIDCHAIN" in put.headers["authorization"]
    assert "chain-secret" not in put.headers["authorization"]


def test_a_small_write_is_one_exclusive_put(oss: FakeOss, options: dict[str, Any]) -> None:
    with open_output(URL, storage_options=options) as output:
        output.write(b"hello")
        assert KEY not in oss.objects
    assert oss.objects[KEY] == b"hello"
    (put,) = [r for r in oss.requests if r.method == "PUT"]
    assert put.headers["x-oss-forbid-overwrite"] == "true"


def test_a_large_write_streams_parts_and_appears_at_the_complete(
    oss: FakeOss, options: dict[str, Any]
) -> None:
    data = os.urandom(3 * PART + 1000)
    step = 256 * 1024
    with open_output(URL, storage_options=options, part_size=PART) as output:
        for start in range(0, len(data), step):
            output.write(data[start : start + step])
            uploaded = sum(len(part) for parts in oss.uploads.values() for part in parts.values())
            assert start + step - uploaded <= PART
            assert KEY not in oss.objects
    assert oss.objects[KEY] == data
    assert oss.uploads == {}
    complete = [r for r in oss.requests if r.method == "POST" and "uploadId" in r.query]
    assert complete[0].headers["x-oss-forbid-overwrite"] == "true"


def test_an_exception_mid_write_aborts_the_upload(oss: FakeOss, options: dict[str, Any]) -> None:
    with pytest.raises(Boom):
        _fail_midway(URL, os.urandom(2 * PART), storage_options=options)
    assert oss.objects == {}
    assert oss.uploads == {}


def test_a_failed_overwrite_keeps_the_old_object(oss: FakeOss, options: dict[str, Any]) -> None:
    oss.objects[KEY] = b"old"
    with pytest.raises(Boom):
        _fail_midway(URL, os.urandom(PART + 5), overwrite=True, storage_options=options)
    assert oss.objects[KEY] == b"old"
    with open_output(URL, overwrite=True, storage_options=options) as output:
        output.write(b"new")
    assert oss.objects[KEY] == b"new"


@pytest.mark.parametrize("size", [5, PART + 5], ids=["single-put", "multipart"])
def test_of_two_racing_creators_exactly_one_wins(
    oss: FakeOss, options: dict[str, Any], size: int
) -> None:
    first, second = os.urandom(size), os.urandom(size)
    with contextlib.ExitStack() as stack:
        stack.enter_context(open_output(URL, storage_options=options)).write(first)
        loser = open_output(URL, storage_options=options)
        loser.__enter__().write(second)
        stack.close()
        with pytest.raises(FileExistsError, match="overwrite=True"):
            loser.__exit__(None, None, None)
    assert oss.objects[KEY] == first
    assert oss.uploads == {}


def test_reads_are_seekable(oss: FakeOss, options: dict[str, Any]) -> None:
    data = os.urandom(300_000)
    oss.objects[KEY] = data
    with open_input(URL, storage_options=options, block_size=64 * 1024) as source:
        source.seek(len(data) - 7)
        assert source.read() == data[-7:]
        source.seek(100)
        assert source.read(50) == data[100:150]
    with pytest.raises(FileNotFoundError):
        open_input("oss://bucket/absent", storage_options=options)
