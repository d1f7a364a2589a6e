"""``kmsnb emulator serve | exec | advance``: the local KMS emulator from the shell.

``serve`` speaks the Alibaba Cloud KMS HTTP API for the official SDKs; ``exec`` runs a
program with its Alibaba KMS calls sent to an emulator (issue 15); ``advance`` moves a
served emulator's movable clock. The emulator's modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from types import FrameType

from kmsnb.cli import EXIT_NOT_FOUND, EXIT_OK
from kmsnb.cli._parser import add_command, build_group
from kmsnb.cli._run import connect, note_new_keystore

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    import threading
    from typing import Any

    from kmsnb.cli._parser import Commands
    from kmsnb.emulator.clock import MovableClock
    from kmsnb.emulator.server import EmulatorCredentials
    from kmsnb.emulator.store import KeyStore

__all__ = ["add_clock_option", "build_command"]


def build_command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of the group ``emulator``, listed with ``help`` in :mod:`kmsnb.cli`'s table of
    commands."""
    add_commands = {"emulator": _add_emulator_commands}[name]
    return build_group(commands, name, help, add_commands)


def _add_emulator_commands(emulator: Commands) -> None:
    add_command(
        emulator,
        "serve",
        _cmd_emulator_serve,
        "serve the KMS API over HTTP for the official SDKs",
        "Serve the emulator's keys over the Alibaba Cloud KMS HTTP API until "
        "interrupted (Ctrl-C or SIGTERM).",
        arguments=_serve_arguments,
    )
    add_command(
        emulator,
        "exec",
        _cmd_emulator_exec,
        "run a program with its Alibaba KMS calls sent to the emulator",
        "Run CMD with every Alibaba Cloud KMS and Secrets Manager endpoint that Python "
        "clients resolve (new and old SDKs, the Secrets Manager client, HTTPS or not, any "
        "region) sent to a KMS emulator on 127.0.0.1, started for the run unless --endpoint "
        "names one, and ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET set to its AccessKey. Proxy "
        "variables are unset for CMD. Exits with CMD's status.",
        arguments=_exec_arguments,
    )
    add_command(
        emulator,
        "advance",
        _cmd_emulator_advance,
        "move a served emulator's clock forward (rotation, deletion windows)",
        "Move the clock of the emulator that --kms or KMSNB_KMS names (served with "
        "--clock movable) DURATION forward, so that due rotations and deletions happen. "
        "An authenticated admin call, accepted only from this machine.",
        arguments=_advance_arguments,
    )


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)"
    )
    serve.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="keystore directory (default: $KMSNB_EMULATOR_DIR, else the user data dir)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (plain HTTP, development keys)",
    )
    add_clock_option(serve)


def _exec_arguments(exec_: argparse.ArgumentParser) -> None:
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


def _advance_arguments(advance: argparse.ArgumentParser) -> None:
    advance.add_argument("duration", metavar="DURATION", help="e.g. 8d, 36h, 1d12h, 90m, 2w")


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


def _cmd_emulator_serve(args: argparse.Namespace) -> int:
    from kmsnb.emulator.admin import EmulatorAdmin
    from kmsnb.emulator.server import EmulatorServer, resolve_credentials
    from kmsnb.emulator.service import KmsService
    from kmsnb.emulator.store import KeyStore

    credentials = resolve_credentials()
    store = KeyStore(args.data)
    server = EmulatorServer(
        KmsService(store, clock=args.clock or time.time),
        host=args.host,
        port=args.port,
        credentials={credentials.access_key_id: credentials.access_key_secret},
        allow_remote=args.allow_remote,
        admin=EmulatorAdmin(args.clock),
    )
    _note_if_created(store)  # after the server's checks: a refused host gets one error line
    import threading

    stop = threading.Event()
    with _stop_on_signals(stop), server:
        _print_serving(
            server.endpoint, str(store.path), credentials, movable=args.clock is not None
        )
        while not stop.wait(0.5):
            pass
    store.close()
    print("kmsnb emulator stopped", flush=True)
    return EXIT_OK


def _note_if_created(store: KeyStore) -> None:
    """The note every command gives when it opens a keystore that opening created (a
    mistyped ``--data`` makes one), in the words of :class:`~kmsnb.errors.NewKeystoreWarning`
    and at the absolute path, as ``kmsnb.connect("local:PATH")`` names it."""
    if store.created:
        from kmsnb.errors import NewKeystoreWarning

        note_new_keystore(NewKeystoreWarning(str(store.path.absolute())))


def _print_serving(
    endpoint: str, store_path: str, credentials: EmulatorCredentials, *, movable: bool = False
) -> None:
    netloc = endpoint.removeprefix("http://")
    lines = [
        f"kmsnb KMS emulator serving at {endpoint}",
        f"  keystore:       {store_path}",
        f"  AccessKey id:   {credentials.access_key_id}",
    ]
    if credentials.generated:
        # Printed once, here only: a development secret made for this run.
        lines += [
            f"  AccessKey secret (generated for this run): {credentials.access_key_secret}",
            "",
            "Clients sign with this AccessKey; to choose your own, set",
            "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET before serving.",
            "In the clients' shell:",
            f"  export ALIBABA_CLOUD_ACCESS_KEY_ID={credentials.access_key_id}",
            f"  export ALIBABA_CLOUD_ACCESS_KEY_SECRET={credentials.access_key_secret}",
        ]
    else:
        lines += ["  AccessKey secret: from ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    lines += [
        "",
        "Point kmsnb at it:",
        f"  export KMSNB_KMS={endpoint}",
        "Or the official SDK (alibabacloud_kms20160120):",
        "  from alibabacloud_credentials.client import Client as CredentialClient",
        "  from alibabacloud_tea_openapi.models import Config",
        f'  Config(endpoint="{netloc}", protocol="http", credential=CredentialClient())',
        "Unset HTTP_PROXY/http_proxy in the client: the SDKs send even 127.0.0.1 to a proxy.",
    ]
    if movable:
        lines.append(f"The clock is movable: kmsnb --kms {endpoint} emulator advance 8d")
    lines += ["Press Ctrl-C to stop."]
    print("\n".join(lines), flush=True)


@contextlib.contextmanager
def _stop_on_signals(event: threading.Event) -> Iterator[None]:
    """Set ``event`` on SIGINT or SIGTERM instead of dying; restore the handlers after."""
    import signal

    def handle(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    _note_if_created(store)
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
    with connect(args) as kms:
        body = call_emulator_admin(require_emulator(kms), ADVANCE_CLOCK, {"Seconds": str(seconds)})
    print(
        f"emulator clock moved {args.duration} ({seconds} s) forward: now {body.get('Now')}, "
        f"{body.get('OffsetSeconds')} s ahead of the system clock"
    )
    return EXIT_OK
