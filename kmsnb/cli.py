"""The ``kmsnb`` command line.

Layout, meant to grow: :func:`build_parser` makes the top-level parser with the global
options; each command group adds its subparsers in an ``add_<group>_commands`` function
(the file and key commands live in :mod:`kmsnb._commands`, the emulator's here); each
command is one small ``_cmd_<group>_<name>(args) -> int`` function, bound with
``set_defaults(handler=...)``; a group run bare prints its usage (``parser`` default).
Heavy modules (the emulator, the Alibaba SDK) are imported inside the command that needs
them, so ``kmsnb --help`` starts fast and never pulls in pandas, IPython or the SDK.

Exit status: 0 on success, 1 on a failure (printed as ``kmsnb: error: ...``), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from kmsnb._commands import add_file_commands, add_key_commands  # file and key commands
from kmsnb._local_commands import add_clock_option, add_local_commands  # issue 15
from kmsnb.errors import KmsnbError

if TYPE_CHECKING:
    from kmsnb.emulator.server import EmulatorCredentials

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kmsnb`` command with ``argv`` (default ``sys.argv[1:]``); return its status."""
    _escape_unencodable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler: _Handler | None = getattr(args, "handler", None)
    if handler is None:
        args.parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except (KmsnbError, ValueError, OSError) as error:
        print(f"kmsnb: error: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _escape_unencodable_output() -> None:
    """Escape what stdout's encoding cannot show instead of failing once the work is done.

    A file name that is not UTF-8 reaches Python as lone surrogates (PEP 383); with
    ``PYTHONIOENCODING=utf-8`` (strict) printing ``encrypted NAME -> ...`` would fail
    after the output was written. (stderr escapes by default.)
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure) and getattr(sys.stdout, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmsnb",
        description="Envelope encryption with Alibaba Cloud KMS or a local emulator.",
    )
    parser.add_argument(
        "--kms",
        metavar="URI",
        default=None,
        help="the KMS to use: local:PATH, http://HOST:PORT, aliyun:REGION or "
        "https://kms.REGION.aliyuncs.com (default: $KMSNB_KMS, else the local emulator)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain http:// KMS on another machine: data keys then cross the "
        "network in clear (also $KMSNB_ALLOW_INSECURE_HTTP=1; loopback is always allowed)",
    )
    parser.set_defaults(parser=parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_file_commands(commands)  # encrypt, decrypt, inspect, rewrap, convert
    add_key_commands(commands)  # key ..., alias ...
    add_local_commands(commands, emulator=_add_emulator_commands(commands))  # exec, secret, ...
    return parser


def _add_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add a command group (``kmsnb NAME ...``) that prints its usage when run bare."""
    group = commands.add_parser(name, help=help, description=help)
    group.set_defaults(parser=group)
    return group.add_subparsers(title="commands", metavar="COMMAND")


# --- kmsnb emulator ------------------------------------------------------------------------------


def _add_emulator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    emulator = _add_group(commands, "emulator", "run the local KMS emulator")
    serve = emulator.add_parser(
        "serve",
        help="serve the KMS API over HTTP for the official SDKs",
        description="Serve the emulator's keys over the Alibaba Cloud KMS HTTP API until "
        "interrupted (Ctrl-C or SIGTERM).",
    )
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
    serve.set_defaults(handler=_cmd_emulator_serve, parser=serve)
    return emulator


def _cmd_emulator_serve(args: argparse.Namespace) -> int:
    import time

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

    def handle(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
