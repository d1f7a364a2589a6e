"""An HTTP server that speaks the Alibaba Cloud KMS API (2016-01-20) on 127.0.0.1.

The official SDKs, old and new, work against it unchanged (``reference/kms-api.md``):
``POST /`` (GET too) with the parameters in the query and/or an urlencoded form body,
dispatched on ``Action`` or the ``x-acs-action`` header, authenticated by
:mod:`kmsnb.emulator.auth`, answered with JSON carrying ``RequestId`` and the header
``x-acs-request-id``. Errors have the gateway's shape: ``{RequestId, HostId, Code, Message,
Recommend}`` with its HTTP statuses.

Built on the standard library's ``ThreadingHTTPServer`` rather than a web framework: the
protocol is one endpoint with parameters in the URL, the emulator must start from a plain
``pip install kmsnb``, and a thread per keep-alive connection is plenty for a developer's
machine and the test suite.

Nothing here logs a query string, a form body or a header value: the parameters of
Encrypt and Decrypt hold plaintext and encryption contexts.
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kmsnb.emulator.admin import EmulatorAdmin
from kmsnb.emulator.auth import AuthError, SignatureVerifier, SignedRequest
from kmsnb.emulator.faults import Fault, FaultConfig, FaultInjector
from kmsnb.emulator.service import KmsService, ServiceError

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_URL_SIZE",
    "EmulatorCredentials",
    "EmulatorServer",
    "resolve_credentials",
]

logger = logging.getLogger(__name__)

API_VERSION = "2016-01-20"
#: Largest request body accepted (413 beyond). KMS bodies are empty or a few fields.
MAX_BODY_SIZE = 64 * 1024
#: Largest request target accepted (400 beyond); Encrypt's 6 KB plaintext fits easily.
MAX_URL_SIZE = 32 * 1024
#: Bound on query plus form fields, so a hostile request cannot make a huge dict.
MAX_PARAM_COUNT = 256
#: An idle keep-alive connection is closed after this long.
IDLE_CONNECTION_TIMEOUT_S = 60.0

# Signing and envelope parameters, stripped before the service sees the request.
COMMON_PARAMS = frozenset(
    {
        "AccessKeyId",
        "Action",
        "Format",
        "RegionId",
        "SecurityToken",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureType",
        "SignatureVersion",
        "Timestamp",
        "Version",
    }
)

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 (a variable's name)


@dataclass(frozen=True)
class EmulatorCredentials:
    """The AccessKey pair the emulator accepts; ``generated`` if no one configured it."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    generated: bool = False


def resolve_credentials(environ: Mapping[str, str] | None = None) -> EmulatorCredentials:
    """Take the AccessKey from ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``, or make one.

    Using the environment's pair by default means the SDK's default credential chain,
    which reads the same variables, signs requests the emulator accepts.
    """
    environ = os.environ if environ is None else environ
    access_key_id = environ.get(ENV_ACCESS_KEY_ID, "")
    access_key_secret = environ.get(ENV_ACCESS_KEY_SECRET, "")
    if access_key_id and access_key_secret:
        return EmulatorCredentials(access_key_id, access_key_secret)
    return EmulatorCredentials(
        access_key_id="KMSNBEMU" + secrets.token_hex(8).upper(),
        access_key_secret=secrets.token_urlsafe(24),
        generated=True,
    )


class _HttpError(Exception):
    """A failure answered with the gateway's error body."""

    def __init__(
        self, code: str, message: str, http_status: int, *, close_connection: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.close_connection = close_connection


class EmulatorServer:
    """The KMS emulator's HTTP front end, serving a :class:`KmsService` on a thread.

    Args:
        service: the KMS semantics (keys, aliases, crypto).
        host: the address to bind; loopback unless ``allow_remote``.
        port: the port; 0 picks a free one (see :attr:`endpoint`).
        credentials: AccessKeyId → AccessKeySecret accepted; default
            :func:`resolve_credentials` (environment, else a generated pair).
        faults: fault injection for client tests; off by default.
        allow_remote: allow a non-loopback ``host``. The emulator's keys are for
            development only and the protocol is plain HTTP.
        admin: answers kmsnb's own admin actions (the clock, :mod:`kmsnb.emulator.admin`),
            authenticated like KMS calls and only from loopback; None answers none.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        service: KmsService,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        faults: FaultConfig | None = None,
        allow_remote: bool = False,
        admin: EmulatorAdmin | None = None,
    ) -> None:
        if not _is_loopback(host):
            if not allow_remote:
                raise ValueError(
                    f"refusing to serve the KMS emulator on non-loopback host {host!r}; "
                    "pass allow_remote=True (kmsnb emulator serve --allow-remote) if you really "
                    "mean to expose it"
                )
            warnings.warn(
                f"the KMS emulator is serving on {host!r} over plain HTTP; anyone who can "
                "reach it and knows an AccessKey can use its keys",
                stacklevel=2,
            )
        if credentials is None:
            resolved = resolve_credentials()
            credentials = {resolved.access_key_id: resolved.access_key_secret}
        if not credentials:
            raise ValueError("credentials must hold at least one AccessKey pair")
        self._credentials = dict(credentials)
        self._http = _KmsHttpServer(
            (host, port),
            service=service,
            verifier=SignatureVerifier(self._credentials),
            faults=FaultInjector(faults) if faults is not None and faults.enabled else None,
        )
        self._http.admin = admin
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<EmulatorServer {self.endpoint} {state}>"

    @property
    def host(self) -> str:
        return str(self._http.server_address[0])

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: what to give the SDK or ``KMSNB_KMS``."""
        return f"http://{self._http.netloc}"

    @property
    def access_key_ids(self) -> list[str]:
        return sorted(self._credentials)

    @property
    def credentials(self) -> Mapping[str, str]:
        """The accepted AccessKey pairs (read-only; the secrets are in it, never printed)."""
        return MappingProxyType(self._credentials)

    def start(self) -> EmulatorServer:
        """Serve on a background thread; return at once."""
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running")
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"kmsnb-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, wait for handlers, free the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.close_open_connections()
        self._http.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


class _KmsHttpServer(ThreadingHTTPServer):
    """Holds what handlers share, and the open sockets so :meth:`stop` can close them."""

    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads

    def __init__(
        self,
        address: tuple[str, int],
        *,
        service: KmsService,
        verifier: SignatureVerifier,
        faults: FaultInjector | None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self.verifier = verifier
        self.faults = faults
        self.admin: EmulatorAdmin | None = None
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _KmsRequestHandler)
        host, port = self.server_address[:2]
        host = str(host)
        self.netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine; keep stderr quiet.
        logger.debug("connection error: %s", traceback.format_exc(limit=0).strip())


class _KmsRequestHandler(BaseHTTPRequestHandler):
    server: _KmsHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs pool their connections
    server_version = "kmsnb-emulator"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT_S
    # One buffered write per response, sent at once: with Nagle's algorithm on, a separate
    # body segment waits for the client's delayed ACK, some 40 ms per request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._reject_method()

    do_DELETE = do_PATCH = do_PUT

    def _reject_method(self) -> None:
        self.close_connection = True  # the body, if any, was not read
        self._send_error(
            _HttpError("UnsupportedHTTPMethod", "Use POST or GET.", 403), _new_request_id()
        )

    def _handle(self) -> None:
        started = time.perf_counter()
        request_id = _new_request_id()
        action = "-"
        try:
            body = self._read_body()
            faults = self.server.faults
            if faults is not None and self._inject_fault(faults):
                return
            request = self._parse(body)
            self.server.verifier.verify(request)
            action = self._action(request)
            params = {k: v for k, v in request.params.items() if k not in COMMON_PARAMS}
            admin = self.server.admin
            if admin is not None and admin.handles(action):
                result = admin.call(action, params, peer=str(self.client_address[0]))
            else:
                result = self.server.service.call(action, params)
            self._send_json(200, {**result, "RequestId": request_id}, request_id)
        except _HttpError as error:
            if error.close_connection:
                self.close_connection = True
            self._send_error(error, request_id)
        except AuthError as error:
            self._send_error(_HttpError(error.code, error.message, error.http_status), request_id)
        except ServiceError as error:
            if error.__cause__ is not None:
                logger.warning("%s failed: %s", action, type(error.__cause__).__name__)
            self._send_error(_HttpError(error.code, error.message, error.http_status), request_id)
        except Exception as error:
            # Only the type and where: an exception's text may hold request data.
            logger.error(
                "internal error in %s: %s\n%s",
                action,
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)),
            )
            self._send_error(_HttpError("InternalFailure", "Internal Failure.", 500), request_id)
        finally:
            logger.debug(
                "%s %s %.1f ms", self.command, action, (time.perf_counter() - started) * 1e3
            )

    # --- request parsing -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "transfer-encoding" in self.headers:
            raise _HttpError(
                "InvalidParameter",
                "Chunked request bodies are not supported; send Content-Length.",
                411,
                close_connection=True,
            )
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            raise _HttpError(
                "InvalidParameter", "Content-Length is not a number.", 400, close_connection=True
            ) from None
        if length < 0:
            raise _HttpError(
                "InvalidParameter", "Content-Length is negative.", 400, close_connection=True
            )
        if length > MAX_BODY_SIZE:
            raise _HttpError(
                "RequestEntityTooLarge",
                f"The request body exceeds {MAX_BODY_SIZE} bytes.",
                413,
                close_connection=True,
            )
        return self.rfile.read(length) if length else b""

    def _parse(self, body: bytes) -> SignedRequest:
        if len(self.path) > MAX_URL_SIZE:
            raise _HttpError(
                "InvalidParameter",
                f"The request URL exceeds {MAX_URL_SIZE} bytes.",
                400,
                close_connection=True,
            )
        target = urlsplit(self.path)
        if target.path != "/":
            raise _HttpError("InvalidAction.NotFound", "Specified api is not found.", 404)
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        # http.server decoded the request line as Latin-1; get the bytes back.
        query = _parse_pairs(target.query.encode("latin-1"))
        content_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        form = _parse_pairs(body) if content_type == _FORM_TYPE else []
        return SignedRequest(
            method=self.command,
            path=target.path,
            query=query,
            params={**dict(query), **dict(form)},  # form after query (kms-api.md §2)
            headers=headers,
            body=body,
        )

    @staticmethod
    def _action(request: SignedRequest) -> str:
        action = request.params.get("Action") or request.header("x-acs-action")
        if not action:
            raise _HttpError(
                "MissingParameter", 'The parameter "Action" is needed but not provided.', 400
            )
        version = request.params.get("Version") or request.header("x-acs-version")
        if version != API_VERSION:
            raise _HttpError(
                "InvalidVersion",
                f"Specified parameter Version is not valid; KMS speaks {API_VERSION}.",
                400,
            )
        return action

    # --- faults and responses --------------------------------------------------------------------

    def _inject_fault(self, faults: FaultInjector) -> bool:
        """Apply this request's fault; return True if it was answered (or dropped)."""
        delay, fault = faults.draw()
        if delay:
            time.sleep(delay)
        if fault is Fault.NONE:
            return False
        if fault is Fault.DROP:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        raise {
            Fault.THROTTLE: _HttpError("Rejected.Throttling", "QPS Limit Exceeded", 429),
            Fault.UNAVAILABLE: _HttpError(
                "ServiceUnavailableTemporary", "Service Unavailable Temporary.", 503
            ),
            Fault.INTERNAL: _HttpError("InternalFailure", "Internal Failure.", 500),
        }[fault]

    def _send_error(self, error: _HttpError, request_id: str) -> None:
        self._send_json(
            error.http_status,
            {
                "RequestId": request_id,
                "HostId": self.server.netloc,
                "Code": error.code,
                "Message": error.message,
                "Recommend": (
                    f"https://api.aliyun.com/troubleshoot?q={error.code}"
                    f"&product=Kms&requestId={request_id}"
                ),
            },
            request_id,
        )

    def _send_json(self, status: int, body: Mapping[str, Any], request_id: str) -> None:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-acs-request-id", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by ``http.server`` itself (bad request line, 414, 501), as JSON.

        The standard phrase replaces ``message``: the library's text can quote the request
        line, which holds the query.
        """
        self.close_connection = True
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self._send_error(_HttpError(phrase.replace(" ", ""), phrase + ".", code), _new_request_id())

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs the action and time; the request line holds the query

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages may quote the request line: keep only the template.
        logger.debug("http.server: %s", format)


_FORM_TYPE = "application/x-www-form-urlencoded"


def _new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def _parse_pairs(encoded: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            encoded.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAM_COUNT,
        )
    except ValueError:  # UnicodeDecodeError too: it is a ValueError
        raise _HttpError(
            "ParseRequestParameterException",
            "The query or form body is not valid URL-encoded UTF-8, or has too many fields.",
            400,
        ) from None
