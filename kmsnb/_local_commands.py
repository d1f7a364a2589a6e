"""``kmsnb emulator exec``, ``kmsnb emulator advance`` and ``kmsnb secret ...``: the
emulator as a stand-in for Alibaba Cloud (issue 15).

:mod:`kmsnb.cli` registers them with one call to :func:`add_local_commands`; the secret
commands live in :mod:`kmsnb._secret_commands`. Heavy modules are imported inside the
commands, as everywhere in the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from kmsnb._commands import _add, _connect
from kmsnb._secret_commands import add_secret_commands

if TYPE_CHECKING:
    from kmsnb._commands import _Commands
    from kmsnb.emulator.clock import MovableClock

__all__ = ["EXIT_NOT_FOUND", "add_clock_option", "add_local_commands"]

EXIT_OK = 0
EXIT_NOT_FOUND = 127  # what shells and env(1) answer for a command that does not exist


def add_clock_option(parser: argparse.ArgumentParser) -> None:
    """``--clock system|movable|TIME`` (``emulator serve`` and ``emulator exec``)."""
    parser.add_argument(
        "--clock",
        default="system",
        metavar="CLOCK",
        type=_clock,
        help="system (default), movable (kmsnb emulator advance moves it forward), or a "
        "start time such as 2030-01-01T00:00:00Z (movable too)",
    )


def _clock(text: str) -> MovableClock | None:
    from kmsnb.emulator.clock import parse_clock

    try:
        return parse_clock(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_local_commands(commands: _Commands, *, emulator: _Commands) -> None:
    """Add ``emulator exec``, ``emulator advance`` (to ``emulator``) and ``secret ...``."""
    exec_ = _add(
        emulator,
        "exec",
        _cmd_emulator_exec,
        "run a program with its Alibaba KMS calls sent to the emulator",
        "Run CMD with every Alibaba Cloud KMS and Secrets Manager endpoint that Python "
        "clients resolve (new and old SDKs, the Secrets Manager client, HTTPS or not, any "
        "region) sent to a KMS emulator on 127.0.0.1, started for the run unless --endpoint "
        "names one, and ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET set to its AccessKey. Proxy "
        "variables are unset for CMD. Exits with CMD's status.",
    )
    exec_.add_argument(
        "--store",
        "--data",
        dest="store",
        metavar="DIR",
        default=None,
        help="keystore of the emulator started (default: $KMSNB_EMULATOR_DIR, else the user "
        "data dir)",
    )
    exec_.add_argument(
        "--endpoint",
        metavar="URL",
        default=None,
        help="use the emulator at URL (http://127.0.0.1:PORT) instead of starting one; CMD "
        "signs with ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, which must be its AccessKey",
    )
    add_clock_option(exec_)
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")

    advance = _add(
        emulator,
        "advance",
        _cmd_emulator_advance,
        "move a served emulator's clock forward (rotation, deletion windows)",
        "Move the clock of the emulator that --kms or KMSNB_KMS names (served with "
        "--clock movable) DURATION forward, so that due rotations and deletions happen. "
        "An authenticated admin call, accepted only from this machine.",
    )
    advance.add_argument("duration", metavar="DURATION", help="e.g. 8d, 36h, 1d12h, 90m, 2w")
    add_secret_commands(commands)


def _cmd_emulator_exec(args: argparse.Namespace) -> int:
    from kmsnb.emulator.execute import EmulatorTarget, child_environment, run_child

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ValueError("kmsnb emulator exec needs a command: kmsnb emulator exec -- CMD [ARGS]")
    if args.endpoint:
        target = _existing_emulator(args.endpoint)
        return _run(command, child_environment(os.environ, target), run_child)
    from kmsnb.emulator.admin import EmulatorAdmin
    from kmsnb.emulator.server import EmulatorServer, resolve_credentials
    from kmsnb.emulator.service import KmsService
    from kmsnb.emulator.store import KeyStore

    # A pair made for this run, never the user's cloud AccessKey (kmsnb.emulator.execute).
    credentials = resolve_credentials({})
    store = KeyStore(args.store)
    try:
        service = KmsService(store, clock=args.clock or time.time)
        server = EmulatorServer(
            service,
            credentials={credentials.access_key_id: credentials.access_key_secret},
            admin=EmulatorAdmin(args.clock),
        )
        with server:
            target = EmulatorTarget(
                server.endpoint, credentials.access_key_id, credentials.access_key_secret
            )
            return _run(command, child_environment(os.environ, target), run_child)
    finally:
        store.close()


def _run(command: list[str], env: dict[str, str], run_child: Any) -> int:
    try:
        status: int = run_child(command, env)
    except FileNotFoundError:
        print(f"kmsnb: error: {command[0]}: command not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except PermissionError:
        print(f"kmsnb: error: {command[0]}: permission denied", file=sys.stderr)
        return EXIT_NOT_FOUND - 1  # 126, as shells answer
    return status


def _existing_emulator(endpoint: str) -> Any:
    from urllib.parse import urlsplit

    from kmsnb.emulator.execute import EmulatorTarget

    parts = urlsplit(endpoint)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(
            f"--endpoint names a local emulator, http://127.0.0.1:PORT, not {endpoint!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.port is None:
        raise ValueError(f"--endpoint is http://127.0.0.1:PORT, not {endpoint!r}")
    access_key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    access_key_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not (access_key_id and access_key_secret):
        raise ValueError(
            "with --endpoint, set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "
            "to the AccessKey that emulator accepts (kmsnb emulator serve prints it)"
        )
    return EmulatorTarget(f"http://{parts.netloc}", access_key_id, access_key_secret)


def _cmd_emulator_advance(args: argparse.Namespace) -> int:
    from kmsnb.emulator.admin import ADVANCE_CLOCK
    from kmsnb.emulator.clock import parse_duration
    from kmsnb.kms._emulator_admin import call_emulator_admin, require_emulator

    seconds = parse_duration(args.duration)
    with _connect(args) as kms:
        body = call_emulator_admin(require_emulator(kms), ADVANCE_CLOCK, {"Seconds": str(seconds)})
    print(
        f"emulator clock moved {args.duration} ({seconds} s) forward: now {body.get('Now')}, "
        f"{body.get('OffsetSeconds')} s ahead of the system clock"
    )
    return EXIT_OK
