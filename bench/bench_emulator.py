"""The emulator against moto's KMS: GenerateDataKey + Decrypt pairs per second, one run.

A *pair* is what envelope encryption costs per file: GenerateDataKey (AES_256, with an
encryption context) then Decrypt of its blob, the plaintexts compared. Four cases, each
through the official SDK of its cloud:

* ``kmsnb_http``: ``kmsnb emulator serve`` in a child process, driven by
  :class:`kmsnb.kms.aliyun.AliyunKms` (the Alibaba Cloud SDK), one thread;
* ``moto_http``: ``python -m moto.server`` in a child process, driven by boto3, one thread;
* ``kmsnb_local``: :class:`kmsnb.kms.local.LocalKms`, the emulator in this process;
* ``moto_local``: boto3 under moto's ``mock_aws``, moto in this process.

Each round runs every case once in a shuffled (seeded) order; a ratio is taken within a
round (kmsnb's pairs/s over moto's) and the table gives the medians and ranges of the
rounds. Goals: HTTP >= 2.5x moto, in process >= 30x moto. Over HTTP, a last table splits
a pair's CPU time between the client (this process: the official SDK, kmsnb's
``AliyunKms`` over it, or boto3) and the server (the child process, from ``/proc`` on
Linux): the client and the server take turns, so a pair costs about the sum.

Usage (needs the ``bench`` extra, which has moto)::

    .venv/bin/python bench/bench_emulator.py               # 5 rounds
    .venv/bin/python bench/bench_emulator.py --rounds 7 --pairs 1000

Exits 0 whatever the figures (a report), non-zero only on errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved_rounds, median, print_table, spread
from bench_kms import CONTEXT, PROXY_VARIABLES, aliyun_client, run_pairs, served_emulator

GOALS = {"http": 2.5, "local": 30.0}
MOTO_REGION = "us-east-1"
MOTO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LOCAL_FACTOR = 5  # in-process cases run this many times more pairs (they are faster)


def run_boto3_pairs(client: Any, key_id: str, pair_count: int) -> None:
    """``pair_count`` pairs through boto3, checking each key comes back."""
    for _ in range(pair_count):
        made = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CONTEXT)
        opened = client.decrypt(CiphertextBlob=made["CiphertextBlob"], EncryptionContext=CONTEXT)
        if opened["Plaintext"] != made["Plaintext"]:
            raise AssertionError("bench: a moto data key did not decrypt to itself")


def pairs_per_second(action: Callable[[int], None], pair_count: int) -> float:
    started = time.perf_counter()
    action(pair_count)
    return pair_count / (time.perf_counter() - started)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(
    action: Callable[[int], None], pair_count: int, server_pid: int, cpu: list[float | None]
) -> float:
    """:func:`pairs_per_second`, appending to ``cpu`` the CPU microseconds a pair cost the
    client (this process: the SDK) and the server (its child process)."""
    client, server = time.process_time(), process_cpu_seconds(server_pid)
    rate = pairs_per_second(action, pair_count)
    server_after = process_cpu_seconds(server_pid)
    cpu.append((time.process_time() - client) / pair_count * 1e6)
    cpu.append(None if server is None or server_after is None else
               (server_after - server) / pair_count * 1e6)  # fmt: skip
    return rate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_moto() -> Iterator[tuple[str, int]]:
    """``python -m moto.server`` in a child process; yields its endpoint and process id."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(
    arguments: argparse.Namespace, workdir: Path
) -> tuple[dict[str, list[float]], dict[str, list[float | None]]]:
    """Pairs a second of each case, each round; and the HTTP cases' CPU split."""
    import boto3
    from moto import mock_aws

    from kmsnb.kms.local import LocalKms

    access_key = ("KMSNBBENCH", "bench-secret-" + os.urandom(8).hex())
    local = LocalKms(workdir / "store")
    key_id = local.create_key("bench").key_id
    # Per HTTP case: client and server CPU microseconds a pair, alternating, every run.
    cpu: dict[str, list[float | None]] = {"kmsnb_http": [], "moto_http": []}
    with (
        served_emulator(workdir / "store", access_key) as (endpoint, emulator_pid),
        served_moto() as (moto_url, moto_pid),
    ):
        remote = aliyun_client(endpoint, access_key)
        moto_remote = boto3.client(
            "kms", region_name=MOTO_REGION, endpoint_url=moto_url, **MOTO_CREDENTIALS
        )
        moto_key = moto_remote.create_key()["KeyMetadata"]["KeyId"]
        # moto in process patches requests (through ``responses``) and botocore while its
        # mock is on: on only for its own case, so that the HTTP clients of the other cases
        # (the Alibaba SDK uses requests) do not go through its interception too.
        mock = mock_aws()
        mock.start()
        try:
            moto_local = boto3.client("kms", region_name=MOTO_REGION, **MOTO_CREDENTIALS)
            moto_local_key = moto_local.create_key()["KeyMetadata"]["KeyId"]
        finally:
            mock.stop(remove_data=False)

        def moto_in_process(pair_count: int) -> float:
            mock.start(reset=False)  # not timed
            try:
                return pairs_per_second(
                    lambda n: run_boto3_pairs(moto_local, moto_local_key, n), pair_count
                )
            finally:
                mock.stop(remove_data=False)

        pairs = arguments.pairs
        cases: dict[str, Callable[[], float]] = {
            "kmsnb_http": lambda: over_http(
                lambda n: run_pairs(remote, key_id, n), pairs, emulator_pid, cpu["kmsnb_http"]
            ),
            "moto_http": lambda: over_http(
                lambda n: run_boto3_pairs(moto_remote, moto_key, n),
                pairs,
                moto_pid,
                cpu["moto_http"],
            ),
            "kmsnb_local": lambda: pairs_per_second(
                lambda n: run_pairs(local, key_id, n), pairs * LOCAL_FACTOR
            ),
            "moto_local": lambda: moto_in_process(pairs),
        }
        for case in cases.values():  # warm up: connection pools, imports, caches
            case()
        for values in cpu.values():
            values.clear()
        results = interleaved_rounds(cases, arguments.rounds, seed=arguments.seed)
    local.close()
    return results, cpu


def _cpu_cell(values: list[float | None]) -> str:
    known = [value for value in values if value is not None]
    if len(known) < len(values) or not known:
        return "-"
    low, high = spread(known)
    return f"{median(known):,.0f} ({low:,.0f}-{high:,.0f})"


def report(results: dict[str, list[float]], cpu: dict[str, list[float | None]]) -> None:
    rows = []
    for name in ("kmsnb_http", "moto_http", "kmsnb_local", "moto_local"):
        low, high = spread(results[name])
        rows.append([name, f"{median(results[name]):,.0f}", f"{low:,.0f}-{high:,.0f}"])
    print_table(["case", "pairs/s (median)", "range"], rows)
    print()
    rows = []
    for where, goal in GOALS.items():
        pairs = zip(results[f"kmsnb_{where}"], results[f"moto_{where}"], strict=True)
        ratios = [ours / theirs for ours, theirs in pairs]
        low, high = spread(ratios)
        middle = median(ratios)
        rows.append(
            [
                f"{where}: kmsnb / moto",
                f"{middle:.1f}x",
                f"{low:.1f}-{high:.1f}x",
                f">= {goal:g}x",
                "PASS" if middle >= goal else "FAIL",
            ]
        )
    print_table(["same-round ratio", "median", "range", "goal", "verdict"], rows)
    print()
    # Where a pair's time goes over HTTP: the client's SDK and the server each work while
    # the other waits, so a pair takes about the sum of the two.
    rows = [
        [name, _cpu_cell(values[0::2]), _cpu_cell(values[1::2])] for name, values in cpu.items()
    ]
    print_table(["CPU µs a pair", "client (the SDK, this process)", "server (its process)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=500,
        help=f"pairs per case and round (x{LOCAL_FACTOR} for kmsnb in process)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the case order")
    arguments = parser.parse_args(argv)
    for name in PROXY_VARIABLES:  # the SDKs would send 127.0.0.1 traffic to a proxy
        os.environ.pop(name, None)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{arguments.rounds} rounds, {arguments.pairs} pairs per case\n"
    )
    with tempfile.TemporaryDirectory(prefix="kmsnb-bench-") as workdir:
        report(*measure(arguments, Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
