"""Benchmark: a large encrypted Parquet stream written to S3 through kmsnb.storage, against
plain pandas to S3 and against kmsnb's own local write.

Cases, each in a fresh child process, interleaved in a shuffled order each round:

- ``plain_s3``: ``df.to_parquet("s3://...")`` (pandas, pyarrow, s3fs);
- ``kmsnb_s3``: ``df.to_parquet`` into ``kmsnb.open_encrypt`` into
  ``kmsnb.storage.open_output("s3://...")`` (multipart upload, part by part, committed at
  the end);
- ``kmsnb_local``: the same into ``open_output(local path)`` (O_TMPFILE + linkat);
- ``plain_local``: ``df.to_parquet(local path)``.

The S3 server is moto, started by this script on 127.0.0.1 on a free port and stopped at
the end. Each child builds the frame, resets its peak RSS (``/proc/self/clear_refs``), then
writes: "memory" is the peak RSS during the write minus the RSS before it. Ratios are taken
within a round and summarised by their median (the machine is shared and noisy). Goals
(issue 13): ``kmsnb_s3`` time <= 1.1x ``plain_s3``; ``kmsnb_s3`` memory within 64 MiB of
``kmsnb_local``'s.

Run::

    .venv/bin/python bench/bench_storage.py [--rows 6500000] [--rounds 3]
                                            [--part-size 8M]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    ChildError,
    emit_result,
    median,
    memory_snapshot,
    paired_ratios,
    parse_size,
    print_table,
    run_child,
    spread,
    verdict,
)

CASES = ("plain_s3", "kmsnb_s3", "kmsnb_local", "plain_local")
COLUMNS = 10
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _environment() -> dict[str, str]:
    names = {*_PROXIES, *(name.lower() for name in _PROXIES)}
    environment = {key: value for key, value in os.environ.items() if key not in names}
    environment.update(_CREDENTIALS)
    return environment


@contextmanager
def _moto_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=_environment(),
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
                    raise SystemExit("the moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the child --------------------------------------------------------------------------


def _reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as control:
        control.write("5")


def child(case: str, rows: int, target: str, endpoint: str, part_size: int) -> None:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    from kmsnb import open_encrypt
    from kmsnb.storage import open_output
    from kmsnb.testing import InMemoryKms

    options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench"}
    frame = pd.DataFrame(
        np.random.default_rng(1).random((rows, COLUMNS)),
        columns=[f"c{index}" for index in range(COLUMNS)],
    )
    kms = InMemoryKms()
    key_id = kms.create_key(alias="alias/bench")
    _reset_peak()
    before = memory_snapshot()
    start = time.perf_counter()
    if case == "plain_s3":
        frame.to_parquet(target, storage_options=options)
    elif case == "plain_local":
        frame.to_parquet(target)
    else:
        store_options = options if case == "kmsnb_s3" else None
        with (
            open_output(
                target, overwrite=True, storage_options=store_options, part_size=part_size
            ) as output,
            open_encrypt(output, key_id, kms=kms) as writer,
        ):
            frame.to_parquet(writer)
    elapsed = time.perf_counter() - start
    after = memory_snapshot()
    growth_kib = (after["hwm_kib"] or 0) - (before["rss_kib"] or 0)
    emit_result({"seconds": elapsed, "growth_mib": growth_kib / 1024})


# -- the driver -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6_500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-size", type=parse_size, default=8 * MIB)
    parser.add_argument("--child", nargs=4, metavar=("CASE", "TARGET", "ENDPOINT", "ROWS"))
    arguments = parser.parse_args()
    if arguments.child:
        case, target, endpoint, rows = arguments.child
        child(case, int(rows), target, endpoint, arguments.part_size)
        return

    import boto3

    frame_mib = arguments.rows * COLUMNS * 8 / MIB
    print(f"frame: {arguments.rows:,} rows x {COLUMNS} float64 columns = {frame_mib:.0f} MiB")
    print(f"part size {arguments.part_size // MIB} MiB, {arguments.rounds} rounds")
    shm = Path("/dev") / "shm"  # tmpfs, as the other benches: the disk stays out
    folder = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None))
    results: dict[str, dict[int, dict[str, Any]]] = {case: {} for case in CASES}
    with _moto_server() as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=_CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket="bench")
        generator = random.Random(13)
        for round_index in range(arguments.rounds):
            order = list(CASES)
            generator.shuffle(order)
            for case in order:
                if case.endswith("_s3"):
                    target = f"s3://bench/{case}-{round_index}.parquet"
                else:
                    target = str(folder / f"{case}-{round_index}.parquet")
                argv = [sys.executable, __file__, "--part-size", str(arguments.part_size)]
                argv += ["--child", case, target, endpoint, str(arguments.rows)]
                try:
                    results[case][round_index] = run_child(argv, timeout=900)
                except ChildError as error:
                    # moto sometimes answers 500 to a large CompleteMultipartUpload: the
                    # case runs again once, and the retry is printed.
                    print(f"  round {round_index} {case}: failed, again: {str(error)[-200:]}")
                    results[case][round_index] = run_child(argv, timeout=900)
                if case.endswith("_s3"):
                    s3.delete_object(Bucket="bench", Key=target.split("/", 3)[3])
                else:
                    os.unlink(target)
                found = results[case][round_index]
                print(
                    f"  round {round_index} {case}: {found['seconds']:.1f} s, "
                    f"+{found['growth_mib']:.0f} MiB",
                    flush=True,
                )
    os.rmdir(folder)
    _report(results)


def _report(results: dict[str, dict[int, dict[str, Any]]]) -> None:
    def series(case: str, field: str) -> dict[int, float]:
        return {index: found[field] for index, found in results[case].items()}

    rows = []
    for case in CASES:
        seconds = list(series(case, "seconds").values())
        growth = list(series(case, "growth_mib").values())
        low, high = spread(seconds)
        rows.append(
            [
                case,
                f"{median(seconds):.1f}",
                f"{low:.1f}-{high:.1f}",
                f"{median(growth):.0f}",
                f"{min(growth):.0f}-{max(growth):.0f}",
            ]
        )
    print_table(["case", "s (median)", "s (range)", "+MiB (median)", "+MiB (range)"], rows)
    rounds = [
        {
            f"{case} {field}": found[field]
            for case in CASES
            for field, found in [
                ("seconds", results[case].get(index, {})),
                ("growth_mib", results[case].get(index, {})),
            ]
            if field in found
        }
        for index in sorted(results["kmsnb_s3"])
    ]
    time_ratio = median(paired_ratios(rounds, "kmsnb_s3 seconds", "plain_s3 seconds"))
    memory_ratio = median(paired_ratios(rounds, "kmsnb_s3 growth_mib", "plain_s3 growth_mib"))
    local_time_ratio = median(paired_ratios(rounds, "kmsnb_s3 seconds", "kmsnb_local seconds"))
    excess = median(
        values["kmsnb_s3 growth_mib"] - values["kmsnb_local growth_mib"] for values in rounds
    )
    print()
    print(
        f"kmsnb_s3 / plain_s3 time: {time_ratio:.2f}x (goal <= 1.10: {verdict(time_ratio, 1.10)})"
    )
    print(f"kmsnb_s3 / plain_s3 memory growth: {memory_ratio:.2f}x")
    print(f"kmsnb_s3 / kmsnb_local time: {local_time_ratio:.2f}x")
    print(
        f"kmsnb_s3 - kmsnb_local memory growth: {excess:+.0f} MiB "
        f"(goal <= 64: {verdict(excess, 64)})"
    )


if __name__ == "__main__":
    main()
