"""``kmsnb secret create|put|get|list|delete|restore``: Secrets Manager from the shell.

A secret's value never goes through the command line, where ``ps`` and the shell history
would show it: ``create`` and ``put`` read it from ``--value-file`` or standard input (a
prompt without echo on a terminal), and ``get`` writes it only to a pipe, a file
(``-o FILE``, mode 0600) or, with ``--reveal``, a terminal. A text value read this way
loses one trailing newline (``echo pw |`` and most editors add one); ``--binary`` values
are kept byte for byte.
"""

from __future__ import annotations

import argparse
import sys

from kmsnb.cli import EXIT_OK
from kmsnb.cli._parser import add_command, add_key_option, build_group
from kmsnb.cli._run import connect

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from kmsnb.cli._parser import Commands

__all__ = ["build_command"]


def build_command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of the group ``secret``, listed with ``help`` in :mod:`kmsnb.cli`'s table of
    commands."""
    add_commands = {"secret": _add_secret_commands}[name]
    return build_group(commands, name, help, add_commands)


def _add_secret_commands(secret: Commands) -> None:
    add_command(
        secret,
        "create",
        _cmd_secret_create,
        "create a secret; its value from stdin or --value-file",
        arguments=_create_arguments,
    )
    add_command(
        secret,
        "put",
        _cmd_secret_put,
        "store a new value (becomes ACSCurrent); from stdin or a file",
        arguments=_value_arguments,
    )
    add_command(
        secret,
        "get",
        _cmd_secret_get,
        "write a secret's value to a pipe, a file or (--reveal) here",
        arguments=_get_arguments,
    )
    add_command(secret, "list", _cmd_secret_list, "list secrets: names and dates, never values")
    add_command(
        secret,
        "delete",
        _cmd_secret_delete,
        "delete a secret after a recovery window",
        arguments=_delete_arguments,
    )
    add_command(
        secret, "restore", _cmd_secret_restore, "cancel a deletion", arguments=_name_argument
    )


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


def _value_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--value-file",
        metavar="FILE",
        default=None,
        help="read the value from FILE ('-': stdin, the default; never from argv)",
    )
    parser.add_argument("--binary", action="store_true", help="store the bytes as binary")


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    _value_arguments(parser)
    parser.add_argument("--description", default="", help="a description (not secret)")
    add_key_option(parser, "master key that protects it (default: the service's)", required=False)


def _get_arguments(get: argparse.ArgumentParser) -> None:
    get.add_argument("name", metavar="NAME")
    get.add_argument("--stage", default=None, help="ACSCurrent (default), ACSPrevious, ...")
    get.add_argument("--version-id", default=None, help="a version instead of a stage")
    get.add_argument("-o", "--output", metavar="FILE", default=None, help="write it to FILE (0600)")
    get.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    get.add_argument("--reveal", action="store_true", help="allow printing it on a terminal")


def _delete_arguments(delete: argparse.ArgumentParser) -> None:
    delete.add_argument("name", metavar="NAME")
    window = delete.add_mutually_exclusive_group()
    window.add_argument(
        "--recovery-days", type=int, default=None, metavar="N", help="7 to 30 (default 30)"
    )
    window.add_argument("--force", action="store_true", help="delete now, without recovery")


def _read_value(args: argparse.Namespace) -> str | bytes:
    import getpass

    source = args.value_file or "-"
    if source == "-" and sys.stdin.isatty():
        data = getpass.getpass(f"value of {args.name} (not shown): ").encode("utf-8")
    elif source == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(source, "rb") as file:
            data = file.read()
    if args.binary:
        if not data:
            raise ValueError("the value is empty")
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the value is not UTF-8 text; pass --binary to store bytes") from None
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text:
        raise ValueError("the value is empty")
    return text


def _cmd_secret_create(args: argparse.Namespace) -> int:
    from kmsnb.secrets import create

    value = _read_value(args)
    with connect(args) as kms:
        info = create(
            args.name, value, description=args.description, encryption_key_id=args.key, kms=kms
        )
    print(f"secret {info.name} created (version {info.version_id}, ACSCurrent)")
    return EXIT_OK


def _cmd_secret_put(args: argparse.Namespace) -> int:
    from kmsnb.secrets import put

    value = _read_value(args)
    with connect(args) as kms:
        info = put(args.name, value, kms=kms)
    print(f"secret {info.name}: new version {info.version_id} ({', '.join(info.version_stages)})")
    return EXIT_OK


def _cmd_secret_get(args: argparse.Namespace) -> int:
    from kmsnb.cli._stdio import STDIO, open_output
    from kmsnb.secrets import get

    if args.output == STDIO:
        args.output = None  # stdout, so the terminal check below applies to it too
    to_terminal = args.output is None and sys.stdout.isatty()
    if to_terminal and not args.reveal:
        raise ValueError(
            "refusing to print a secret on a terminal; pipe it, write it with -o FILE, or pass "
            "--reveal"
        )
    with connect(args) as kms:
        secret = get(args.name, version_stage=args.stage, version_id=args.version_id, kms=kms)
    with secret:
        value = secret.reveal_bytes()
        if args.output is not None:
            with open_output(args.output, overwrite=args.overwrite, source=STDIO) as output:
                output.write(value)
        else:
            sys.stdout.buffer.write(value + (b"\n" if to_terminal else b""))
            sys.stdout.buffer.flush()
    return EXIT_OK


def _cmd_secret_list(args: argparse.Namespace) -> int:
    from kmsnb.cli._display import print_table
    from kmsnb.secrets import list_secrets

    with connect(args) as kms:
        infos = list_secrets(kms=kms)
    rows = [
        (info.name, info.create_time, info.update_time, info.planned_delete_time or "-")
        for info in infos
    ]
    print_table(("NAME", "CREATED", "UPDATED", "DELETION"), rows)
    return EXIT_OK


def _cmd_secret_delete(args: argparse.Namespace) -> int:
    from kmsnb.secrets import delete

    with connect(args) as kms:
        planned = delete(
            args.name, recovery_window_in_days=args.recovery_days, force=args.force, kms=kms
        )
    if planned is None:
        print(f"secret {args.name} deleted")
    else:
        print(
            f"secret {args.name} will be deleted at {planned}; to undo: "
            f"kmsnb secret restore {args.name}"
        )
    return EXIT_OK


def _cmd_secret_restore(args: argparse.Namespace) -> int:
    from kmsnb.secrets import restore

    with connect(args) as kms:
        restore(args.name, kms=kms)
    print(f"secret {args.name} restored")
    return EXIT_OK
