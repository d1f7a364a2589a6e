"""What a small file's CPU costs right after the process slept (issue 16, item 2).

A durable ``encrypt_file`` of a small file sleeps twice in the kernel (the fsync of the
file, then of its folder), and the code that runs after each wake-up finds the caches
cold. This bench times the same ``encrypt_file(durable=False)`` of a ``--size`` file
(4 KiB) with the in-process emulator, so that no fsync of its own is timed, in three
settings, interleaved in a shuffled order each round:

* ``back_to_back``: one call after another;
* ``after_sleep``: each call after ``time.sleep(0.0004)`` (the process idles);
* ``after_fsync``: each call after a 4 KiB write and fsync of another file (the process
  sleeps in the kernel, as a durable write's does).

Only the calls are timed, never the sleep or the fsync before them. Times are medians
over ``--rounds`` of the mean per call, with the same-round ratio to ``back_to_back``;
the spread of the rounds in parentheses. This is why kmsnb's per-file Python costs about
twice as much on ext4 as on tmpfs (the README's performance section).

Run::

    .venv/bin/python bench/bench_wake.py [--size 4K] [--files 400] [--rounds 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import format_size, median, parse_size, print_table, spread

SETTINGS = ("back_to_back", "after_sleep", "after_fsync")


def _measure(setting: str, work: Callable[[int], None], files: int, spare: int) -> float:
    """Mean seconds of ``work(i)`` over ``files`` calls, each after ``setting``."""
    total = 0.0
    block = b"\0" * 4096
    for index in range(files):
        if setting == "after_sleep":
            time.sleep(0.0004)
        elif setting == "after_fsync":
            os.write(spare, block)
            os.fsync(spare)
        started = time.perf_counter()
        work(index)
        total += time.perf_counter() - started
    return total / files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("4K"), help="(4K)")
    parser.add_argument("--files", type=int, default=400, help="calls per setting and round")
    parser.add_argument("--rounds", type=int, default=5, help="(5)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="(/tmp)")
    parser.add_argument("--seed", type=int, default=1, help="of the order of the settings")
    arguments = parser.parse_args(argv)

    from kmsnb import encrypt_file
    from kmsnb.kms.local import LocalKms

    workdir = Path(tempfile.mkdtemp(prefix="kmsnb-bench-wake-", dir=arguments.dir))
    try:
        kms = LocalKms(workdir / "keystore")
        key_id = kms.create_key("bench").key_id
        source = workdir / "source"
        source.write_bytes(os.urandom(arguments.size))
        spare = os.open(workdir / "spare", os.O_WRONLY | os.O_CREAT, 0o600)
        times: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
        order = random.Random(arguments.seed)
        for round_number in range(arguments.rounds + 1):  # round 0 warms up, not kept
            settings = list(SETTINGS)
            order.shuffle(settings)
            for setting in settings:
                outputs = workdir / f"{setting}-{round_number}"
                outputs.mkdir()

                def work(index: int, outputs: Path = outputs) -> None:
                    encrypt_file(
                        source, outputs / f"{index}", key_id, kms=kms, durable=False, progress=False
                    )

                mean = _measure(setting, work, arguments.files, spare)
                if round_number:
                    times[setting].append(mean)
                shutil.rmtree(outputs)
        os.close(spare)
        kms.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    base = times["back_to_back"]
    rows = []
    for setting in SETTINGS:
        ratios = [value / reference for value, reference in zip(times[setting], base, strict=True)]
        low, high = spread(value * 1e6 for value in times[setting])
        rows.append(
            [
                setting,
                f"{median(times[setting]) * 1e6:.0f} ({low:.0f}-{high:.0f})",
                f"{median(ratios):.2f}",
            ]
        )
    print(
        f"encrypt_file(durable=False) of {format_size(arguments.size)}, {arguments.files} "
        f"calls per setting, {arguments.rounds} rounds, in {arguments.dir}; load average "
        f"{os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    print_table(["setting", "µs a call, median (range)", "÷ back_to_back"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
