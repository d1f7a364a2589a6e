"""An S3 server for the storage tests: moto, started on 127.0.0.1 on a free port by the
session and stopped after; each test gets a fresh bucket and s3fs options for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from s3_server import PROXY_VARIABLES, moto_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server that lives for the session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """s3fs options for the test server (no instance cache: each test its own client)."""
    return {
        "endpoint_url": s3_endpoint,
        "key": "testing",
        "secret": "testing",
        "skip_instance_cache": True,
    }


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket."""
    name = f"kmsnb-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def pending_uploads(s3_client: Any, bucket: str) -> list[dict[str, Any]]:
    """The bucket's incomplete multipart uploads."""
    found: list[dict[str, Any]] = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return found


def object_keys(s3_client: Any, bucket: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)
