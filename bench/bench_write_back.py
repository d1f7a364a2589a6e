"""The page-cache trade-off of a durable large write, measured (issue 16, item 1).

One process, a Cobblestone-256 encrypt loop over a generated file (``--size``, 256 MiB),
1 MiB steps, output fsynced, under four write strategies, interleaved in a shuffled order
each round:

* ``none``: write everything, then fsync (what a plain loop, and ``cp``, do);
* ``write_back``: start the write-back of every ``WRITE_BACK_STEP`` bytes as they are
  written (``sync_file_range(SYNC_FILE_RANGE_WRITE)``), then fsync: kmsnb's way, through
  the very function kmsnb uses (``kmsnb._write_back.start_write_back``);
* ``write_back_drop``: the same, and once a step is on disk (``SYNC_FILE_RANGE_WAIT_*``
  on the step before), drop it from the page cache (``POSIX_FADV_DONTNEED``);
* ``encrypt_file``: ``kmsnb.encrypt_file`` itself (an in-memory KMS).

After each write it times a read of the output (what decrypting it, or loading it, right
after would find) and a read of the source. With ``--cold-source`` the source is dropped
from the page cache before each write, so the write reads it from the disk while the
write-back runs (what a source that is not cached meets). Each write starts with warm
memory (see ``bench/_common.py``). Times are medians over ``--rounds``, with the
same-round ratio to ``none``.

Run::

    .venv/bin/python bench/bench_write_back.py [--size 256M] [--rounds 7] [--dir /tmp]
        [--cold-source]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # kmsnb from this tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    filesystem_type,
    format_size,
    median,
    paired_ratios,
    parse_size,
    print_table,
    spread,
    warm_page_cache,
    write_random_file,
)
from cryptography.cobblestone import Cobblestone256Encryptor

import kmsnb
from kmsnb._write_back import WRITE_BACK_STEP, start_write_back
from kmsnb.testing import InMemoryKms

STRATEGIES = ("none", "write_back", "write_back_drop", "encrypt_file")
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _wait_and_drop(fd: int, offset: int, size: int) -> None:
    """Wait until ``size`` bytes at ``offset`` are on disk, then drop them from the cache."""
    import ctypes

    sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    sync_file_range(fd, offset, size, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
    os.posix_fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)


def _encrypt_loop(src: Path, dst: Path, strategy: str) -> None:
    encryptor = Cobblestone256Encryptor(os.urandom(32), b"bench")
    step = memoryview(bytearray(MIB))
    out = bytearray(MIB + 4096)
    with open(src, "rb", buffering=0) as source, open(dst, "wb", buffering=0) as sink:
        fd, written, handed_over = sink.fileno(), 0, 0
        while count := source.readinto(step):
            produced = encryptor.update_into(step[:count], out)
            written += sink.write(memoryview(out)[:produced]) or 0
            if strategy != "none" and written - handed_over >= WRITE_BACK_STEP:
                start_write_back(fd, handed_over, written - handed_over)
                if strategy == "write_back_drop" and handed_over >= WRITE_BACK_STEP:
                    _wait_and_drop(fd, handed_over - WRITE_BACK_STEP, WRITE_BACK_STEP)
                handed_over = written
        sink.write(encryptor.finalize())
        os.fsync(fd)


def _read_time(path: Path) -> float:
    buffer = memoryview(bytearray(MIB))
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as source:
        while source.readinto(buffer):
            pass
    return time.perf_counter() - start


def _drop_cache(path: Path) -> None:
    with open(path, "rb") as source:
        os.posix_fadvise(source.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=256 * MIB, help="file size (256M)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (7)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="(/tmp)")
    parser.add_argument("--cold-source", action="store_true", help="drop the source first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the order (1)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kmsnb-bench-write-back-", dir=args.dir))
    kms = InMemoryKms()
    key_id = kms.create_key()
    runs: dict[str, Callable[[Path, Path], object]] = {
        name: (lambda src, dst, name=name: _encrypt_loop(src, dst, name))
        for name in STRATEGIES[:-1]
    }
    runs["encrypt_file"] = lambda src, dst: kmsnb.encrypt_file(src, dst, key_id, kms=kms)
    fs_type = filesystem_type(work)
    print(
        f"bench_write_back: {format_size(args.size)}, {args.rounds} rounds, {work} ({fs_type}), "
        f"{'cold' if args.cold_source else 'cached'} source, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rng = random.Random(args.seed)
    src = work / "source.bin"
    try:
        write_random_file(src, args.size)
        write: list[dict[str, float]] = []
        output: dict[str, list[float]] = {name: [] for name in runs}
        source: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            order = list(runs)
            rng.shuffle(order)
            seconds: dict[str, float] = {}
            for name in order:
                dst = work / f"out.{name}"
                dst.unlink(missing_ok=True)
                os.sync()
                if args.cold_source:
                    _drop_cache(src)
                warm_page_cache(work, args.size + 16 * MIB)
                start = time.perf_counter()
                runs[name](src, dst)
                seconds[name] = time.perf_counter() - start
                output[name].append(_read_time(dst))
                source[name].append(_read_time(src))
                dst.unlink()
            write.append(seconds)
        rows = []
        for name in runs:
            times = [r[name] for r in write]
            ratios = paired_ratios(write, name, "none")
            low, high = spread(ratios)
            rows.append(
                [
                    name,
                    f"{median(times) * 1000:,.0f}",
                    f"{median(ratios):.2f} ({low:.2f}-{high:.2f})",
                    f"{median(output[name]) * 1000:,.0f}",
                    f"{median(source[name]) * 1000:,.0f}",
                ]
            )
        print()
        print_table(
            ["strategy", "write ms", "÷ none", "then read output ms", "then read source ms"],
            rows,
        )
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    finally:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
