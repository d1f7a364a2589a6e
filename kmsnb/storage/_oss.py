"""``oss://bucket/key`` through Alibaba's OSS SDK v2 (``alibabacloud-oss-v2``, ``kmsnb[oss]``).

**Why this SDK and not ossfs or OSS's S3 API.** ``ossfs``' ``open("wb")`` deletes the old
object, then appends to the final key at every flush, and ignores ``autocommit=False``: a
failure leaves the old object gone and a partial one in its place, and it has no
exclusive create. OSS's S3-compatible endpoint needs V2 signing through s3fs, and whether
it honours ``If-None-Match`` is undocumented. The SDK v2 speaks OSS's own multipart
upload, whose object appears only at CompleteMultipartUpload, and sends
``x-oss-forbid-overwrite: true`` there and on PutObject: a conditional create refereed by
OSS (HTTP 409 ``FileAlreadyExists``). So writes stream part by part, are atomic, and
``overwrite=False`` is exclusive.

**Credentials** come from the Alibaba Cloud default chain that kmsnb's KMS backend uses
(``alibabacloud_credentials``: ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``/
``_SECURITY_TOKEN``, the CLI profile, ``~/.alibabacloud/credentials.ini``, the ECS RAM
role, OIDC), asked at every request so that STS credentials refresh, unless
``storage_options`` give ``key``/``secret`` (and ``token``) or a ``credential`` (anything
with ``get_credential()``). **The endpoint** is ``endpoint`` if given, else
``oss-REGION.aliyuncs.com`` (``oss-REGION-internal.aliyuncs.com`` with ``internal=True``)
for ``region`` or ``ALIBABA_CLOUD_REGION_ID``.

A killed upload leaves an incomplete multipart upload, which readers never see and which
a bucket lifecycle rule ("abort incomplete multipart uploads after N days") removes.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from kmsnb.errors import UnsupportedStorageError

__all__ = ["OSS_OPTIONS", "OssSettings", "OssWriter", "endpoint_for", "oss_settings"]

#: The ``storage_options`` an ``oss://`` URL accepts.
OSS_OPTIONS: Final = frozenset(
    {"region", "endpoint", "internal", "key", "secret", "token", "credential", "client"}
)
_REGION_VARIABLE: Final = "ALIBABA_CLOUD_REGION_ID"


@dataclass(frozen=True)
class OssSettings:
    """What the client is built from (never the secret: that stays in ``credential``)."""

    region: str
    endpoint: str
    credential: Any = field(repr=False)


def endpoint_for(region: str, *, internal: bool = False) -> str:
    """OSS's public (or ``internal``, from inside Alibaba Cloud) endpoint of ``region``."""
    return f"oss-{region}{'-internal' if internal else ''}.aliyuncs.com"


def oss_settings(storage_options: Mapping[str, Any]) -> OssSettings:
    """Map ``storage_options`` (and the environment) to a region, endpoint and credential.

    Raises:
        ValueError: an unknown option, half an AccessKey pair, or neither a region nor an
            endpoint.
    """
    unknown = sorted(set(storage_options) - OSS_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown storage_options for oss:// {unknown}; accepted: {sorted(OSS_OPTIONS)}"
        )
    # Requests are signed (V4) for a region, so one is needed even with an endpoint.
    region = storage_options.get("region") or os.environ.get(_REGION_VARIABLE)
    if not region:
        raise ValueError(
            f"oss:// needs a region: pass storage_options={{'region': ...}} or set "
            f"{_REGION_VARIABLE}"
        )
    endpoint = storage_options.get("endpoint") or endpoint_for(
        region, internal=bool(storage_options.get("internal"))
    )
    return OssSettings(region, endpoint, _credential(storage_options))


def _credential(storage_options: Mapping[str, Any]) -> Any:
    given = storage_options.get("credential")
    key, secret = storage_options.get("key"), storage_options.get("secret")
    if given is not None:
        return given
    if (key is None) != (secret is None):
        raise ValueError("oss:// storage_options need both 'key' and 'secret', or neither")
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    token = storage_options.get("token")
    if key is not None:
        kind = "sts" if token else "access_key"
        return Client(
            Config(type=kind, access_key_id=key, access_key_secret=secret, security_token=token)
        )
    # The KMS backend's order: the live AccessKey variables first (alibabacloud_credentials
    # snapshots os.environ at its first import), then the SDK's default chain.
    variable_key = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    variable_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    variable_token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")
    if variable_key and variable_secret:
        return Client(
            Config(
                type="sts" if variable_token else "access_key",
                access_key_id=variable_key,
                access_key_secret=variable_secret,
                security_token=variable_token or None,
            )
        )
    return Client()


def make_client(storage_options: Mapping[str, Any]) -> Any:
    """An ``alibabacloud_oss_v2.Client`` for these options (``client`` passes through)."""
    given = storage_options.get("client")
    if given is not None:
        return given
    try:
        import alibabacloud_oss_v2 as oss
    except ImportError:
        raise UnsupportedStorageError(
            "cannot open oss:// URLs: the OSS SDK is not installed; install kmsnb[oss]"
        ) from None
    settings = oss_settings(storage_options)

    def credentials() -> Any:
        found = settings.credential.get_credential()
        return oss.credentials.Credentials(
            access_key_id=found.access_key_id,
            access_key_secret=found.access_key_secret,
            security_token=found.security_token or None,
        )

    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.CredentialsProviderFunc(credentials)
    config.region = settings.region
    config.endpoint = settings.endpoint
    return oss.Client(config)


def split_path(path: str) -> tuple[str, str]:
    """``bucket/key`` -> (bucket, key); a bare bucket has key ``""``."""
    bucket, _, key = path.partition("/")
    if not bucket:
        raise ValueError(f"oss://{path} names no bucket")
    return bucket, key


def _service_code(error: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and OSS error code behind an SDK error, if it carries one."""
    seen = error
    for _ in range(4):  # OperationError wraps ServiceError
        status = getattr(seen, "status_code", None)
        if status:
            return int(status), getattr(seen, "code", None)
        unwrap = getattr(seen, "unwrap", None)
        if unwrap is None:
            break
        inner = unwrap()
        if inner is None or inner is seen:
            break
        seen = inner
    return None, None


def _is_exists(error: BaseException) -> bool:
    status, code = _service_code(error)
    return code == "FileAlreadyExists" or (status == 409 and code is None)


def _is_missing(error: BaseException) -> bool:
    status, code = _service_code(error)
    return status == 404 or code == "NoSuchKey"


class OssWriter(io.RawIOBase):
    """A streaming, atomic writer of one OSS object.

    Bytes are buffered up to ``part_size``; each full part is uploaded at once
    (UploadPart), so memory stays near one part. :meth:`commit` makes the object appear in
    one step: CompleteMultipartUpload, or one PutObject when the data never filled a
    part; with ``overwrite=False`` either carries ``x-oss-forbid-overwrite: true``.
    :meth:`discard` aborts the upload; nothing was ever visible.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, *, overwrite: bool, part_size: int, url: str
    ) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._overwrite, self._part_size, self._url = overwrite, part_size, url
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Any] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) >= self._part_size:
            self._upload_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]
        return len(view)

    @property
    def buffered_size(self) -> int:
        """Bytes held in memory, not yet sent (at most ``part_size`` between writes)."""
        return len(self._buffer)

    def _upload_part(self, body: bytes) -> None:
        import alibabacloud_oss_v2 as oss

        if self._upload_id is None:
            started = self._client.initiate_multipart_upload(
                oss.InitiateMultipartUploadRequest(
                    bucket=self._bucket,
                    key=self._key,
                    forbid_overwrite=None if self._overwrite else True,
                )
            )
            self._upload_id = started.upload_id
        number = len(self._parts) + 1
        sent = self._client.upload_part(
            oss.UploadPartRequest(
                bucket=self._bucket,
                key=self._key,
                upload_id=self._upload_id,
                part_number=number,
                body=body,
            )
        )
        self._parts.append(oss.UploadPart(part_number=number, etag=sent.etag))

    def commit(self) -> None:
        """Publish the object; ``FileExistsError`` if it exists and overwrite is false."""
        import alibabacloud_oss_v2 as oss

        forbid = None if self._overwrite else True
        try:
            if self._upload_id is None:
                self._client.put_object(
                    oss.PutObjectRequest(
                        bucket=self._bucket,
                        key=self._key,
                        body=bytes(self._buffer),
                        forbid_overwrite=forbid,
                    )
                )
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._client.complete_multipart_upload(
                    oss.CompleteMultipartUploadRequest(
                        bucket=self._bucket,
                        key=self._key,
                        upload_id=self._upload_id,
                        complete_multipart_upload=oss.CompleteMultipartUpload(parts=self._parts),
                        forbid_overwrite=forbid,
                    )
                )
                self._upload_id = None
        except Exception as error:
            if _is_exists(error):
                raise FileExistsError(
                    f"{self._url} exists; pass overwrite=True to replace it"
                ) from None
            raise
        finally:
            self._buffer = bytearray()

    def discard(self) -> None:
        """Abort the upload (best effort: a lifecycle rule removes what a failure leaves)."""
        import alibabacloud_oss_v2 as oss

        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    oss.AbortMultipartUploadRequest(
                        bucket=self._bucket, key=self._key, upload_id=upload_id
                    )
                )


class _OssReader(io.RawIOBase):
    """Ranged reads of one object (the SDK's ``ReadOnlyFile``, which also checks that the
    object's ETag does not change while it is read)."""

    def __init__(self, opened: Any) -> None:
        super().__init__()
        self._opened = opened

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return int(self._opened.readinto(buffer))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._opened.seek(offset, whence))

    def tell(self) -> int:
        return int(self._opened.tell())

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._opened.close()
        super().close()


@contextlib.contextmanager
def open_oss_output(
    path: str, *, overwrite: bool, storage_options: Mapping[str, Any], part_size: int, url: str
) -> Iterator[BinaryIO]:
    """The OSS branch of :func:`kmsnb.storage.open_output`."""
    bucket, key = split_path(path)
    if not key:
        raise IsADirectoryError(f"{url} names a bucket, not an object")
    client = make_client(storage_options)
    writer = OssWriter(client, bucket, key, overwrite=overwrite, part_size=part_size, url=url)
    try:
        yield writer  # type: ignore[misc]  # a RawIOBase of bytes: a binary writer
        writer.commit()
    except BaseException:
        writer.discard()
        raise


def open_oss_input(
    path: str, *, storage_options: Mapping[str, Any], block_size: int, url: str
) -> BinaryIO:
    """The OSS branch of :func:`kmsnb.storage.open_input`."""
    bucket, key = split_path(path)
    client = make_client(storage_options)
    try:
        opened = client.open_file(bucket, key)
    except Exception as error:
        if _is_missing(error):
            raise FileNotFoundError(f"{url} does not exist") from None
        raise
    return io.BufferedReader(_OssReader(opened), buffer_size=block_size)


def list_oss(path: str, storage_options: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """(key, modified time) of every object under the prefix ``bucket/prefix``."""
    import alibabacloud_oss_v2 as oss

    bucket, prefix = split_path(path)
    client = make_client(storage_options)
    found: list[tuple[str, float | None]] = []
    pages = client.list_objects_v2_paginator()
    for page in pages.iter_page(oss.ListObjectsV2Request(bucket=bucket, prefix=prefix)):
        for item in page.contents or []:
            modified = item.last_modified.timestamp() if item.last_modified else None
            found.append((f"{bucket}/{item.key}", modified))
    return found


def delete_oss(paths: list[str], storage_options: Mapping[str, Any]) -> None:
    """Delete objects (``bucket/key``), 1,000 per request as OSS allows."""
    import alibabacloud_oss_v2 as oss

    client = make_client(storage_options)
    by_bucket: dict[str, list[str]] = {}
    for path in paths:
        bucket, key = split_path(path)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            batch = [oss.DeleteObject(key=key) for key in keys[start : start + 1000]]
            client.delete_multiple_objects(
                oss.DeleteMultipleObjectsRequest(bucket=bucket, objects=batch, quiet=True)
            )
