"""The report of ``bench/bench_peers.py``: its tables, from the rounds it measured.

Ratios are taken within a round and summarised as the median and range over the rounds
(``bench/_common.py``): the large file against the fsync'd copy, the small files against
the crash-safe copy, kmsnb's ``durable=False`` cases against the copy without fsync, the
CLI against the cobblestone import. The last table is the one the README shows.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from _common import KIB, format_size, mbps, median, paired_ratios, print_table, spread, verdict
from _peer_cases import CASES

__all__ = ["CLI_BASELINE", "report"]

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


def _peak_mib(sample: dict[str, Any]) -> float:
    """A child's own peak RSS: ``ru_maxrss`` may start from the driver's (see _common)."""
    hwm = sample.get("hwm_kib")
    peak = sample["maxrss_kib"] if hwm is None else min(sample["maxrss_kib"], hwm)
    return float(peak) / KIB


def _range(values: list[float], digits: int = 2, unit: str = "") -> str:
    low, high = spread(values)
    return f"{median(values):,.{digits}f}{unit} ({low:,.{digits}f}{DASH}{high:,.{digits}f})"


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
