"""The emulator's HTTP server under load: a burst of connections, and slow clients.

* **Burst**: ``--burst`` (60) raw connections opened at once, each sending one small
  request; counted: those whose ``connect`` took a second or more (the kernel's accept
  queue was full and the SYN was retransmitted), those whose answer took a second or more,
  and the worst. Run with the server's listen backlog (``LISTEN_BACKLOG``) and, as the
  baseline in the same run, with ``http.server``'s old backlog of 5.
* **Slow clients**: ``--slow`` (300) connections that send a byte every half second and
  never finish a request; measured: the server's threads and the latency of normal signed
  requests, against the same requests with no slow client (a ratio, median of the rounds).

Usage::

    .venv/bin/python bench/bench_server.py            # 5 rounds
    .venv/bin/python bench/bench_server.py --rounds 3 --burst 60 --slow 300

Exits 0 whatever the figures (a report), non-zero only on errors.
"""

from __future__ import annotations

import argparse
import http.client
import resource
import secrets
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_table

from kmsnb.emulator.server import LISTEN_BACKLOG, EmulatorServer
from kmsnb.emulator.service import KmsService
from kmsnb.emulator.store import KeyStore

OLD_BACKLOG = 5  # socketserver.TCPServer.request_queue_size, what main had


def burst(server: EmulatorServer, count: int) -> list[tuple[float, float]]:
    barrier = threading.Barrier(count)
    results: list[tuple[float, float]] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        started = time.monotonic()
        with socket.create_connection((server.host, server.port), timeout=60) as sock:
            connected = time.monotonic()
            sock.sendall(b"POST /?Action=ListKeys HTTP/1.1\r\nHost: x\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
        with lock:
            results.append((connected - started, time.monotonic() - started))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def signed_request(server: EmulatorServer, access_key: tuple[str, str]) -> bytes:
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    url, _ = get_signed_url(
        {"Version": "2016-01-20", "Action": "ListKeys"}, *access_key, "JSON", "POST", {}
    )
    return f"POST {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def latency(server: EmulatorServer, access_key: tuple[str, str], count: int) -> float:
    """Median seconds for a fresh connection to get a signed ListKeys answered."""
    times = []
    for _ in range(count):
        raw = signed_request(server, access_key)
        started = time.monotonic()
        with socket.create_connection((server.host, server.port), timeout=60) as sock:
            sock.sendall(raw)
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
        times.append(time.monotonic() - started)
    return median(times)


def with_slow_clients(
    server: EmulatorServer, access_key: tuple[str, str], slow_count: int, requests: int
) -> tuple[int, float]:
    stop = threading.Event()
    with ExitStack() as stack:
        sockets = []
        for _ in range(slow_count):
            sock = stack.enter_context(socket.create_connection((server.host, server.port)))
            sock.sendall(b"POST /?Action=ListKeys&KeyId=")
            sockets.append(sock)

        def trickle() -> None:
            while not stop.wait(0.5):
                for sock in sockets:
                    with suppress(OSError):
                        sock.send(b"x")

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            seconds = latency(server, access_key, requests)
            threads = sum(
                t.name.startswith(f"kmsnb-emulator-{server.port}") for t in threading.enumerate()
            )
        finally:
            stop.set()
            trickler.join()
    return threads, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    access_key = ("KMSNBBENCH", secrets.token_urlsafe(24))
    with tempfile.TemporaryDirectory() as workdir:
        service = KmsService(KeyStore(Path(workdir) / "store"))
        rows = []
        for backlog in (OLD_BACKLOG, LISTEN_BACKLOG):
            syn_waits, slow_answers, worst = [], [], []
            for _ in range(arguments.rounds):
                with EmulatorServer(
                    service, credentials=dict([access_key]), listen_backlog=backlog
                ) as server:
                    results = burst(server, arguments.burst)
                syn_waits.append(sum(connect >= 1.0 for connect, _ in results))
                slow_answers.append(sum(total >= 1.0 for _, total in results))
                worst.append(max(total for _, total in results))
            rows.append(
                [
                    f"backlog {backlog}",
                    f"{median(syn_waits):.0f} (max {max(syn_waits)})",
                    f"{median(slow_answers):.0f} (max {max(slow_answers)})",
                    f"{median(worst):.2f} s",
                ]
            )
        print(f"\nBurst of {arguments.burst} simultaneous connections, {arguments.rounds} rounds")
        print_table(["server", "connect >= 1 s", "answer >= 1 s", "worst answer"], rows)

        ratios, thread_counts = [], []
        with EmulatorServer(service, credentials=dict([access_key])) as server:
            for _ in range(arguments.rounds):
                quiet = latency(server, access_key, arguments.requests)
                threads, loaded = with_slow_clients(
                    server, access_key, arguments.slow, arguments.requests
                )
                ratios.append(loaded / quiet)
                thread_counts.append(threads)
        print(f"\n{arguments.slow} trickling connections, {arguments.rounds} rounds")
        print_table(
            ["server threads (max)", "process threads now", "latency ratio loaded/quiet"],
            [[str(max(thread_counts)), str(threading.active_count()), f"{median(ratios):.2f}"]],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
