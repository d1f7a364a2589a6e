"""A small OSS server on 127.0.0.1 for the ``oss://`` tests (moto cannot stand in for OSS).

It speaks the part of OSS's REST API that kmsnb.storage uses, path-style (the SDK uses
path-style addressing for an IP endpoint): PutObject, the multipart upload calls,
HeadObject, ranged GetObject, ListObjectsV2 and DeleteMultipleObjects, with OSS's
semantics for ``x-oss-forbid-overwrite`` (409 ``FileAlreadyExists``) and objects that
appear only at PutObject or CompleteMultipartUpload. It records each request (method,
target, headers) so tests can check what the SDK sent; it checks no signature.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeOss:
    """The server's state: objects, uploads in progress, and the requests seen."""

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    modified: dict[tuple[str, str], float] = field(default_factory=dict)
    uploads: dict[str, dict[int, bytes]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""


def _iso(stamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{code}</Message><RequestId>fake</RequestId><HostId>fake</HostId></Error>"
    ).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("x-oss-request-id", "fake")
    handler.end_headers()
    handler.wfile.write(body)


def _make_handler(state: FakeOss) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _target(self) -> tuple[str, str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            query = parse_qs(parts.query, keep_blank_values=True)
            state.requests.append(
                Recorded(
                    self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}
                )
            )
            return bucket, key, query

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in {"x-oss-request-id": "fake", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forbidden(self, bucket: str, key: str) -> bool:
            forbid = self.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
            return forbid and (bucket, key) in state.objects

        def do_PUT(self) -> None:
            bucket, key, query = self._target()
            body = self._body()
            etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - OSS's ETag is an MD5
            with state.lock:
                if "uploadId" in query:
                    upload = state.uploads.get(query["uploadId"][0])
                    if upload is None:
                        return _error(self, 404, "NoSuchUpload")
                    upload[int(query["partNumber"][0])] = body
                    return self._reply(200, headers={"ETag": etag})
                if self._forbidden(bucket, key):
                    return _error(self, 409, "FileAlreadyExists")
                state.objects[(bucket, key)] = body
                state.modified[(bucket, key)] = time.time()
            self._reply(200, headers={"ETag": etag})

        def do_POST(self) -> None:
            bucket, key, query = self._target()
            body = self._body()
            with state.lock:
                if "uploads" in query:
                    upload_id = uuid.uuid4().hex
                    state.uploads[upload_id] = {}
                    xml = (
                        f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket>"
                        f"<Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId>"
                        f"</InitiateMultipartUploadResult>"
                    )
                    return self._reply(200, xml.encode(), {"Content-Type": "application/xml"})
                if "uploadId" in query:
                    upload_id = query["uploadId"][0]
                    if upload_id not in state.uploads:
                        return _error(self, 404, "NoSuchUpload")
                    if self._forbidden(bucket, key):
                        return _error(self, 409, "FileAlreadyExists")
                    numbers = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
                    parts = state.uploads.pop(upload_id)
                    state.objects[(bucket, key)] = b"".join(parts[n] for n in numbers)
                    state.modified[(bucket, key)] = time.time()
                    xml = (
                        f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket>"
                        f'<Key>{escape(key)}</Key><ETag>"done"</ETag>'
                        f"</CompleteMultipartUploadResult>"
                    )
                    return self._reply(200, xml.encode(), {"Content-Type": "application/xml"})
                if "delete" in query:
                    for name in re.findall(rb"<Key>(.*?)</Key>", body):
                        state.objects.pop((bucket, name.decode()), None)
                    xml = "<DeleteResult></DeleteResult>"
                    return self._reply(200, xml.encode(), {"Content-Type": "application/xml"})
            _error(self, 400, "InvalidRequest")

        def do_DELETE(self) -> None:
            bucket, key, query = self._target()
            with state.lock:
                if "uploadId" in query:
                    state.uploads.pop(query["uploadId"][0], None)
                else:
                    state.objects.pop((bucket, key), None)
            self._reply(204)

        def _object_headers(self, bucket: str, key: str, data: bytes) -> dict[str, str]:
            return {
                "ETag": f'"{hashlib.md5(data).hexdigest()}"',  # noqa: S324
                "Last-Modified": formatdate(state.modified.get((bucket, key), 0.0), usegmt=True),
                "Content-Type": "application/octet-stream",
            }

        def do_HEAD(self) -> None:
            bucket, key, _ = self._target()
            data = state.objects.get((bucket, key))
            if data is None:
                return _error(self, 404, "NoSuchKey")
            headers = self._object_headers(bucket, key, data)
            self.send_response(200)
            for name, value in {"x-oss-request-id": "fake", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

        def do_GET(self) -> None:
            bucket, key, query = self._target()
            if not key and query.get("list-type") == ["2"]:
                return self._list(bucket, query.get("prefix", [""])[0])
            data = state.objects.get((bucket, key))
            if data is None:
                return _error(self, 404, "NoSuchKey")
            headers = self._object_headers(bucket, key, data)
            wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if wanted is None:
                return self._reply(200, data, headers)
            start = int(wanted.group(1))
            end = min(int(wanted.group(2) or len(data) - 1), len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._reply(206, data[start : end + 1], headers)

        def _list(self, bucket: str, prefix: str) -> None:
            items = "".join(
                f"<Contents><Key>{escape(key)}</Key><Size>{len(data)}</Size>"
                f"<LastModified>{_iso(state.modified.get((name, key), 0.0))}</LastModified>"
                f'<ETag>"x"</ETag></Contents>'
                for (name, key), data in sorted(state.objects.items())
                if name == bucket and key.startswith(prefix)
            )
            xml = (
                f"<ListBucketResult><Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}"
                f"</ListBucketResult>"
            )
            self._reply(200, xml.encode(), {"Content-Type": "application/xml"})

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A reader that stops early resets its connection: not the server's business."""


@contextmanager
def serve_fake_oss() -> Iterator[FakeOss]:
    """Run the fake on 127.0.0.1, a free port, in a thread; stop it after."""
    state = FakeOss()
    server = _QuietServer(("127.0.0.1", 0), _make_handler(state))
    state.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
