"""``kmsnb key ...`` and ``kmsnb alias ...``: master keys and their aliases.

Each command parses, makes one call to the KMS that ``--kms`` names and prints the answer;
``key create`` prints the new key's id alone on stdout, for ``KEY=$(kmsnb key create)``.
"""

from __future__ import annotations

import argparse
import sys

from kmsnb.cli import EXIT_OK
from kmsnb.cli._display import print_fields, print_table
from kmsnb.cli._parser import (
    add_command,
    add_group,
    add_key_option,
    alias_name,
    connect,
    key_name,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from kmsnb.cli._parser import Commands
    from kmsnb.kms._base import KmsClient

__all__ = ["add_commands"]


def add_commands(commands: Commands) -> None:
    """Add the ``key`` and ``alias`` command groups (master-key management)."""
    add_group(commands, "key", "manage master keys (CMKs)", _add_key_commands)
    add_group(commands, "alias", "manage aliases (alias/NAME) of master keys", _add_alias_commands)


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
    parser.add_argument("name", metavar="NAME", help="alias/NAME (the prefix may be omitted)")
    parser.add_argument("key", metavar="KEY", type=key_name, help=_key_naming_help())


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


def _alias_list_arguments(parser: argparse.ArgumentParser) -> None:
    add_key_option(parser, "only the aliases of this key", required=False)


def _cmd_key_create(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        if args.alias:
            _refuse_taken_alias(kms, alias_name(args.alias))
        info = kms.create_key(args.description)
        if args.alias:
            kms.create_alias(alias_name(args.alias), info.key_id)
    print(info.key_id)  # alone on stdout, for KEY=$(kmsnb key create)
    if args.alias:
        print(f"alias {alias_name(args.alias)} -> {info.key_id}", file=sys.stderr)
    return EXIT_OK


def _refuse_taken_alias(kms: KmsClient, alias: str) -> None:
    """Check the alias before creating the key: a key left without it would be an orphan
    (on Alibaba Cloud a billed key that takes at least 7 days to delete)."""
    from kmsnb.errors import KmsnbError

    for taken in kms.list_aliases():
        if taken.alias_name == alias:
            raise KmsnbError(
                f"{alias} already names key {taken.key_id}; no key was created (choose "
                f"another alias, or move this one: kmsnb alias update {alias} KEY)"
            )


def _cmd_key_list(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        keys = kms.list_keys()
        aliases = kms.list_aliases()
    names: dict[str, list[str]] = {}
    for alias in aliases:
        names.setdefault(alias.key_id, []).append(alias.alias_name)
    rows = [
        (k.key_id, k.key_state, ",".join(sorted(names.get(k.key_id, []))) or "-", k.description)
        for k in keys
    ]
    print_table(("KEY ID", "STATE", "ALIASES", "DESCRIPTION"), rows)
    return EXIT_OK


def _cmd_key_describe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    with connect(args) as kms:
        info = kms.describe_key(args.key)
        aliases = kms.list_aliases(info.key_id)
        versions = kms.list_key_versions(info.key_id)
    fields: dict[str, object] = dict(asdict(info))
    fields["aliases"] = ", ".join(a.alias_name for a in aliases) or None
    fields["versions"] = ", ".join(v.key_version_id for v in versions)
    print_fields(fields)
    return EXIT_OK


def _key_action(args: argparse.Namespace, action: str, done: str) -> int:
    with connect(args) as kms:
        getattr(kms, action)(args.key)
    print(f"key {args.key} {done}")
    return EXIT_OK


def _cmd_key_enable(args: argparse.Namespace) -> int:
    return _key_action(args, "enable_key", "enabled")


def _cmd_key_disable(args: argparse.Namespace) -> int:
    return _key_action(args, "disable_key", "disabled; its files cannot be decrypted until enabled")


def _cmd_key_cancel_deletion(args: argparse.Namespace) -> int:
    return _key_action(args, "cancel_key_deletion", "is no longer scheduled for deletion")


def _cmd_key_rotate(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        version = kms.create_key_version(args.key)
    print(f"key {version.key_id}: new primary version {version.key_version_id}")
    return EXIT_OK


def _cmd_key_schedule_deletion(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        kms.schedule_key_deletion(args.key, args.days)
    print(
        f"key {args.key} will be deleted in {args.days} days, and every file under it lost; "
        f"to undo: kmsnb key cancel-deletion {args.key}"
    )
    return EXIT_OK


def _cmd_alias_create(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        kms.create_alias(alias_name(args.name), args.key)
    print(f"alias {alias_name(args.name)} -> {args.key}")
    return EXIT_OK


def _cmd_alias_update(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        kms.update_alias(alias_name(args.name), args.key)
    print(f"alias {alias_name(args.name)} -> {args.key}")
    return EXIT_OK


def _cmd_alias_delete(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        kms.delete_alias(alias_name(args.name))
    print(f"alias {alias_name(args.name)} deleted")
    return EXIT_OK


def _cmd_alias_list(args: argparse.Namespace) -> int:
    with connect(args) as kms:
        aliases = kms.list_aliases(args.key)
    print_table(("ALIAS", "KEY ID"), [(a.alias_name, a.key_id) for a in aliases])
    return EXIT_OK
