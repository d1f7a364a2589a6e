"""The crash suite's process factory: imports kmsnb, pandas and Dask once, then forks one
child per round, so that a round costs a fork rather than a Python start-up and a Dask
import (the suite kills well over a hundred writers).

Protocol, one JSON object per line: the suite writes a request on stdin, the zygote answers
``{"exit": status, "killed": bool, "elapsed_s": seconds}`` on stdout. The zygote kills its
own child (SIGKILL or the request's signal) after ``kill_after_s`` unless it has exited by
then; it does so before reaping it, so the PID cannot have been reused. With
``"kill_after_lines": N`` the delay counts from the child's N-th line of output rather
than from its start, so that each round is known to have done some work however busy
the machine is.

Requests: ``{"kind": "cli", "argv": [...]}`` (``kmsnb ARGV``), ``{"kind": "frame",
"path", "key_id", "kms_uri", "overwrite", "seed", "rows"}`` (``df.kms.to_parquet``),
``{"kind": "dask", ..., "partitions"}`` (``kmsnb.dask.to_parquet``) and ``{"kind":
"keystore", "kms_uri", "tag"}`` (``kmsnb key create --alias``, ``kmsnb key rotate`` in a
loop, each acknowledged on stdout once it returned). Any request may add ``"log"`` (the
child's stdout and stderr), ``"named_fallback"`` (act as without O_TMPFILE) and
``"file_size_limit"`` (RLIMIT_FSIZE, for a disk that fills up). ``{"kind": "storage",
"args": {...}}`` runs ``_storage_writer.write(**args)``; start that zygote with
``_zygote.py s3fs _storage_writer`` so that its children find s3fs imported.

Arguments name modules to import before the zygote says it is ready.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any, BinaryIO

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

import kmsnb.cli
import kmsnb.dask
import kmsnb.dataframe
from kmsnb import _files
from kmsnb.connection import connect

MARKER = "KMSNB-CRASH-PLAINTEXT-MARKER"


def make_frame(seed: int, rows: int) -> pd.DataFrame:
    """A frame whose every row carries MARKER: any plaintext of it on disk shows it."""
    generator = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "marker": [f"{MARKER}-{seed}-{i}" for i in range(rows)],
            "value": generator.random(rows),
            "count": generator.integers(0, 1 << 40, rows),
        }
    )


def _keystore_loop(request: dict[str, Any]) -> int:
    """Keystore writes through the CLI, in a loop: new keys with an alias, rotations, and a
    stable alias moved from key to key. Each command prints its acknowledgement once its
    call returned (stdout is line-buffered: one write(2) per line); ``announce`` lines say
    which alias change is in flight, which a kill may leave done but unacknowledged."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    uri, tag = request["kms_uri"], request["tag"]
    stable = f"alias/{tag}-stable"
    kms = connect(uri)
    key_id = None
    for index in range(100_000):
        if key_id is None or index % 8 == 0:  # few keys: the emulator's quota is 200
            alias = f"alias/{tag}-{index}"
            if kmsnb.cli.main(["--kms", uri, "key", "create", "--alias", alias]) != 0:
                return 1
            key_id = kms.describe_key(alias).key_id
        elif index % 2:
            if kmsnb.cli.main(["--kms", uri, "key", "rotate", key_id]) != 0:
                return 1
        else:
            print(f"announce {stable} {key_id}")
            action = "update" if index > 2 else "create"
            if kmsnb.cli.main(["--kms", uri, "alias", action, stable, key_id]) != 0:
                return 1
    return 0


def _run(request: dict[str, Any]) -> int:
    if request.get("named_fallback"):
        _files._open_anonymous = lambda directory: None  # type: ignore[assignment]
    limit = request.get("file_size_limit")
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    kind = request["kind"]
    if kind == "storage":
        import _storage_writer  # preloaded, with s3fs, by the zygote's arguments

        return _storage_writer.write(**request["args"])
    if kind == "cli":
        return kmsnb.cli.main(request["argv"])
    if kind == "keystore":
        return _keystore_loop(request)
    frame = make_frame(request["seed"], request["rows"])
    if kind == "frame":
        kms = connect(request["kms_uri"])
        kmsnb.dataframe.to_parquet(
            frame, request["path"], request["key_id"], kms=kms, overwrite=request["overwrite"]
        )
        return 0
    if kind == "dask":
        ddf = dd.from_pandas(frame, npartitions=request["partitions"])
        with dask.config.set(scheduler="threads"):
            kmsnb.dask.to_parquet(
                ddf,
                request["path"],
                request["key_id"],
                kms=request["kms_uri"],
                overwrite=request["overwrite"],
            )
        return 0
    raise ValueError(f"unknown request kind {kind!r}")


def _child(request: dict[str, Any], output: int) -> None:
    code = 98
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        # A pipe, not the log file: RLIMIT_FSIZE (a "full disk") must not silence the child.
        os.dup2(output, 1)
        os.dup2(output, 2)
        code = _run(request)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
        code = 99
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _wait(
    pid: int, output: int, log: BinaryIO, timeout_s: float | None, after_lines: int = 0
) -> int | None:
    """Copy the child's output to ``log`` until it exits; return its wait status, or
    ``None`` if it is still running ``timeout_s`` after its ``after_lines``-th line."""
    lines = 0
    deadline = None if timeout_s is None or after_lines else time.monotonic() + timeout_s
    try:
        pidfd = os.pidfd_open(pid)  # readable once the child exits (Linux 5.3)
    except (AttributeError, OSError):
        pidfd = None  # poll instead
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            step = left if pidfd is not None else min(0.002, left or 0.002)
            watched = [output] if pidfd is None else [pidfd, output]
            ready, _, _ = select.select(watched, [], [], step)
            if output in ready:
                chunk = os.read(output, 65536)
                log.write(chunk)
                lines += chunk.count(b"\n")
                if deadline is None and timeout_s is not None and lines >= after_lines:
                    deadline = time.monotonic() + timeout_s
    finally:
        if pidfd is not None:
            os.close(pidfd)


def main() -> None:
    for name in sys.argv[1:]:
        importlib.import_module(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(request, write_end)
        os.close(write_end)
        with open(request.get("log", os.devnull), "ab") as log:
            status = _wait(
                pid,
                read_end,
                log,
                request.get("kill_after_s"),
                request.get("kill_after_lines", 0),
            )
            killed = status is None
            if status is None:
                os.kill(pid, request.get("signal", signal.SIGKILL))  # not reaped: still ours
                _, status = os.waitpid(pid, 0)
            elapsed = time.monotonic() - started
            while chunk := os.read(read_end, 65536):  # what it wrote before it ended
                log.write(chunk)
        os.close(read_end)
        reply = {"exit": os.waitstatus_to_exitcode(status), "killed": killed, "elapsed_s": elapsed}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
