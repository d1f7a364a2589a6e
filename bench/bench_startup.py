"""Start-up of the ``kmsnb`` command, as ratios to ``import cryptography.cobblestone``.

Issue 16 item 3: a CLI call should cost little more than Python plus the cipher it uses.
Each round runs, in fresh processes and a shuffled order, ``kmsnb --help``, ``kmsnb
--version``, ``kmsnb encrypt`` and ``kmsnb decrypt`` of a 1 KiB file with a ``local:``
KMS, ``python -c 'import kmsnb'``, the baseline ``python -c 'import cryptography.cobblestone'``
and ``python -c pass``; each command's wall time is divided by the baseline's in the same
round, and the table gives the median and range of those ratios. Goals: encrypt and
decrypt <= 2.5x, ``--help`` <= 1.5x. Beside them runs the floor under ``kmsnb encrypt``
(``bench/_startup_floor.py``): the same libraries doing the same work (argparse and a
parser, json, AES-GCM, HMAC, HKDF and Cobblestone; a key wrapped, a key slot MACed, the
file encrypted and fsynced) with none of kmsnb's code, so that the encrypt ratio can be
read against what its dependencies alone cost. The command is the installed console script
(``.venv/bin/kmsnb``), as users run it; ``--module`` runs ``python -m kmsnb`` instead.

``--importtime`` also prints the ten slowest imports (``python -X importtime``,
cumulative) of each kmsnb command, once, untimed.

Usage::

    .venv/bin/python bench/bench_startup.py               # 15 rounds
    .venv/bin/python bench/bench_startup.py --rounds 31 --importtime

Exits 0 whatever the figures (a report), non-zero only on errors.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FLOOR_SCRIPT,
    KIB,
    ChildError,
    floor_command,
    median,
    print_table,
    spread,
    time_command,
    verdict,
)

REPO = Path(__file__).resolve().parent.parent
BASELINE = "import cryptography.cobblestone"
#: kmsnb encrypt's dependencies doing its work, without kmsnb (``bench/_startup_floor.py``).
FLOOR = "dependency floor of encrypt"
GOALS = {"kmsnb encrypt": 2.5, "kmsnb decrypt": 2.5, "kmsnb --help": 1.5}


def _kmsnb(*, module: bool) -> list[str]:
    script = Path(sys.executable).with_name("kmsnb")
    if module or not script.exists():
        return [sys.executable, "-m", "kmsnb"]
    return [str(script)]


def commands(work: Path, *, module: bool) -> dict[str, list[str]]:
    """The timed commands, after making the key and the 1 KiB file they use."""
    kmsnb = [*_kmsnb(module=module), "--kms", f"local:{work / 'keystore'}"]
    subprocess.run([*kmsnb, "key", "create", "--alias", "bench"], check=True, capture_output=True)
    plain, cipher, back = work / "one-kib.bin", work / "one-kib.bin.kms", work / "back.bin"
    plain.write_bytes(os.urandom(KIB))
    return {
        "kmsnb encrypt": [*kmsnb, "encrypt", str(plain), "-o", str(cipher), "-k", "alias/bench",
                          "--overwrite"],
        "kmsnb decrypt": [*kmsnb, "decrypt", str(cipher), "-o", str(back), "--overwrite"],
        "kmsnb --help": [*_kmsnb(module=module), "--help"],
        "kmsnb --version": [*_kmsnb(module=module), "--version"],
        "import kmsnb": [sys.executable, "-c", "import kmsnb"],
        FLOOR: floor_command(plain, work / "floor.out"),
        BASELINE: [sys.executable, "-c", BASELINE],
        "python -c pass": [sys.executable, "-c", "pass"],
    }  # fmt: skip


def slowest_imports(argv: list[str], count: int = 10) -> list[tuple[int, str]]:
    """The ``count`` slowest imports of ``argv`` (microseconds, cumulative)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    completed = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    rows = []
    for line in completed.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--module", action="store_true", help="time python -m kmsnb")
    parser.add_argument("--importtime", action="store_true", help="print the slowest imports")
    parser.add_argument("--seed", type=int, default=16, help="shuffle seed")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    # Start-up from fresh bytecode, as an installed kmsnb has it: with
    # PYTHONDONTWRITEBYTECODE set (as in this project's shells) an edited module would
    # otherwise be compiled again in every timed run.
    compiled = [str(REPO / "kmsnb"), str(FLOOR_SCRIPT)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *compiled], check=True)
    with tempfile.TemporaryDirectory(prefix="kmsnb-bench-startup-") as folder:
        work = Path(folder)
        timed = commands(work, module=args.module)
        for argv in timed.values():  # warm the caches, and make the ciphertext
            time_command(argv, cwd=REPO)
        times: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.rounds):
            order = list(timed)
            rng.shuffle(order)
            for name in order:
                times[name].append(time_command(timed[name], cwd=REPO))
        if (work / "back.bin").read_bytes() != (work / "one-kib.bin").read_bytes():
            raise ChildError("kmsnb decrypt: the output differs from the source")
        if args.importtime:
            for name in ("kmsnb --help", "kmsnb encrypt", "kmsnb decrypt"):
                print(f"\nslowest imports of {name} (cumulative ms):")
                for micros, module in slowest_imports(timed[name]):
                    print(f"  {micros / 1000:7.1f}  {module}")
    baseline = times[BASELINE]
    rows = []
    for name, values in times.items():
        ratios = [value / base for value, base in zip(values, baseline, strict=True)]
        low, high = spread(ratios)
        goal = GOALS.get(name)
        rows.append([
            name,
            f"{median(values) * 1000:.0f}",
            f"{median(ratios):.2f} ({low:.2f}-{high:.2f})",
            "-" if goal is None else f"<= {goal} {verdict(median(ratios), goal)}",
        ])  # fmt: skip
    load = os.getloadavg()[0]
    print(f"\n{args.rounds} rounds, load average {load:.2f}, {os.cpu_count()} CPUs, "
          f"{'python -m kmsnb' if args.module else 'console script'}")  # fmt: skip
    print_table(["command", "wall ms (median)", f"÷ {BASELINE} (range)", "goal"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
