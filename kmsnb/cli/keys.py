"""``kmsnb key ...`` and ``kmsnb alias ...``: master keys and their aliases.

Each command parses, makes one call into :mod:`kmsnb.keys` with the KMS that ``--kms``
names and prints the answer; ``key create`` prints the new key's id alone on stdout, for
``KEY=$(kmsnb key create)``.
"""

from __future__ import annotations

import argparse
import sys

from kmsnb.cli import EXIT_OK
from kmsnb.cli._display import print_fields, print_table
from kmsnb.cli._parser import add_command, add_key_option, build_group, key_name
from kmsnb.cli._run import connect

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from kmsnb.cli._parser import Commands

__all__ = ["build_command"]

_ALIAS_HELP = (
    "alias/NAME; the prefix may be omitted, unless NAME looks like a key id (key-... or a UUID)"
)


def build_command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of the group ``key`` or ``alias``, listed with ``help`` in
    :mod:`kmsnb.cli`'s table of commands."""
    add_commands = {"key": _add_key_commands, "alias": _add_alias_commands}[name]
    return build_group(commands, name, help, add_commands)


def _add_key_commands(key: Commands) -> None:
    add_command(
        key,
        "create",
        _cmd_key_create,
        "create a master key; prints its id",
        "Create a master key and print its id. With --alias, the alias is checked first: "
        "when it is taken, no key is created.",
        arguments=_create_arguments,
    )
    add_command(key, "list", _cmd_key_list, "list master keys")
    for name, handler, help in (
        ("describe", _cmd_key_describe, "show a master key, its aliases and versions"),
        ("enable", _cmd_key_enable, "enable a master key"),
        ("disable", _cmd_key_disable, "disable a master key (its files can't be decrypted)"),
        ("rotate", _cmd_key_rotate, "make a new primary key version (old files still open)"),
        ("cancel-deletion", _cmd_key_cancel_deletion, "cancel a scheduled deletion"),
    ):
        add_command(key, name, handler, help, arguments=_key_argument)
    add_command(
        key,
        "schedule-deletion",
        _cmd_key_schedule_deletion,
        "delete a key after N days",
        arguments=_schedule_arguments,
    )


def _create_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument("--alias", default=None, help="also give it this alias")
    create.add_argument("--description", default="", help="a description")


def _key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", type=key_name, help=_key_naming_help())


def _key_naming_help() -> str:
    from kmsnb._keynames import KEY_NAMING_HELP

    return KEY_NAMING_HELP


def _schedule_arguments(schedule: argparse.ArgumentParser) -> None:
    schedule.add_argument("key", metavar="KEY", type=key_name, help=_key_naming_help())
    schedule.add_argument("--days", type=int, required=True, help="waiting period (7..366)")


def _add_alias_commands(alias: Commands) -> None:
    for name, handler, help in (
        ("create", _cmd_alias_create, "point a new alias at a key"),
        ("update", _cmd_alias_update, "point an alias at another key"),
    ):
        add_command(alias, name, handler, help, arguments=_alias_arguments)
    add_command(
        alias,
        "delete",
        _cmd_alias_delete,
        "delete an alias (never the key)",
        arguments=_name_argument,
    )
    add_command(
        alias,
        "list",
        _cmd_alias_list,
        "list aliases",
        arguments=_alias_list_arguments,
    )


def _alias_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help=_ALIAS_HELP)
    parser.add_argument("key", metavar="KEY", type=key_name, help=_key_naming_help())


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help=_ALIAS_HELP)


def _alias_list_arguments(parser: argparse.ArgumentParser) -> None:
    add_key_option(parser, "only the aliases of this key", required=False)


def _cmd_key_create(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:  # kmsnb.keys checks the alias before creating the key
        record = keys.create_key(alias=args.alias, description=args.description, kms=kms)
    print(record.key_id)  # alone on stdout, for KEY=$(kmsnb key create)
    for alias in record.aliases:
        print(f"alias {alias} -> {record.key_id}", file=sys.stderr)
    return EXIT_OK


def _cmd_key_list(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        records = keys.list_keys(kms=kms)
    rows = [
        (key.key_id, key.state, ",".join(key.aliases) or "-", key.description) for key in records
    ]
    print_table(("KEY ID", "STATE", "ALIASES", "DESCRIPTION"), rows)
    return EXIT_OK


def _cmd_key_describe(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        key = keys.describe(args.key, kms=kms)
    print_fields({  # the names of the KMS's DescribeKey, as before kmsnb.keys
        "key_id": key.key_id,
        "arn": key.arn,
        "key_state": key.state,
        "description": key.description,
        "creation_date": key.created,
        "primary_key_version": key.primary_version,
        "deletion_date": key.deletion_date,
        "automatic_rotation": key.automatic_rotation,
        "aliases": ", ".join(key.aliases) or None,
        "versions": ", ".join(key.versions or ()),
    })  # fmt: skip
    return EXIT_OK


def _cmd_key_enable(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        keys.enable(args.key, kms=kms)
    print(f"key {args.key} enabled")
    return EXIT_OK


def _cmd_key_disable(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        keys.disable(args.key, kms=kms)
    print(f"key {args.key} disabled; its files cannot be decrypted until enabled")
    return EXIT_OK


def _cmd_key_cancel_deletion(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        keys.cancel_deletion(args.key, kms=kms)
    print(f"key {args.key} is no longer scheduled for deletion")
    return EXIT_OK


def _cmd_key_rotate(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        version = keys.rotate(args.key, kms=kms)
    print(f"key {version.key_id}: new primary version {version.key_version_id}")
    return EXIT_OK


def _cmd_key_schedule_deletion(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        keys.schedule_deletion(args.key, days=args.days, kms=kms)
    print(
        f"key {args.key} will be deleted in {args.days} days, and every file under it lost; "
        f"to undo: kmsnb key cancel-deletion {args.key}"
    )
    return EXIT_OK


# create refuses a taken alias, update a missing one (kmsnb.keys.point_alias, which does
# either, is %kms alias); each is one call into kmsnb.keys.
def _cmd_alias_create(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        record = keys.create_alias(args.name, args.key, kms=kms)
    print(f"alias {record.alias_name} -> {record.key_id}")
    return EXIT_OK


def _cmd_alias_update(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        record = keys.update_alias(args.name, args.key, kms=kms)
    print(f"alias {record.alias_name} -> {record.key_id}")
    return EXIT_OK


def _cmd_alias_delete(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        alias = keys.delete_alias(args.name, kms=kms)
    print(f"alias {alias} deleted")
    return EXIT_OK


def _cmd_alias_list(args: argparse.Namespace) -> int:
    from kmsnb import keys

    with connect(args) as kms:
        aliases = keys.list_aliases(key=args.key, kms=kms)
    print_table(("ALIAS", "KEY ID"), [(a.alias_name, a.key_id) for a in aliases])
    return EXIT_OK
