"""The ``kmsnb`` command line: the entry point and its exit statuses.

Layout: :func:`build_parser` makes the top-level parser with the global options and lists
the commands with their help lines (:data:`_COMMANDS`); each command's parser is built, by
a ``build_command`` function in a module of its own, only when it is chosen —
:mod:`kmsnb.cli.files` (encrypt, decrypt, inspect, rewrap, convert), :mod:`kmsnb.cli.keys`
(``key ...``, ``alias ...``), :mod:`kmsnb.cli.emulator` (``emulator ...``),
:mod:`kmsnb.cli.secrets` (``secret ...``). Parser pieces shared by the groups live in
:mod:`kmsnb.cli._parser`, the wrapper that runs a command and its KMS in
:mod:`kmsnb.cli._run`, stdin/stdout handling in :mod:`kmsnb.cli._stdio`, what is printed
(tables, sizes, errors and their hints) in :mod:`kmsnb.cli._display`.

Start-up is part of the interface: those modules import only argparse and the standard
library at the top, and each command imports what it needs when it runs, so ``kmsnb
--help`` imports no cryptography and ``kmsnb encrypt`` with a ``local:`` KMS no pandas,
pyarrow, IPython, dask, fsspec, tqdm or Alibaba SDK (``tests/cli/test_imports.py``).

Exit status: :data:`EXIT_OK` on success, :data:`EXIT_FAILURE` on a failure (printed as
``kmsnb: error: ...`` plus a hint), :data:`EXIT_USAGE` on a usage error,
:data:`EXIT_UNSUPPORTED_STORAGE` for a URL kmsnb cannot read or write safely (nothing was
read or written; a script can fall back to a local file and a copy),
:data:`EXIT_INTERRUPTED` on Ctrl-C, 128 + N when stopped by signal N (SIGTERM, SIGHUP);
``emulator exec`` exits with its command's status (:data:`EXIT_NOT_FOUND` when there is
no such command).
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kmsnb.cli._parser import Builder, Commands

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNSUPPORTED_STORAGE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # what argparse exits with
EXIT_UNSUPPORTED_STORAGE = 3  # UnsupportedStorageError: refused before any I/O
EXIT_NOT_FOUND = 127  # what shells and env(1) answer for a command that does not exist
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kmsnb`` command with ``argv`` (default ``sys.argv[1:]``); return its status."""
    _escape_unencodable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        args.parser.print_usage(sys.stderr)
        return EXIT_USAGE
    return handler(args)  # kmsnb.cli._run.run_command wraps it: errors become statuses


def _escape_unencodable_output() -> None:
    """Escape what stdout's encoding cannot show instead of failing once the work is done.

    A file name that is not UTF-8 reaches Python as lone surrogates (PEP 383); with
    ``PYTHONIOENCODING=utf-8`` (strict) printing ``encrypted NAME -> ...`` would fail
    after the output was written. (stderr escapes by default.)
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure) and getattr(sys.stdout, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from kmsnb._version import __version__

        print(f"kmsnb {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``kmsnb`` parser (cheap: no command's module is imported, no subparser built)."""
    from kmsnb.cli._parser import HelpFormatter, add_elsewhere, subcommands

    parser = argparse.ArgumentParser(
        prog="kmsnb",
        description="Envelope encryption with Alibaba Cloud KMS or a local emulator.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
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
    commands = subcommands(parser)  # each command's parser is built when it is chosen
    for name, help, build in _COMMANDS:
        add_elsewhere(commands, name, help, build)
    return parser


# Each module of commands is imported only when one of its commands is chosen (start-up):
# `kmsnb encrypt` imports kmsnb.cli.files alone, `kmsnb --help` none of them.


def _files(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    from kmsnb.cli import files

    return files.build_command(commands, name, help)


def _keys(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    from kmsnb.cli import keys

    return keys.build_command(commands, name, help)


def _emulator(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    from kmsnb.cli import emulator

    return emulator.build_command(commands, name, help)


def _secrets(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    from kmsnb.cli import secrets

    return secrets.build_command(commands, name, help)


#: The commands ``kmsnb --help`` lists, in its order: name, help line, and the module
#: function that builds the command's parser when it is chosen.
_COMMANDS: tuple[tuple[str, str, Builder], ...] = (
    ("encrypt", "encrypt a file under a KMS master key", _files),
    ("decrypt", "decrypt a kmsnb file (or a tutorial .cipher file)", _files),
    ("inspect", "show what an encrypted file's header says, without the KMS", _files),
    ("rewrap", "move a file to another master key without re-encrypting its data", _files),
    ("convert", "rewrite a tutorial .cipher file as a kmsnb file", _files),
    ("key", "manage master keys (CMKs)", _keys),
    ("alias", "manage aliases (alias/NAME) of master keys", _keys),
    ("emulator", "run the local KMS emulator", _emulator),
    ("secret", "manage secrets (Secrets Manager) without showing them", _secrets),
)
