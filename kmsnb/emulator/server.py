"""An HTTP server that speaks the Alibaba Cloud KMS API (2016-01-20) on 127.0.0.1.

The official SDKs, old and new, work against it unchanged (``docs/kms-api.md``):
``POST /`` (GET too) with the parameters in the query and/or an urlencoded form body,
dispatched on ``Action`` or the ``x-acs-action`` header, authenticated by
:mod:`kmsnb.emulator.auth`, answered with JSON carrying ``RequestId`` and the header
``x-acs-request-id``. Errors have the gateway's shape: ``{RequestId, HostId, Code, Message,
Recommend}`` with its HTTP statuses.

The transport (:mod:`kmsnb.emulator._http`) reads each request whole on one event-loop
thread, under a deadline: slow, idle or trickling clients hold no thread, whatever their
number. The data-plane calls (GenerateDataKey, Decrypt...) are answered on that thread
unless they would wait; the rest, and those, run on a small pool of worker threads
(:mod:`kmsnb.emulator._waiting`). Requests as large as the engine
accepts fit: the URL and body bounds are sized for two encryption contexts of
:data:`~kmsnb.emulator._params.MAX_ENCRYPTION_CONTEXT_SIZE` each (ReEncrypt), percent-encoded.

Nothing here logs a query string, a form body or a header value: the parameters of
Encrypt and Decrypt hold plaintext and encryption contexts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from kmsnb.emulator._dispatch import Dispatcher
from kmsnb.emulator._http import HttpError, HttpLimits, HttpRequest, HttpResponse, HttpServer
from kmsnb.emulator._params import MAX_ENCRYPTION_CONTEXT_SIZE
from kmsnb.emulator.admin import EmulatorAdmin
from kmsnb.emulator.auth import (
    DEFAULT_MAX_NONCE_COUNT,
    SignatureVerifier,
)
from kmsnb.emulator.faults import Fault, FaultConfig, FaultInjector
from kmsnb.emulator.service import KmsService

__all__ = [
    "IDLE_CONNECTION_TIMEOUT_S",
    "LISTEN_BACKLOG",
    "MAX_BODY_SIZE",
    "MAX_URL_SIZE",
    "REQUEST_TIMEOUT_S",
    "WORKER_COUNT",
    "EmulatorCredentials",
    "EmulatorServer",
    "resolve_credentials",
]

logger = logging.getLogger(__name__)

#: Largest request target accepted (400 beyond): two encryption contexts at their bound
#: (ReEncrypt), each JSON-escaped and percent-encoded at worst 6 characters a byte (``"``
#: becomes ``\"``, then ``%5C%22``), and 64 KiB for the blob and the other parameters.
MAX_URL_SIZE = 2 * 6 * MAX_ENCRYPTION_CONTEXT_SIZE + 64 * 1024
#: Largest request body accepted (413 beyond): a form body may carry what a query can.
MAX_BODY_SIZE = MAX_URL_SIZE
#: An idle keep-alive connection is closed after this long.
IDLE_CONNECTION_TIMEOUT_S = 60.0
#: A request must arrive whole this long after its first byte, or it is answered 408.
REQUEST_TIMEOUT_S = 10.0
#: Threads running requests; connections hold none while their request arrives.
WORKER_COUNT = 16
#: Connections the kernel queues before the server accepts them (``http.server``'s 5 made
#: bursts of clients wait for SYN retransmissions, a second or more each).
LISTEN_BACKLOG = 1024

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 (a variable's name)


@dataclass(frozen=True)
class EmulatorCredentials:
    """The AccessKey pair the emulator accepts; ``generated`` if no one configured it."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    generated: bool = False


class _SecretTable(Mapping[str, str]):
    """AccessKeyId → AccessKeySecret, read-only, whose repr and str show no secret."""

    def __init__(self, secrets_by_id: Mapping[str, str]) -> None:
        self._secrets = dict(secrets_by_id)

    def __getitem__(self, access_key_id: str) -> str:
        return self._secrets[access_key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        hidden = ", ".join(f"{access_key_id!r}: '***'" for access_key_id in sorted(self))
        return f"{{{hidden}}}"

    __str__ = __repr__


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
            authenticated like KMS calls (signature, timestamp, nonce) and only from
            loopback; None answers none.
        request_timeout_s: a request (head and body) must arrive whole this long after its
            first byte; a stalled one is answered 408 ``RequestTimeout``.
        idle_timeout_s: a keep-alive connection idle this long is closed.
        max_nonce_count: signature nonces remembered for replay detection; when that many
            are still fresh, new requests are refused with 429 ``Rejected.Throttling``.
        worker_count: threads that run requests.
        listen_backlog: the listening socket's queue of connections not yet accepted.

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
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        idle_timeout_s: float = IDLE_CONNECTION_TIMEOUT_S,
        max_nonce_count: int = DEFAULT_MAX_NONCE_COUNT,
        worker_count: int = WORKER_COUNT,
        listen_backlog: int = LISTEN_BACKLOG,
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
        self._credentials = _SecretTable(credentials)
        self._dispatcher = Dispatcher(
            service,
            SignatureVerifier(self._credentials, max_nonce_count=max_nonce_count),
            admin=admin,
        )
        self._faults = FaultInjector(faults) if faults is not None and faults.enabled else None
        self.limits = HttpLimits(
            max_target_size=MAX_URL_SIZE,
            max_body_size=MAX_BODY_SIZE,
            request_timeout_s=request_timeout_s,
            idle_timeout_s=idle_timeout_s,
            worker_count=worker_count,
            listen_backlog=listen_backlog,
        )
        self._http = HttpServer(
            (host, port), self._answer, self._dispatcher.error_page, self.limits
        )
        host = str(self._http.address[0])
        self._netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self._dispatcher.host_id = self._netloc

    def __repr__(self) -> str:
        state = "running" if self._http.running else "stopped"
        return f"<EmulatorServer {self.endpoint} {state}>"

    @property
    def host(self) -> str:
        return str(self._http.address[0])

    @property
    def port(self) -> int:
        return int(self._http.address[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: what to give the SDK or ``KMSNB_KMS``."""
        return f"http://{self._netloc}"

    @property
    def access_key_ids(self) -> list[str]:
        return sorted(self._credentials)

    @property
    def credentials(self) -> Mapping[str, str]:
        """The accepted AccessKey pairs (read-only; its repr shows the ids, never a secret)."""
        return self._credentials

    def start(self) -> EmulatorServer:
        """Serve on a background thread; return at once."""
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, wait for running requests, free the port."""
        self._http.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _answer(self, request: HttpRequest) -> HttpResponse | None:
        """Apply this request's fault, if any, around running it on a worker."""
        fault = Fault.NONE
        if self._faults is not None:
            delay, fault = self._faults.draw()
            if delay:
                await asyncio.sleep(delay)
            if fault is Fault.DROP:
                return None
            refusal = _FAULT_ERRORS.get(fault)
            if refusal is not None:
                return self._dispatcher.error_page(refusal)
        answer = self._dispatcher.handle_without_waiting(request)
        response = (
            answer if isinstance(answer, HttpResponse) else await self._http.run_in_worker(answer)
        )
        if fault is Fault.DROP_AFTER:
            return None
        if fault is Fault.SLOW_ANSWER and self._faults is not None:
            await asyncio.sleep(self._faults.config.slow_answer_s)
        return response


_FAULT_ERRORS = {
    Fault.THROTTLE: HttpError(429, "Rejected.Throttling", "QPS Limit Exceeded"),
    Fault.UNAVAILABLE: HttpError(
        503, "ServiceUnavailableTemporary", "Service Unavailable Temporary."
    ),
    Fault.INTERNAL: HttpError(500, "InternalFailure", "Internal Failure."),
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything
