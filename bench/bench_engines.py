"""Benchmark: what other read paths cost against kmsnb's own, on one frame, in one run.

Issue 14, item 7:

- a projection of a whole-file encrypted Parquet: ``kmsnb.read_parquet(path,
  columns=[one])`` goes through the seekable reader (``kmsnb.open_decrypt_seekable``),
  which decrypts only the chunks holding the footer and that column; compared with
  reading all 10 columns of the same file. Goal: <= 0.3x. For scale, the same ratio for
  plain pandas on the plain file is printed too (what Parquet itself saves).
- kmsnb's Arrow and polars paths against each library's own plain Parquet, on the same
  table: ``kmsnb.arrow.write_table`` / ``read_table`` vs ``pyarrow.parquet.write_table`` /
  ``read_table``, and ``kmsnb.polars.write_parquet`` / ``read_parquet`` vs
  ``DataFrame.write_parquet`` / ``pl.read_parquet``. Goal: <= 1.1x. kmsnb's writes are
  crash-safe (an unnamed file, fsynced, named when complete); the plain ones write in place.
  polars reads a plain local file through a memory map, without a copy; kmsnb decrypts and
  authenticates every byte first and hands polars one copy (it takes ``bytes`` or a file,
  not a buffer it could share), which is most of what the polars read ratio measures.

Method as in ``bench/bench_dataframe.py`` (whose 1 M rows x 10 mixed columns frame this
reuses): the cases interleaved in a shuffled order each round, each timed as the best of
``--repeat`` runs, ratios taken within a round, the median of ``--rounds`` ratios reported
with their range; kmsnb's calls pass ``progress=False`` (the plain ones draw no bar). The
KMS is :class:`kmsnb.testing.InMemoryKms`; files go to ``/dev/shm``
when it exists (``--dir`` elsewhere).

Run::

    .venv/bin/python bench/bench_engines.py [--rows 1000000] [--rounds 3] [--repeat 3]
                                            [--column f64] [--dir PATH]
                                            [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import filesystem_type, median, paired_ratios, print_table, spread, verdict
from bench_dataframe import make_frame

import kmsnb
import kmsnb.arrow
import kmsnb.polars
from kmsnb.testing import InMemoryKms

MAIN_KEY = "alias/bench"
PROJECTION_GOAL = 0.3
ENGINE_GOAL = 1.1
#: (case, reference, goal or None for context only)
COMPARISONS = [
    ("kmsnb whole-file, 1 of 10 (seekable)", "kmsnb whole-file, all 10", PROJECTION_GOAL),
    ("plain pandas, 1 of 10", "plain pandas, all 10", None),
    ("kmsnb.arrow write", "pyarrow write", ENGINE_GOAL),
    ("kmsnb.arrow read", "pyarrow read", ENGINE_GOAL),
    ("kmsnb.polars write", "polars write", ENGINE_GOAL),
    ("kmsnb.polars read", "polars read", ENGINE_GOAL),
]


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(action: Callable[[], Any], repeat: int, clock: Callable[[], float]) -> float:
    """The best of ``repeat`` runs. ``--clock cpu`` counts the process's CPU time (every
    thread's) instead of the wall's: on a machine shared with other work, the wall time
    of both arms grows with the load, by different amounts, and the ratio with it."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = clock()
        action()
        best = min(best, clock() - start)
    return best


def run_rounds(
    df: pd.DataFrame,
    folder: Path,
    column: str,
    rounds: int,
    repeat: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, float]]:
    kms = InMemoryKms()
    kms.create_key(alias=MAIN_KEY)
    plain, whole = folder / "plain.parquet", folder / "whole.parquet.kms"
    df.to_parquet(plain)
    df.kms.to_parquet(whole, MAIN_KEY, kms=kms)
    table = pa.Table.from_pandas(df, preserve_index=False)
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):
        raise AssertionError("a table converted to a Series")
    arrow_plain, arrow_kms = folder / "arrow.parquet", folder / "arrow.parquet.kms"
    polars_plain, polars_kms = folder / "polars.parquet", folder / "polars.parquet.kms"
    pq.write_table(table, arrow_plain)
    kmsnb.arrow.write_table(table, arrow_kms, MAIN_KEY, kms=kms)
    frame.write_parquet(polars_plain)
    kmsnb.polars.write_parquet(frame, polars_kms, MAIN_KEY, kms=kms)
    cases: dict[str, Callable[[], Any]] = {
        "kmsnb whole-file, all 10": lambda: kmsnb.read_parquet(whole, kms=kms, progress=False),
        "kmsnb whole-file, 1 of 10 (seekable)": lambda: kmsnb.read_parquet(
            whole, kms=kms, progress=False, columns=[column]
        ),
        "plain pandas, all 10": lambda: pd.read_parquet(plain),
        "plain pandas, 1 of 10": lambda: pd.read_parquet(plain, columns=[column]),
        "pyarrow write": lambda: pq.write_table(table, folder / "arrow-w.parquet"),
        "kmsnb.arrow write": lambda: kmsnb.arrow.write_table(
            table, folder / "arrow-w.parquet.kms", MAIN_KEY, kms=kms, progress=False, overwrite=True
        ),
        "pyarrow read": lambda: pq.read_table(arrow_plain),
        "kmsnb.arrow read": lambda: kmsnb.arrow.read_table(arrow_kms, kms=kms, progress=False),
        "polars write": lambda: frame.write_parquet(folder / "polars-w.parquet"),
        "kmsnb.polars write": lambda: kmsnb.polars.write_parquet(
            frame,
            folder / "polars-w.parquet.kms",
            MAIN_KEY,
            kms=kms,
            progress=False,
            overwrite=True,
        ),
        "polars read": lambda: pl.read_parquet(polars_plain),
        "kmsnb.polars read": lambda: kmsnb.polars.read_parquet(polars_kms, kms=kms, progress=False),
    }
    # Warm-up, and the check that each path returns the frame's own values.
    pd.testing.assert_frame_equal(df, cases["kmsnb whole-file, all 10"]())
    pd.testing.assert_frame_equal(df[[column]], cases["kmsnb whole-file, 1 of 10 (seekable)"]())
    if not cases["kmsnb.arrow read"]().equals(pq.read_table(arrow_plain)):
        raise AssertionError("kmsnb.arrow.read_table differs from pyarrow's read")
    if not cases["kmsnb.polars read"]().equals(pl.read_parquet(polars_plain)):
        raise AssertionError("kmsnb.polars.read_parquet differs from polars' read")
    results: list[dict[str, float]] = []
    order = list(cases)
    for round_index in range(rounds):
        random.shuffle(order)
        times = {name: timed(cases[name], repeat, clock) for name in order}
        results.append(times)
        print(
            f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{name} {seconds:.3f}s" for name, seconds in times.items()),
            flush=True,
        )
    return results


def report(rounds: list[dict[str, float]]) -> None:
    rows = []
    for case, reference, goal in COMPARISONS:
        ratios = paired_ratios(rounds, case, reference)
        ratio = median(ratios)
        low, high = spread(ratios)
        rows.append(
            [
                f"{case} / {reference}",
                f"{median(r[case] for r in rounds):.3f} / "
                f"{median(r[reference] for r in rounds):.3f}",
                f"{ratio:.3f} ({low:.2f}-{high:.2f})",
                "context" if goal is None else f"<= {goal}",
                "" if goal is None else verdict(ratio, goal),
            ]
        )
    print()
    print_table(
        ["case", "median s (case / ref)", "ratio, median (min-max)", "goal", "verdict"],
        rows,
        align="lrrrr",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="ratios whose median is reported")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case per round (best)")
    parser.add_argument("--column", default="f64", help="the column a projection reads")
    shm = Path("/dev") / "shm"
    default_dir = str(shm) if shm.is_dir() else tempfile.gettempdir()
    parser.add_argument("--dir", default=default_dir, help="where to write (default: tmpfs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="wall time, or process CPU time"
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("at least 3 rounds, for a median worth reading")
    random.seed(args.seed)
    df = make_frame(args.rows, args.seed)
    if args.column not in df.columns:
        parser.error(f"--column must be one of {', '.join(df.columns)}")
    folder = Path(tempfile.mkdtemp(prefix="kmsnb-bench-engines-", dir=args.dir))
    try:
        print(
            f"{args.rows:,} rows x {df.shape[1]} columns, projection on {args.column!r}, "
            f"{args.rounds} rounds (best of {args.repeat} per case, {args.clock} clock), "
            f"files on {filesystem_type(folder)} ({folder}); "
            f"pandas {pd.__version__}, pyarrow {pa.__version__}, polars {pl.__version__}",
            flush=True,
        )
        report(run_rounds(df, folder, args.column, args.rounds, args.repeat, CLOCKS[args.clock]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
