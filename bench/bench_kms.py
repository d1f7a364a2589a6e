"""Data-key pairs per second: GenerateDataKey + Decrypt, in process and over HTTP.

A *pair* is what envelope encryption costs per file: ``generate_data_key`` (with an
encryption context) then ``decrypt_data_key`` of its blob. Cases:

* ``in_process``: :class:`kmsnb.kms.local.LocalKms`, the emulator's engine called directly;
* ``http_1``: :class:`kmsnb.kms.aliyun.AliyunKms` (the official SDK) against
  ``kmsnb emulator serve`` running in a child process, one thread;
* ``http_8``: the same client shared by 8 threads.

Each round runs every case once in a shuffled (seeded) order; the table gives the median
of the rounds and their spread. Targets: 2,000 pairs/s in process, 500 over HTTP.

``--profile`` adds one untimed pass per HTTP case with the server in this process and a
cProfile per thread (client and server handler threads), then prints where the time goes
by layer (SDK signing and models, HTTP client, HTTP server, signature checks, KMS engine,
store, crypto, JSON) and the top functions.

Usage::

    .venv/bin/python bench/bench_kms.py                 # 5 rounds
    .venv/bin/python bench/bench_kms.py --rounds 7 --pairs 2000
    .venv/bin/python bench/bench_kms.py --quick         # 3 rounds, fewer pairs
    .venv/bin/python bench/bench_kms.py --profile       # plus where the time goes

Exits 0 whatever the figures (a report), non-zero only on errors.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import interleaved_rounds, median, print_table, spread

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"in_process": 2000.0, "http_1": 500.0, "http_8": 500.0}
THREAD_COUNT = 8
CONTEXT = {"bench": "kms", "file": "data.parquet"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


def run_pairs(kms: Any, key_id: str, pair_count: int) -> None:
    """``pair_count`` GenerateDataKey + Decrypt pairs, checking each key comes back."""
    for _ in range(pair_count):
        with (
            kms.generate_data_key(key_id, CONTEXT) as data_key,
            kms.decrypt_data_key(data_key.ciphertext_blob, CONTEXT) as unwrapped,
        ):
            if unwrapped.plaintext != data_key.plaintext:
                raise AssertionError("bench: a data key did not decrypt to itself")


def run_threaded(kms: Any, key_id: str, pair_count: int) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_pairs(kms, key_id, pair_count // THREAD_COUNT)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(THREAD_COUNT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def pairs_per_second(action: Callable[[], None], pair_count: int) -> float:
    started = time.perf_counter()
    action()
    return pair_count / (time.perf_counter() - started)


@contextmanager
def served_emulator(store: Path, access_key: tuple[str, str]) -> Iterator[tuple[str, int]]:
    """``kmsnb emulator serve`` in a child process; yields its endpoint and process id."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = access_key
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsnb", "emulator", "serve", "--data", str(store)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        if "serving at" not in first_line:
            raise RuntimeError(f"the emulator did not start: {first_line!r}")
        yield first_line.split()[-1], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def aliyun_client(endpoint: str, access_key: tuple[str, str]) -> Any:
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    from kmsnb.kms.aliyun import AliyunKms

    credential = Client(
        Config(type="access_key", access_key_id=access_key[0], access_key_secret=access_key[1])
    )
    return AliyunKms(endpoint=endpoint, credential=credential)


def measure(arguments: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:
    from kmsnb.kms.local import LocalKms

    access_key = ("KMSNBBENCH", secrets.token_urlsafe(24))
    local = LocalKms(workdir / "store")
    key_id = local.create_key("bench").key_id
    with served_emulator(workdir / "store", access_key) as (endpoint, _):
        remote = aliyun_client(endpoint, access_key)
        run_pairs(remote, key_id, 50)  # warm up: connection pool, imports, caches
        run_pairs(local, key_id, 50)
        cases: dict[str, Callable[[], float]] = {
            "in_process": lambda: pairs_per_second(
                lambda: run_pairs(local, key_id, arguments.pairs * 5), arguments.pairs * 5
            ),
            "http_1": lambda: pairs_per_second(
                lambda: run_pairs(remote, key_id, arguments.pairs), arguments.pairs
            ),
            "http_8": lambda: pairs_per_second(
                lambda: run_threaded(remote, key_id, arguments.pairs), arguments.pairs
            ),
        }
        results = interleaved_rounds(cases, arguments.rounds, seed=arguments.seed)
    local.close()
    return results


def report(results: dict[str, list[float]]) -> None:
    rows = []
    for name, target in TARGETS.items():
        values = results[name]
        low, high = spread(values)
        middle = median(values)
        rows.append(
            [
                name,
                f"{middle:,.0f}",
                f"{low:,.0f}-{high:,.0f}",
                f"{1e3 / middle:.3f}",
                f"{target:,.0f}",
                "PASS" if middle >= target else "FAIL",
            ]
        )
    print_table(["case", "pairs/s (median)", "range", "ms/pair", "target", "verdict"], rows)


# --- where the time goes -------------------------------------------------------------------------

# First match wins: (layer, substrings of the code's file path or function name).
LAYERS = (
    ("signature checks (server)", ("kmsnb/emulator/auth.py",)),
    ("HTTP server", ("kmsnb/emulator/_dispatch.py", "kmsnb/emulator/_http.py", "asyncio")),
    ("HTTP header parsing (email)", ("/email/",)),
    ("KMS engine", ("kmsnb/emulator/_", "kmsnb/emulator/service.py")),
    ("store", ("kmsnb/emulator/store.py",)),
    ("crypto", ("cryptography", "<built-in method posix.urandom>", "_hashlib", "hmac.py")),
    ("SDK signing", ("alibabacloud_tea_openapi/utils.py", "alibabacloud_credentials")),
    ("SDK client and models", ("alibabacloud", "darabonba", "/Tea/")),
    ("HTTP client", ("requests", "urllib3", "http/client.py")),
    ("kmsnb client", ("kmsnb/kms/",)),
    ("JSON", ("json",)),
    ("URL parsing and quoting", ("urllib/parse.py",)),
    ("sockets and I/O, waiting included", ("socket", "selectors", "_io", "ssl")),
    ("threads and locks", ("threading", "acquire", "lock")),
)


def _layer(file_name: str, function: str) -> str:
    where = f"{file_name}:{function}"
    for layer, markers in LAYERS:
        if any(marker in where for marker in markers):
            return layer
    return "other"


def _by_layer(stats: pstats.Stats) -> dict[str, float]:
    """Own time per layer; a built-in's time goes to the layers of the code calling it."""
    totals: dict[str, float] = defaultdict(float)
    raw = stats.stats  # type: ignore[attr-defined]
    for (file_name, _, function), (_, _, own_time, _, callers) in raw.items():
        layer = _layer(file_name, function)
        if file_name != "~" or layer != "other" or not callers:
            totals[layer] += own_time
            continue
        for (caller_file, _, caller_function), caller_times in callers.items():
            totals[_layer(caller_file, caller_function)] += caller_times[2]
    return totals


class _ServerProfiles:
    """A cProfile per request answered by the server (on its loop or a worker), merged
    afterwards."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[None]:
        from kmsnb.emulator import _dispatch

        # The application's part of each request (parsing, signature, engine), on the
        # event loop or on a worker; the transport that reads and writes the sockets is
        # not profiled.
        handler = _dispatch.Dispatcher
        original = handler.handle_without_waiting

        def profiled_handle(this: Any, request: Any) -> Any:
            answer = self._profiled(original, this, request)
            if callable(answer):  # the rest of the work, for a worker
                rest = answer
                return lambda: self._profiled(rest)
            return answer

        handler.handle_without_waiting = profiled_handle  # type: ignore[method-assign]
        try:
            yield
        finally:
            handler.handle_without_waiting = original  # type: ignore[method-assign]

    def _profiled(self, function: Callable[..., Any], *args: Any) -> Any:
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append(profile)
        return profile.runcall(function, *args)

    def stats(self) -> pstats.Stats | None:
        if not self.profiles:
            return None
        merged = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            merged.add(profile)
        return merged


def profile_http(arguments: argparse.Namespace, workdir: Path) -> None:
    from kmsnb.emulator.server import EmulatorServer
    from kmsnb.emulator.service import KmsService
    from kmsnb.emulator.store import KeyStore

    access_key = ("KMSNBBENCH", secrets.token_urlsafe(24))
    service = KmsService(KeyStore(workdir / "profile-store"))
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    server_profiles = _ServerProfiles()
    with (
        server_profiles.installed(),
        EmulatorServer(service, credentials=dict([access_key])) as server,
    ):
        kms = aliyun_client(server.endpoint, access_key)
        run_pairs(kms, key_id, 50)
        client_profile = cProfile.Profile()
        started = time.perf_counter()
        client_profile.runcall(run_pairs, kms, key_id, arguments.pairs)
        elapsed = time.perf_counter() - started
    server_stats = server_profiles.stats()
    client_stats = pstats.Stats(client_profile)
    request_count = 2 * arguments.pairs
    print(
        f"\nWhere the time goes: {arguments.pairs} pairs ({request_count} requests) over HTTP, "
        f"one thread, server in this process; {elapsed / request_count * 1e6:,.0f} us per "
        "request wall time under the profiler.\n"
    )
    client_layers = _by_layer(client_stats)
    server_layers = _by_layer(server_stats) if server_stats else {}
    layers = sorted(
        set(client_layers) | set(server_layers),
        key=lambda name: -(client_layers.get(name, 0) + server_layers.get(name, 0)),
    )
    print_table(
        ["layer (own time)", "client us/request", "server us/request"],
        [
            [
                layer,
                f"{client_layers.get(layer, 0) / request_count * 1e6:,.1f}",
                f"{server_layers.get(layer, 0) / request_count * 1e6:,.1f}",
            ]
            for layer in layers
        ],
    )
    print("\nClient thread, top functions by own time:")
    client_stats.sort_stats("tottime").print_stats(arguments.top)
    if server_stats:
        print("Server handler threads, top functions by own time:")
        server_stats.sort_stats("tottime").print_stats(arguments.top)

    # The in-process case, for the engine alone.
    from kmsnb.kms.local import LocalKms

    local = LocalKms(service=service)
    engine_profile = cProfile.Profile()
    engine_profile.runcall(run_pairs, local, key_id, arguments.pairs * 5)
    print("In process (LocalKms), top functions by own time:")
    pstats.Stats(engine_profile).sort_stats("tottime").print_stats(arguments.top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument(
        "--pairs", type=int, default=1000, help="pairs per HTTP case and round (x5 in process)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the case order")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 pairs")
    parser.add_argument("--profile", action="store_true", help="also show where the time goes")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.rounds, arguments.pairs = 3, 200
    for name in PROXY_VARIABLES:  # the SDK would send 127.0.0.1 traffic to a proxy
        os.environ.pop(name, None)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {arguments.rounds} rounds, {arguments.pairs} pairs per "
        f"HTTP case, {THREAD_COUNT} threads in http_8\n"
    )
    with tempfile.TemporaryDirectory(prefix="kmsnb-bench-") as workdir:
        report(measure(arguments, Path(workdir)))
        if arguments.profile:
            profile_http(arguments, Path(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
