"""Partitions per second of ``kmsnb.dask`` against plain ``dask.dataframe`` Parquet.

One ``LocalCluster`` (default: 2 worker processes, 1 thread each), one generated frame
(default 16 partitions x 100,000 rows: int64, float64, short strings, timestamps),
persisted on the workers before timing so that generating it costs nothing. Each round
runs every case once, in a shuffled order (seeded), and the table gives the median:

* ``plain_write``: ``ddf.to_parquet(dir)`` (dask's own writer, snappy);
* ``kmsnb_write``: ``kmsnb.dask.to_parquet(ddf, dir, key_id, kms=URI)`` (snappy, then
  one data key and one Cobblestone-256 stream per partition, manifest last);
* ``plain_read`` / ``kmsnb_read``: ``read_parquet(dir)`` persisted on the workers and
  waited for (nothing travels back to the client).

The KMS is the local emulator in each worker process (``local:`` URI, keystore in the
run's temporary folder), so a data key costs microseconds; against a real KMS add one
network round trip per partition (GenerateDataKey or Decrypt), spread over the workers.
Ratios are taken within each round (same machine state), then their median is printed.

Usage::

    .venv/bin/python bench/bench_dask.py                   # 16 x 100k rows, 5 rounds
    .venv/bin/python bench/bench_dask.py --quick           # 4 x 10k rows, 3 rounds
    .venv/bin/python bench/bench_dask.py --threads         # workers as threads
    .venv/bin/python bench/bench_dask.py --kms-uri http://127.0.0.1:8080  # a served emulator

Files go to a temporary folder under ``bench/out/`` (git-ignored) or ``--dir``, removed
at the end. Exits 0 whatever the figures (a report), non-zero only on errors.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from _common import median, print_table, spread

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"

CASES = ("plain_write", "kmsnb_write", "plain_read", "kmsnb_read")
#: Each kmsnb case against the plain case of the same direction, same round.
BASELINE_OF = {"kmsnb_write": "plain_write", "kmsnb_read": "plain_read"}


def _make_partition(index: int, rows: int) -> Any:
    """One generated partition (runs on a worker: no large graph leaves the client)."""
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(index)
    start = index * rows
    return pd.DataFrame(
        {
            "id": np.arange(start, start + rows, dtype="int64"),
            "amount": generator.normal(100.0, 15.0, rows),
            "customer": pd.array([f"c{n % 5000:05d}" for n in range(rows)], dtype="string"),
            "at": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="s"),
        },
        index=pd.RangeIndex(start, start + rows),
    )


def _run(args: argparse.Namespace) -> None:
    import dask.dataframe as dd
    import distributed

    import kmsnb.connection
    import kmsnb.dask
    from kmsnb.kms.local import LocalKms

    root = Path(tempfile.mkdtemp(prefix="bench-dask-", dir=args.dir))
    try:
        if args.kms_uri is None:
            store = root / "kms"
            kms_uri = f"local:{store}"
            with LocalKms(store) as kms:
                key_id = kms.create_key("bench_dask").key_id
        else:
            kms_uri = args.kms_uri
            key_id = (
                args.key_id or kmsnb.connection.connect(kms_uri).create_key("bench_dask").key_id
            )

        with (
            distributed.LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=not args.threads,
                dashboard_address=":0",
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            ddf = dd.from_map(
                _make_partition, range(args.partitions), rows=args.rows, enforce_metadata=False
            ).persist()
            distributed.wait(ddf)

            def target(case: str, round_index: int) -> Path:
                return root / f"{case.split('_')[0]}-{round_index}"

            def read_back(frame: Any) -> None:
                persisted = frame.persist()
                distributed.wait(persisted)
                del persisted

            actions: dict[str, Callable[[int], None]] = {
                "plain_write": lambda r: ddf.to_parquet(target("plain_write", r)),
                "kmsnb_write": lambda r: kmsnb.dask.to_parquet(
                    ddf, target("kmsnb_write", r), key_id, kms=kms_uri
                ),
                "plain_read": lambda r: read_back(dd.read_parquet(target("plain_write", r))),
                "kmsnb_read": lambda r: read_back(
                    kmsnb.dask.read_parquet(target("kmsnb_write", r), kms=kms_uri)
                ),
            }

            # One untimed round: imports and the KMS connection on every worker.
            for case in CASES:
                actions[case](-1)
            client.run(lambda: None)

            order = random.Random(args.seed)
            rounds: list[dict[str, float]] = []
            sizes: dict[str, int] = {}
            for round_index in range(args.rounds):
                # Writes precede the reads of their own round; within that, shuffle.
                writes = ["plain_write", "kmsnb_write"]
                reads = ["plain_read", "kmsnb_read"]
                order.shuffle(writes)
                order.shuffle(reads)
                timings: dict[str, float] = {}
                for case in [*writes, *reads]:
                    start = time.perf_counter()
                    actions[case](round_index)
                    timings[case] = time.perf_counter() - start
                rounds.append(timings)
                if round_index == 0:
                    sizes = {
                        case: sum(
                            f.stat().st_size for f in target(case, 0).rglob("*") if f.is_file()
                        )
                        for case in ("plain_write", "kmsnb_write")
                    }
                for case in ("plain_write", "kmsnb_write"):
                    shutil.rmtree(target(case, round_index - 1), ignore_errors=True)
                print(
                    f"round {round_index + 1}/{args.rounds}: "
                    + ", ".join(f"{case} {timings[case]:.2f} s" for case in CASES),
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    _report(args, rounds, sizes)


def _report(
    args: argparse.Namespace, rounds: list[dict[str, float]], sizes: dict[str, int]
) -> None:
    workers = f"{args.workers} {'threads' if args.threads else 'processes'} x 1 thread"
    print(
        f"\nkmsnb.dask vs dask Parquet: {args.partitions} partitions x {args.rows:,} rows, "
        f"LocalCluster {workers}, {args.rounds} rounds, "
        f"KMS {args.kms_uri or 'local: (in-process emulator)'}"
    )
    print(
        f"python {platform.python_version()}, dask {metadata.version('dask')}, "
        f"pyarrow {metadata.version('pyarrow')}, pandas {metadata.version('pandas')}, "
        f"{platform.machine()}"
    )
    print(
        f"dataset on disk: plain {sizes['plain_write'] / 1e6:.1f} MB, "
        f"kmsnb {sizes['kmsnb_write'] / 1e6:.1f} MB (Parquet snappy in both)\n"
    )
    rows = []
    for case in CASES:
        times = [timings[case] for timings in rounds]
        fastest, slowest = spread(times)
        seconds = median(times)
        ratio = "—"
        if case in BASELINE_OF:
            baseline = BASELINE_OF[case]
            ratio = f"{median(t[case] / t[baseline] for t in rounds):.2f}x"
        rows.append(
            [
                case,
                f"{seconds:.3f}",
                f"{fastest:.3f}-{slowest:.3f}",
                f"{args.partitions / seconds:.1f}",
                f"{args.partitions * args.rows / seconds / 1e6:.2f}",
                ratio,
            ]
        )
    print_table(["case", "median s", "min-max s", "partitions/s", "M rows/s", "time ÷ plain"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per partition")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", action="store_true", help="workers as threads")
    parser.add_argument("--kms-uri", help="a KMS URI instead of a fresh local emulator")
    parser.add_argument("--key-id", help="with --kms-uri: the master key (else one is created)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--dir", type=Path, default=None, help="where the datasets go")
    parser.add_argument("--quick", action="store_true", help="4 x 10k rows, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.partitions, args.rows, args.rounds = 4, 10_000, 3
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 for a median")
    if args.dir is None:
        DEFAULT_OUT.mkdir(parents=True, exist_ok=True)
        args.dir = DEFAULT_OUT
    _run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
