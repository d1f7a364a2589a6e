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

The peers come from the optional extra ``bench``: ``pip install -e '.[bench]'``. A peer
that is not installed is skipped with a printed reason.

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
from datetime import UTC, datetime
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
    median,
    paired_ratios,
    parse_size,
    print_table,
    run_child,
    spread,
    time_command,
    verdict,
    write_random_file,
)
from _peer_cases import CASES, PEER_MODULES

REPO = Path(__file__).resolve().parent.parent
CASES_SCRIPT = Path(__file__).resolve().parent / "_peer_cases.py"
LARGE_BASELINE, SMALL_BASELINE, NOFSYNC_BASELINE = "copy_fsync", "copy_safe", "copy"
CLI_BASELINE = "python -c 'import cryptography.cobblestone'"
GOAL_LARGE, GOAL_SMALL, GOAL_CLI, GOAL_HELP, GOAL_IMPORT_S = 1.05, 1.5, 2.5, 1.5, 0.040
X, DASH = "\u00d7", "\u2013"  # x and - as the README prints them
PEER_NAMES = {
    "cobblestone": "Cobblestone loop",
    "esdk": "AWS ESDK (defaults)",
    "esdk64": "AWS ESDK (unsigned, 64 KiB frames)",
    "tink": "Tink streaming",
    "age": "age (pyrage)",
}
IMPORTS = {
    "cryptography": "import cryptography",
    "kmsnb": "import kmsnb",
    "aws_encryption_sdk": "import aws_encryption_sdk",
    "tink": "import tink, tink.streaming_aead",
    "pyrage": "import pyrage",
}


def _peak_mib(sample: dict[str, Any]) -> float:
    """A child's own peak RSS: ``ru_maxrss`` may start from the driver's (see _common)."""
    hwm = sample.get("hwm_kib")
    peak = sample["maxrss_kib"] if hwm is None else min(sample["maxrss_kib"], hwm)
    return float(peak) / KIB


def _range(values: list[float], digits: int = 2, unit: str = "") -> str:
    low, high = spread(values)
    return f"{median(values):,.{digits}f}{unit} ({low:,.{digits}f}{DASH}{high:,.{digits}f})"


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


def _ratios(rounds: list[dict[str, Any]], case: str, baseline: str) -> list[float]:
    seconds = [{name: result["seconds"] for name, result in r.items()} for r in rounds]
    return paired_ratios(seconds, case, baseline)


def _baseline_of(case: str, kind: str) -> str:
    if case.endswith("_nofsync"):
        return NOFSYNC_BASELINE
    return LARGE_BASELINE if kind == "large" else SMALL_BASELINE


def _cpu(rounds: list[dict[str, Any]], case: str, scale: float) -> str:
    """Median CPU time of a case, user / sys, times ``scale`` (results saved before the
    children reported it have none)."""
    if any("user_s" not in r[case] for r in rounds):
        return "-"
    user = median(r[case]["user_s"] * scale for r in rounds)
    system = median(r[case]["sys_s"] * scale for r in rounds)
    return f"{user:,.0f} / {system:,.0f}"


def _file_table(kind: str, rounds: list[dict[str, Any]], cases: list[str], amount: int) -> None:
    rows = []
    # Small files: per file, where kmsnb's own work shows beside the fsyncs' (a process
    # that sleeps in two fsyncs a file resumes with cold caches: user time grows with them).
    if kind == "large":
        scale, cpu_heading = 1000.0, "CPU ms, user / sys"
    else:
        scale, cpu_heading = 1e6 / amount, "CPU µs a file, user / sys"
    for case in cases:
        baseline = _baseline_of(case, kind)
        speeds = [
            mbps(amount, r[case]["seconds"]) if kind == "large" else amount / r[case]["seconds"]
            for r in rounds
        ]
        exact = [r[case].get("byte_exact") for r in rounds]
        rows.append(
            [
                case,
                _range(speeds, 0),
                _range(_ratios(rounds, case, baseline))
                + ("" if case == baseline else f" ÷ {baseline}"),
                _cpu(rounds, case, scale),
                f"{max(_peak_mib(r[case]) for r in rounds):.0f}",
                "-" if exact[0] is None else ("yes" if all(exact) else "NO"),
            ]
        )
    unit = "MB/s" if kind == "large" else "files/s"
    print_table(
        [
            "case",
            f"{unit} median (range)",
            "time ÷ baseline, same round",
            cpu_heading,
            "peak RSS MiB",
            "byte-exact",
        ],
        rows,
    )


def _pair(rounds: list[dict[str, Any]], prefix: str, baseline: str) -> str:
    return (
        f"{median(_ratios(rounds, prefix + '_enc', baseline)):.2f}{X} / "
        f"{median(_ratios(rounds, prefix + '_dec', baseline)):.2f}{X}"
    )


def _scratch_rows(
    args: argparse.Namespace,
    fs_type: str,
    large: list[dict[str, Any]],
    small: list[dict[str, Any]],
    cases: list[str],
) -> list[list[str]]:
    """The README row of ``durable=False``, against the copy without fsync."""
    if "kmsnb_enc_nofsync" not in cases or "kmsnb_dec_nofsync" not in cases:
        return []
    ratios = {
        (kind, case): _ratios(rounds, f"kmsnb_{case}_nofsync", NOFSYNC_BASELINE)
        for kind, rounds in (("large", large), ("small", small))
        for case in ("enc", "dec")
    }
    return [
        [
            f"`durable=False` ({fs_type}), time ÷ plain copy without fsync",
            f"{format_size(args.size)}: encrypt {_range(ratios['large', 'enc'], unit=X)}, "
            f"decrypt {_range(ratios['large', 'dec'], unit=X)}; {args.small_count:,} {X} "
            f"{format_size(args.small_size)}: {_range(ratios['small', 'enc'], unit=X)} / "
            f"{_range(ratios['small', 'dec'], unit=X)}",
            "-",
            "-",
        ]
    ]


def report(
    args: argparse.Namespace,
    fs_type: str,
    rounds: dict[str, list[dict[str, Any]]],
    cases: list[str],
    cli: dict[str, list[float]],
    imports: dict[str, list[float]],
) -> None:
    large, small, count = rounds["large"], rounds["small"], args.small_count
    print(f"\n### One {format_size(args.size)} file on {fs_type}, {args.rounds} rounds\n")
    _file_table("large", large, cases, args.size)
    print(f"\n### {count:,} files of {format_size(args.small_size)} on {fs_type}\n")
    _file_table("small", small, cases, count)
    print()
    for case in cases:
        print(f"- `{case}`: {CASES[case][0]}")

    baseline = cli[CLI_BASELINE]
    cli_rows = []
    for name, times in cli.items():
        same_run = [mine / theirs for mine, theirs in zip(times, baseline, strict=True)]
        cli_rows.append([name, _range([t * 1000 for t in times], 0), _range(same_run)])
    print(f"\n### Fresh processes, {len(baseline)} runs each, interleaved\n")
    print_table(["command", "wall ms median (range)", "÷ the cobblestone import"], cli_rows)
    over: dict[str, list[float]] = {}
    for name, times in imports.items():
        over[name] = [(a - b) * 1000 for a, b in zip(times, imports["cryptography"], strict=True)]
    print()
    print_table(
        ["import", "wall ms median (range)", "over import cryptography, ms"],
        [[n, _range([t * 1000 for t in ts], 0), _range(over[n], 0)] for n, ts in imports.items()],
    )

    def rate(case: str) -> float:
        return median(count / r[case]["seconds"] for r in small)

    peers = [p for p in PEER_NAMES if f"{p}_enc" in cases]
    enc_large = median(_ratios(large, "kmsnb_enc", LARGE_BASELINE))
    dec_large = median(_ratios(large, "kmsnb_dec", LARGE_BASELINE))
    enc_small = median(_ratios(small, "kmsnb_enc", SMALL_BASELINE))
    dec_small = median(_ratios(small, "kmsnb_dec", SMALL_BASELINE))
    ahead = all(
        rate("kmsnb_enc") > rate(f"{p}_enc") and rate("kmsnb_dec") > rate(f"{p}_dec") for p in peers
    )
    cli_ratio = {
        name: median(a / b for a, b in zip(cli[name], baseline, strict=True))
        for name in ("kmsnb encrypt", "kmsnb decrypt", "kmsnb --help")
    }
    cli_ok = (
        max(cli_ratio["kmsnb encrypt"], cli_ratio["kmsnb decrypt"]) <= GOAL_CLI
        and cli_ratio["kmsnb --help"] <= GOAL_HELP
    )
    kmsnb_import = median(over["kmsnb"])
    rows = [
        [
            f"{format_size(args.size)} file, {fs_type}, fsync, time ÷ plain fsync'd copy",
            f"encrypt {_range(_ratios(large, 'kmsnb_enc', LARGE_BASELINE), unit=X)}, "
            f"decrypt {_range(_ratios(large, 'kmsnb_dec', LARGE_BASELINE), unit=X)}",
            "; ".join(f"{PEER_NAMES[p]} {_pair(large, p, LARGE_BASELINE)}" for p in peers)
            + f"; no-fsync copy {median(_ratios(large, 'copy', LARGE_BASELINE)):.2f}{X}",
            f"≤ {GOAL_LARGE}{X} both: {verdict(max(enc_large, dec_large), GOAL_LARGE)}",
        ],
        [
            f"{count:,} {X} {format_size(args.small_size)} files, {fs_type}",
            f"{rate('kmsnb_enc'):,.0f} files/s encrypt, {rate('kmsnb_dec'):,.0f} decrypt "
            f"({enc_small:.2f}{X} / {dec_small:.2f}{X} a crash-safe copy)",
            "; ".join(
                f"{PEER_NAMES[p]} {rate(p + '_enc'):,.0f} / {rate(p + '_dec'):,.0f}" for p in peers
            )
            + f"; crash-safe copy {rate('copy_safe'):,.0f}, fsync'd copy {rate('copy_fsync'):,.0f}",
            f"≤ {GOAL_SMALL}{X} crash-safe copy: "
            f"{verdict(max(enc_small, dec_small), GOAL_SMALL)}; ahead of every peer: "
            f"{'PASS' if ahead else 'FAIL'}",
        ],
        *_scratch_rows(args, fs_type, large, small, cases),
        [
            "CLI round trip of a 1 KiB file, fresh process",
            f"`kmsnb encrypt` {median(cli['kmsnb encrypt']) * 1000:,.0f} ms, `decrypt` "
            f"{median(cli['kmsnb decrypt']) * 1000:,.0f} ms, `kmsnb --help` "
            f"{median(cli['kmsnb --help']) * 1000:,.0f} ms "
            f"({cli_ratio['kmsnb encrypt']:.2f}{X} / {cli_ratio['kmsnb decrypt']:.2f}{X} / "
            f"{cli_ratio['kmsnb --help']:.2f}{X} the cobblestone import)",
            f"`python -c 'import cryptography.cobblestone'` {median(baseline) * 1000:,.0f} ms; "
            f"`python -c pass` {median(cli['python -c pass']) * 1000:,.0f} ms",
            f"≤ {GOAL_CLI}{X} / ≤ {GOAL_HELP}{X}: {'PASS' if cli_ok else 'FAIL'}",
        ],
        [
            "`import kmsnb` over `import cryptography`",
            f"{kmsnb_import:+,.0f} ms",
            "; ".join(
                f"`import {n}` {median(over[n]):+,.0f} ms"
                for n in over
                if n not in ("kmsnb", "cryptography")
            )
            or "-",
            f"≤ +{GOAL_IMPORT_S * 1000:.0f} ms: {verdict(kmsnb_import, GOAL_IMPORT_S * 1000)}",
        ],
    ]
    print(
        "\n### For the README (medians of same-round ratios; ranges in parentheses; peers' "
        f"outputs {'crash-safe' if args.peer_output == 'safe' else 'written directly'})\n"
    )
    print_table(["case", "kmsnb", "peers in the same run", "goal"], rows, align="llll")
    print(
        f"\n`{' '.join(['bench/bench_peers.py', *sys.argv[1:]])}`, "
        f"{datetime.now(UTC):%Y-%m-%d}, load average {os.getloadavg()[0]:.1f} at the end."
    )


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
