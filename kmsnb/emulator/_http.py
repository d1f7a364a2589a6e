"""The emulator's HTTP/1.1 transport: one event-loop thread, a bounded pool of workers.

A connection costs a coroutine, not a thread: the loop reads each request whole (head and
body) under a deadline, and only then hands it to the application, which answers it on
the loop or on one of ``worker_count`` threads (file locks, fsync: see
:mod:`kmsnb.emulator._waiting`). So slow or idle clients cannot take workers away
from others: 300 connections sending a byte a second hold no worker, and each one is cut
off when its request deadline passes (408) or, between requests, after the idle timeout.

Written on :mod:`asyncio` rather than ``http.server`` (a thread per connection, no limit)
or a web framework (the emulator must run from a plain ``pip install kmsnb``). Framing is
strict, because a lenient front end is how requests get smuggled: one ``Content-Length``
of ASCII digits, no ``Transfer-Encoding``, bounded request line, headers and body; header
lines are ``token ":" value`` ended by CRLF (or a folded continuation), with no bare CR or
LF and no NUL (RFC 9112 §2.2, §5), at most 100 of them. That parser is a few lines here
rather than ``http.client.parse_headers``, whose ``email`` parser cost as much as the
whole KMS call and accepts what this one refuses (a bare LF ends a line there, a line
with no colon silently ends the header block).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, TypeVar

from kmsnb.emulator._http_head import (
    HttpError,
    content_length,
    keeps_alive,
    parse_head,
    too_large_head,
)

__all__ = ["HttpError", "HttpLimits", "HttpRequest", "HttpResponse", "HttpServer"]

logger = logging.getLogger("kmsnb.emulator.server")

_T = TypeVar("_T")
_HEAD_END = b"\r\n\r\n"
_READ_SIZE = 65536


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client may hold of the server.

    Attributes:
        max_target_size: longest request target (path and query), in bytes.
        max_header_size: largest header block after the request line, in bytes.
        max_body_size: largest request body, in bytes.
        request_timeout_s: a request must arrive whole (head and body) this long after its
            first byte; then it is answered 408 and the connection closed.
        idle_timeout_s: a keep-alive connection with no request for this long is closed.
        worker_count: threads that run requests; the only threads besides the loop's.
        max_connection_count: open connections beyond this are answered 503 and closed.
        listen_backlog: connections the kernel queues before the loop accepts them.
    """

    max_target_size: int
    max_body_size: int
    max_header_size: int = 64 * 1024
    request_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    worker_count: int = 16
    max_connection_count: int = 1024
    listen_backlog: int = 1024

    def __post_init__(self) -> None:
        if min(self.request_timeout_s, self.idle_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if min(self.worker_count, self.max_connection_count, self.listen_backlog) < 1:
            raise ValueError("worker_count, max_connection_count and listen_backlog must be >= 1")


@dataclass(frozen=True)
class HttpRequest:
    """A request read whole: the target as sent (Latin-1 text of its bytes), headers by
    lower-case name in the order received, and the address of the peer that sent it."""

    method: str
    target: str
    headers: Mapping[str, Sequence[str]]
    body: bytes = b""
    peer: str = ""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


#: The application: answer a request (None: close the connection without an answer).
App = Callable[[HttpRequest], Awaitable[HttpResponse | None]]
#: Turns a transport refusal into the response body the clients understand.
ErrorPage = Callable[[HttpError], HttpResponse]


class HttpServer:
    """Serves ``app`` on a bound socket from a thread of its own; see the module docstring."""

    def __init__(
        self, address: tuple[str, int], app: App, error_page: ErrorPage, limits: HttpLimits
    ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(address)
            self._socket.listen(limits.listen_backlog)
        except OSError:
            self._socket.close()
            raise
        self.address: tuple[str, int] = self._socket.getsockname()[:2]
        self.limits = limits
        self._app = app
        self._error_page = error_page
        self._workers = ThreadPoolExecutor(
            limits.worker_count, thread_name_prefix=f"kmsnb-emulator-{self.address[1]}-worker"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        # Each connection's task, its writer, and whether it is running a request now.
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False
        self._started = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running")
        self._thread = threading.Thread(
            target=self._run, name=f"kmsnb-emulator-{self.address[1]}", daemon=True
        )
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        """Stop accepting, close every connection, let running requests finish."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already gone
                asyncio.run_coroutine_threadsafe(self._close_connections(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        self._thread = self._loop = None
        self._workers.shutdown(wait=True)
        self._socket.close()

    async def run_in_worker(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run blocking ``function(*args)`` on the worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self._workers, function, *args)

    # -- the loop thread -------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            # asyncio.start_server's work, with a protocol that reads into one buffer.
            receive_buffer = memoryview(bytearray(_READ_SIZE))

            def connected() -> _ReadIntoProtocol:
                reader = asyncio.StreamReader(limit=_READ_SIZE, loop=loop)
                return _ReadIntoProtocol(reader, self._accept, receive_buffer, loop=loop)

            self._listener = loop.run_until_complete(
                loop.create_server(connected, sock=self._socket, backlog=self.limits.listen_backlog)
            )
            watchdog = loop.create_task(self._watch_deadlines())
            self._started.set()
            loop.run_forever()
            watchdog.cancel()
            loop.run_until_complete(asyncio.gather(watchdog, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._started.set()
            loop.close()

    async def _close_connections(self) -> None:
        """Stop accepting; close idle connections now, busy ones once their request is done."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        tasks = list(self._connections)
        for task, connection in list(self._connections.items()):
            if not connection.busy:
                task.cancel()
                connection.writer.transport.abort()  # a read ending as the cancel comes, too
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            raise AssertionError("kmsnb: internal error: a connection outside a task")
        connection = _Connection(writer)
        self._connections[task] = connection
        try:
            if len(self._connections) > self.limits.max_connection_count:
                refusal = HttpError(503, "ServiceUnavailableTemporary", "Too many connections.")
                await self._send(writer, self._error_page(refusal), close=True)
                return
            await self._serve(reader, writer, connection)
        except (ConnectionError, asyncio.CancelledError, TimeoutError):
            pass  # the client went away, or the server is stopping
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        buffer = bytearray()
        while not self._closing:
            try:
                request, keep_alive = await self._read_request(reader, writer, connection, buffer)
            except HttpError as refusal:
                await self._send(writer, self._error_page(refusal), close=True)
                return
            if request is None:
                return  # closed or idle between requests
            connection.busy = True  # a stop waits for this request, faults' delays included
            try:
                response = await self._app(request)
                if response is None:
                    return  # the application drops the connection
                close = response.close or not keep_alive or self._closing
                await self._send(writer, response, close=close)
            finally:
                connection.busy = False
            if close:
                return

    async def _read_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        buffer: bytearray,
    ) -> tuple[HttpRequest | None, bool]:
        """Read the next request whole, ``buffer`` holding what was read beyond the last.

        Returns (None, False) when the client closed, or stayed idle, between requests.
        """
        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.request_timeout_s if buffer else None
        head_limit = limits.max_target_size + limits.max_header_size + 64
        searched = 0
        while (head_end := buffer.find(_HEAD_END, max(0, searched - 3))) < 0:
            searched = len(buffer)
            if searched > head_limit:
                raise too_large_head(buffer, limits)
            chunk = await self._receive(reader, connection, deadline, idle=deadline is None)
            if not chunk:
                return None, False
            if deadline is None:
                deadline = loop.time() + limits.request_timeout_s
            buffer += chunk
        head = bytes(buffer[:head_end])
        del buffer[: head_end + len(_HEAD_END)]
        method, target, version, headers = parse_head(head, limits)
        keep_alive = keeps_alive(version, headers)
        length = content_length(headers, limits)
        if length and headers.get("expect", [""])[0].lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(buffer) < length:
            chunk = await self._receive(reader, connection, deadline, idle=False)
            if not chunk:
                return None, False
            buffer += chunk
        body = bytes(buffer[:length])
        del buffer[:length]
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        return HttpRequest(method, target, headers, body, address), keep_alive

    async def _receive(
        self,
        reader: asyncio.StreamReader,
        connection: _Connection,
        deadline: float | None,
        *,
        idle: bool,
    ) -> bytes:
        # The read is cancelled by _watch_deadlines once its deadline passes: one look at
        # every connection each tick, rather than a timer armed and disarmed around every
        # read (asyncio.timeout was a tenth of the server's time per request, issue 16).
        if idle or deadline is None:
            deadline = asyncio.get_running_loop().time() + self.limits.idle_timeout_s
        connection.deadline, connection.idle = deadline, idle
        try:
            return await reader.read(_READ_SIZE)
        except asyncio.CancelledError:
            if not connection.expired:
                raise  # the server is stopping
            connection.expired = False
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            connection.deadline = None
        if idle:
            return b""  # an idle keep-alive connection: close it quietly
        logger.info("a request did not arrive whole in time; answered 408")
        raise HttpError(408, "RequestTimeout", "The request did not arrive in time.")

    async def _watch_deadlines(self) -> None:
        """Cancel every read whose deadline has passed, a few times a timeout."""
        limits = self.limits
        tick = max(min(limits.request_timeout_s, limits.idle_timeout_s) / 20, 0.005)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for task, connection in list(self._connections.items()):
                deadline = connection.deadline
                if deadline is not None and deadline <= now and not connection.expired:
                    connection.expired = True
                    task.cancel()

    async def _send(
        self, writer: asyncio.StreamWriter, response: HttpResponse, *, close: bool
    ) -> None:
        phrase = _phrase(response.status)
        lines = [f"HTTP/1.1 {response.status} {phrase}", "Server: kmsnb-emulator"]
        lines.append(f"Date: {_http_date()}")
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines.append(f"Content-Length: {len(response.body)}")
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # One write: with Nagle's algorithm a separate body segment would wait for the
        # client's delayed ACK, some 40 ms per request.
        writer.write(head + response.body)
        if writer.transport.get_write_buffer_size():  # the kernel did not take it all at once
            async with asyncio.timeout(self.limits.request_timeout_s):
                await writer.drain()


class _ReadIntoProtocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """asyncio's stream protocol, receiving into one buffer that the loop's connections
    share (each read is copied out before the next can start) rather than into a fresh
    256 KiB one per read: asyncio's ``recv(262144)`` mapped and unmapped that much memory
    for every request, a tenth of the server's time per request (issue 16)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        buffer: memoryview,
        *,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(reader, accept, loop=loop)
        self._receive_buffer = buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._receive_buffer[:nbytes]))


@dataclass
class _Connection:
    writer: asyncio.StreamWriter
    busy: bool = False
    #: When the read under way must end (the loop's clock), None while none is; whether
    #: it waits between requests (then it ends quietly) or inside one (408).
    deadline: float | None = None
    idle: bool = False
    #: Set by :meth:`HttpServer._watch_deadlines` when it cancels that read.
    expired: bool = False


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header's value, formatted once a second (it has a resolution of one)."""
    global _date_cache  # one str a second, shared by every server in the process
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text
