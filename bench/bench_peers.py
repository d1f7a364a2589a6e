"""kmsnb against its peers on files, in one interleaved run (issue 16, item 4).

Measurement only. The cases (``bench/_peer_cases.py``), each in a fresh child process:
plain copy without and with fsync, a crash-safe plain copy (temp file, fsync, rename,
folder fsync), the ``cryptography.cobblestone`` loop, ``kmsnb.encrypt_file`` /
``decrypt_file`` (local emulator in process), the AWS Encryption SDK (defaults, and
unsigned with 64 KiB frames; a raw AES wrapping key), Tink streaming AEAD and age
(pyrage). Each runs on one large file (``--size``, 256 MiB) and on many small ones
(``--small-count`` x ``--small-size``, 1,000 x 4 KiB). Then fresh processes: the CLI
round trip of a 1 KiB file (``kmsnb encrypt`` / ``decrypt``, ``kmsnb --help``) against
``python -c 'import cryptography.cobblestone'`` and ``python -c pass``, and the import
time of ``kmsnb`` and of each peer over ``import cryptography``.

Method (``bench/_common.py``): every round runs every case once, in a shuffled order;
ratios are taken within a round (large file ÷ the fsync'd copy, small files ÷ the
crash-safe copy, kmsnb's ``durable=False`` cases ÷ the copy without fsync, CLI ÷ the
cobblestone import) and reported as the median and range over ``--rounds``. Every
decrypt's output is compared byte for byte with the source, every round. Peak RSS is
each child's own (``VmHWM``), and so is its CPU time in user space and in the kernel
(``getrusage``; per file in the small-file table). The driver imports only the standard
library, so that its children's peaks are theirs. Each child first warms the page cache
it will write into (see ``bench/_common.py``: without that, this VM made a case 3x
slower or not by the order the cases ran in). The peers' outputs are published
crash-safe, as kmsnb's are (``--peer-output safe``; see ``bench/_peer_cases.py``);
``--peer-output direct`` measures them writing straight to the destination.

The tables are made by ``bench/_peer_report.py``. The peers come from the optional extra
``bench``: ``pip install -e '.[bench]'``. A peer that is not installed is skipped with a
printed reason.

Run::

    .venv/bin/python bench/bench_peers.py [--size 256M] [--small-count 1000]
        [--small-size 4K] [--rounds 5] [--dir PATH] [--peers esdk,tink,age]
        [--peer-output safe|direct] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    KIB,
    MIB,
    ChildError,
    files_equal,
    filesystem_type,
    format_size,
    mbps,
    parse_size,
    run_child,
    time_command,
    write_random_file,
)
from _peer_cases import CASES, PEER_MODULES
from _peer_report import CLI_BASELINE, report

REPO = Path(__file__).resolve().parent.parent
CASES_SCRIPT = Path(__file__).resolve().parent / "_peer_cases.py"
IMPORTS = {
    "cryptography": "import cryptography",
    "kmsnb": "import kmsnb",
    "aws_encryption_sdk": "import aws_encryption_sdk",
    "tink": "import tink, tink.streaming_aead",
    "pyrage": "import pyrage",
}


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.sync()  # settle the write-back of what the last case left, outside any timing


def _same_tree(expected: Path, actual: Path) -> bool:
    if expected.is_file():
        return files_equal(expected, actual)
    names = sorted(os.listdir(expected))
    return names == sorted(os.listdir(actual)) and all(
        files_equal(expected / name, actual / name) for name in names
    )


def _is_decrypt(case: str) -> bool:
    return "_dec" in case


def _child(
    case: str, src: Path, dst: Path, state: Path, timeout: float, peer_output: str
) -> dict[str, Any]:
    argv = [sys.executable, str(CASES_SCRIPT), case, "--src", str(src), "--dst", str(dst)]
    argv += ["--state", str(state), "--peer-output", peer_output]
    argv += ["--many"] if src.is_dir() else []
    return run_child(argv, timeout=timeout, cwd=REPO)


def _active_cases(peers: list[str]) -> list[str]:
    cases = []
    for case, (_, peer) in CASES.items():
        if peer is None or peer in peers:
            cases.append(case)
    return cases


def _available_peers(wanted: list[str]) -> list[str]:
    available = []
    for peer in wanted:
        module = PEER_MODULES[peer]
        if importlib.util.find_spec(module) is None:
            print(
                f"  skipping {peer}: {module} is not installed (pip install -e '.[bench]')",
                flush=True,
            )
        else:
            available.append(peer)
    return available


def run_files(
    args: argparse.Namespace, work: Path, cases: list[str], rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    """Every case on the large file and on the small files, interleaved; per-round results."""
    state = work / "state"
    state.mkdir()
    sources = {"large": work / "large.bin", "small": work / "small"}
    write_random_file(sources["large"], args.size)
    sources["small"].mkdir()
    for index in range(args.small_count):
        (sources["small"] / f"{index:05d}.bin").write_bytes(os.urandom(args.small_size))
    os.sync()
    timeouts = {"large": 300 + args.size / 1e6, "small": 300 + args.small_count * 0.5}
    # Decrypt cases read a ciphertext their encrypt case made (untimed, before the rounds).
    inputs: dict[tuple[str, str], Path] = {}
    for kind, source in sources.items():
        for case in cases:
            if _is_decrypt(case):
                prepared = work / f"prepared.{kind}.{case}"
                producer = case.replace("_dec", "_enc")
                _child(producer, source, prepared, state, timeouts[kind], args.peer_output)
                inputs[case, kind] = prepared
    rounds: dict[str, list[dict[str, Any]]] = {"large": [], "small": []}
    for round_index in range(args.rounds):
        order = [(case, kind) for case in cases for kind in sources]
        rng.shuffle(order)
        results: dict[str, dict[str, Any]] = {"large": {}, "small": {}}
        for case, kind in order:
            dst = work / f"out.{kind}.{case}"
            _remove(dst)
            src = inputs.get((case, kind), sources[kind])
            result = _child(case, src, dst, state, timeouts[kind], args.peer_output)
            if _is_decrypt(case) or case.startswith("copy"):
                result["byte_exact"] = _same_tree(sources[kind], dst)
                if not result["byte_exact"]:
                    raise ChildError(f"{case} ({kind}): the output differs from the source")
            _remove(dst)
            results[kind][case] = result
        for kind in sources:
            rounds[kind].append(results[kind])
        large = results["large"]
        print(
            f"  round {round_index + 1}/{args.rounds}, large (MB/s): "
            + ", ".join(f"{c} {mbps(args.size, large[c]['seconds']):,.0f}" for c in cases),
            flush=True,
        )
    return rounds


def _kmsnb_command() -> list[str]:
    script = Path(sys.executable).with_name("kmsnb")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kmsnb"]


def run_processes(
    work: Path, runs: int, peers: list[str], rng: random.Random
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Fresh processes: the CLI round trip of a 1 KiB file, and import times."""
    kmsnb = [*_kmsnb_command(), "--kms", f"local:{work / 'cli-keystore'}"]
    subprocess.run(
        [*kmsnb, "key", "create", "--alias", "alias/bench"],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    plain, cipher, back = work / "one-kib.bin", work / "one-kib.kms", work / "one-kib.out"
    plain.write_bytes(os.urandom(KIB))
    encrypt = ["encrypt", str(plain), "-o", str(cipher), "--key", "alias/bench", "--overwrite"]
    commands = {
        "kmsnb encrypt": [*kmsnb, *encrypt],
        "kmsnb decrypt": [*kmsnb, "decrypt", str(cipher), "-o", str(back), "--overwrite"],
        "kmsnb --help": [*_kmsnb_command(), "--help"],
        CLI_BASELINE: [sys.executable, "-c", "import cryptography.cobblestone"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    wanted_imports = {"cryptography", "kmsnb"} | {PEER_MODULES[peer] for peer in peers}
    for name, code in IMPORTS.items():
        if name in wanted_imports:
            commands[f"import {name}"] = [sys.executable, "-c", code]
    for argv in commands.values():  # warm the caches, and make the ciphertext
        time_command(argv, cwd=REPO)
    cli: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        order = list(commands)
        rng.shuffle(order)
        for name in order:
            cli[name].append(time_command(commands[name], cwd=REPO))
        if back.read_bytes() != plain.read_bytes():
            raise ChildError("kmsnb decrypt: the CLI's output differs from the source")
    imports = {name: cli.pop(f"import {name}") for name in IMPORTS if f"import {name}" in cli}
    return cli, imports


# -- the report ---------------------------------------------------------------------------


# -- command line -------------------------------------------------------------------------


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _peers(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEER_MODULES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(unknown)}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_size, default=256 * MIB, help="large file (256M)")
    parser.add_argument("--small-count", type=int, default=1000, help="small files (1000)")
    parser.add_argument("--small-size", type=_size, default=4 * KIB, help="each (4K)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="(/tmp)")
    parser.add_argument("--peers", type=_peers, default=list(PEER_MODULES), help="esdk,tink,age")
    parser.add_argument(
        "--peer-output",
        choices=("safe", "direct"),
        default="safe",
        help="publish the peers' outputs crash-safe as kmsnb does (safe), or write them "
        "straight to the destination with one fsync (direct)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the case order (1)")
    parser.add_argument("--json", type=Path, default=None, help="save raw results as JSON")
    args = parser.parse_args()
    if args.rounds < 3 or args.small_count < 1:
        parser.error("at least 3 rounds and 1 small file")
    rng = random.Random(args.seed)
    # A user's Python keeps bytecode caches; without them each fresh process would compile
    # kmsnb anew, and the start-up figures would time the compiler.
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("  note: PYTHONDONTWRITEBYTECODE unset for the child processes", flush=True)
    work = Path(tempfile.mkdtemp(prefix="kmsnb-bench-peers-", dir=args.dir))
    fs_type = filesystem_type(work)
    print(
        f"bench_peers: {format_size(args.size)} and {args.small_count:,} x "
        f"{format_size(args.small_size)}, {args.rounds} rounds, in {work} ({fs_type}); "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if fs_type in ("tmpfs", "ramfs"):
        print(f"  note: {fs_type} makes fsync a no-op; pass --dir on a disk", flush=True)
    try:
        peers = _available_peers(args.peers)
        cases = _active_cases(peers)
        start = time.perf_counter()
        rounds = run_files(args, work, cases, rng)
        cli, imports = run_processes(work, max(5, args.rounds), peers, rng)
        print(f"  measured in {time.perf_counter() - start:.0f} s", flush=True)
        report(args, fs_type, rounds, cases, cli, imports)
        if args.json:
            raw = {"rounds": rounds, "cli": cli, "imports": imports, "cases": cases}
            args.json.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    except ChildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
