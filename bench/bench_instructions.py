"""Instructions, not seconds: what a small file and a CLI start-up cost, under callgrind.

Wall time on a shared 2-core VM swings by tens of percent; the instructions a run
executes barely move (``PYTHONHASHSEED=0``, compiled bytecode), so a change of 1-2 % to
the per-file path shows here where ``bench_peers.py`` cannot see it. Two measurements:

* per file: a 4 KiB ``encrypt_file`` / ``decrypt_file`` with the local emulator in
  process, ``durable=False``, on tmpfs when there is one: (Ir of ``--many`` files minus Ir
  of ``--few``) ÷ their difference, so that start-up and imports cancel out;
* start-up: ``kmsnb encrypt`` / ``decrypt`` of a 1 KiB file (``local:`` KMS, fresh
  process), ``kmsnb --help``, the floor under encrypt (``bench/_startup_floor.py``: its
  libraries doing its work without kmsnb), argparse with one parser and its help (the
  floor under ``--help``) and ``python -c 'import cryptography.cobblestone'``, each as a
  count and as a ratio to the last.

Needs ``valgrind`` (``apt-get install valgrind``); about 30 s. Usage::

    .venv/bin/python bench/bench_instructions.py [--few 50] [--many 550]

A report: exits 0 whatever the figures, non-zero only on errors.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FLOOR_SCRIPT, floor_command, print_table

REPO = Path(__file__).resolve().parent.parent
_COLLECTED = re.compile(r"Collected : (\d+)")

# The child of the per-file measurement: imports, a key, warm-up, then `count` files.
_PER_FILE = """
import os, sys
from kmsnb import decrypt_file, encrypt_file
from kmsnb.kms.local import LocalKms
mode, count, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kms = LocalKms(os.path.join(base, "keystore"))
key = kms.create_key().key_id
src, enc = os.path.join(base, "plain"), os.path.join(base, "cipher")
with open(src, "wb") as plain:
    plain.write(bytes(range(256)) * 16)
encrypt_file(src, enc, key, kms=kms, progress=False, durable=False)
def one(name):
    out = os.path.join(base, name)
    if mode == "encrypt":
        encrypt_file(src, out, key, kms=kms, progress=False, durable=False)
    else:
        decrypt_file(enc, out, kms=kms, progress=False, durable=False)
for index in range(20):  # lazy imports, the first sweep of the folder
    one(f"warm{index}")
# The folder's sweep comes once a second of wall time, which callgrind stretches by the
# machine's speed: with none in the counted files, the count is the file's own.
import kmsnb._temporary
kmsnb._temporary.SWEEP_INTERVAL_S = float("inf")
for index in range(count):
    one(f"out{index}")
"""


# What ``kmsnb --help`` cannot do with less: argparse, a parser, its help text.
_ARGPARSE_HELP = """
import argparse
parser = argparse.ArgumentParser(prog="floor")
parser.add_argument("src")
parser.add_argument("-o")
parser.format_help()
"""


def _environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the bytecode compiled once, then read
    return env


def instructions(argv: list[str]) -> int:
    """Instructions ``argv`` executes under callgrind (its output is discarded)."""
    env = _environment()
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(completed.stderr)
    if completed.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(argv)} failed under callgrind:\n{completed.stderr[-2000:]}")
    return int(found.group(1))


def per_file(mode: str, few: int, many: int) -> int:
    counts = []
    shm = Path("/dev") / "shm"  # tmpfs: the disk stays out of it
    scratch = str(shm) if shm.is_dir() else None
    for count in (few, many):
        with tempfile.TemporaryDirectory(prefix="kmsnb-ir-", dir=scratch) as base:
            counts.append(instructions([sys.executable, "-c", _PER_FILE, mode, str(count), base]))
    return (counts[1] - counts[0]) // (many - few)


def startup(work: Path) -> dict[str, int]:
    kmsnb = [sys.executable, "-m", "kmsnb"]
    script = Path(sys.executable).with_name("kmsnb")
    if script.exists():
        kmsnb = [str(script)]
    local = [*kmsnb, "--kms", f"local:{work / 'keystore'}"]
    create = [*local, "key", "create", "--alias", "alias/ir"]
    subprocess.run(create, check=True, capture_output=True)
    plain, cipher = work / "plain", work / "plain.kms"
    plain.write_bytes(os.urandom(1024))
    runs = {
        "kmsnb encrypt": [*local, "encrypt", str(plain), "-o", str(cipher), "-k", "alias/ir",
                          "--overwrite"],
        "kmsnb decrypt": [*local, "decrypt", str(cipher), "-o", str(work / "back"),
                          "--overwrite"],
        "kmsnb --help": [*kmsnb, "--help"],
        "floor of encrypt": floor_command(plain, work / "floor"),
        "argparse, one parser, its help": [sys.executable, "-c", _ARGPARSE_HELP],
        "import cryptography.cobblestone": [sys.executable, "-c",
                                            "import cryptography.cobblestone"],
    }  # fmt: skip
    for argv in runs.values():  # make the ciphertext, and the floor script's bytecode
        subprocess.run(argv, check=True, capture_output=True, env=_environment())
    return {name: instructions(argv) for name, argv in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--few", type=int, default=50, help="files in the short run (50)")
    parser.add_argument("--many", type=int, default=550, help="files in the long run (550)")
    args = parser.parse_args()
    if args.many <= args.few:
        parser.error("--many must be more than --few")
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions: valgrind is not installed (apt-get install valgrind)")
    # Counted runs read compiled bytecode, as an installed kmsnb does: an edited module
    # compiled inside a counted run would add its compilation (as bench_startup.py does).
    compiled = [str(REPO / "kmsnb"), str(FLOOR_SCRIPT)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *compiled], check=True)
    rows = [
        [f"4 KiB {mode}_file, per file", f"{per_file(mode, args.few, args.many):,}", "-"]
        for mode in ("encrypt", "decrypt")
    ]
    with tempfile.TemporaryDirectory(prefix="kmsnb-ir-startup-") as folder:
        counts = startup(Path(folder))
    baseline = counts["import cryptography.cobblestone"]
    rows += [[name, f"{count:,}", f"{count / baseline:.2f}"] for name, count in counts.items()]
    print_table(["what", "instructions", "÷ the cobblestone import"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
