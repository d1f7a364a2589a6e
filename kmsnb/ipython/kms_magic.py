"""The ``%kms`` magic: manage master keys and look at encrypted files.

One small function per subcommand, from parsed arguments to a display: each calls the
session's KMS client or the file functions and returns a :class:`Table` or
:class:`Details`. Errors propagate; the magic shows them as one line
(:mod:`kmsnb.ipython._magic_support`). Every subcommand answers ``--help``, and
``%kms help [COMMAND]`` says the same.
"""

from __future__ import annotations

import dataclasses
from argparse import Namespace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core import magic_arguments
from IPython.core.magic import magics_class, output_can_be_silenced

from kmsnb import _progress, keys, session
from kmsnb._context import parse_context_pairs
from kmsnb._inspect import inspect
from kmsnb._keynames import KEY_NAMING_HELP, resolve_key_name
from kmsnb._render import format_size
from kmsnb._version import __version__
from kmsnb.connection import describe_kms
from kmsnb.envelope import FileInfo
from kmsnb.ipython import _actions
from kmsnb.ipython._display import Details, Table, file_details
from kmsnb.ipython._magic_support import (
    HelpRequested,
    ShellMagics,
    add_help,
    check_variable_name,
    flat,
    line_magic,
    split,
)
from kmsnb.kms.caching import CachingKms
from kmsnb.rewrap import rewrap_file
from kmsnb.storage import parse_storage_options

if TYPE_CHECKING:
    from kmsnb.keys import KeyRecord
    from kmsnb.kms import Kms, KmsClient
    from kmsnb.kms._secrets import SecretInfo

__all__ = ["COMMAND_PARSERS", "PARSER", "SUBCOMMANDS", "KmsMagic", "options_of", "parse", "run"]

KEY_HELP = KEY_NAMING_HELP + "."

#: Each subcommand and what it does, as ``%kms help`` lists them.
SUBCOMMANDS: dict[str, str] = {
    "status": "the KMS in use, the default key, the data-key cache",
    "keys": "the master keys, with aliases and states",
    "aliases": "the aliases and the keys they point to",
    "create-key": "create a master key (and an alias for it, checked first)",
    "alias": "point alias/NAME at KEY (create or move it)",
    "use": "make KEY the session's default key",
    "describe": "a key's state, aliases and versions",
    "enable": "allow every use of a key again",
    "disable": "refuse every use of a key",
    "rotate": "give KEY a new primary version; older files still decrypt",
    "schedule-deletion": "delete KEY after N days (7 to 366)",
    "cancel-deletion": "keep a key that was scheduled for deletion",
    "inspect": "what a kmsnb file's header says (no KMS call unless --with-kms)",
    "rewrap": "move a file to master key NEW without decrypting its data (ReEncrypt)",
    "secret": "a secret from Secrets Manager, masked; -o VAR binds it",
    "secrets": "the secrets' names and dates (no values)",
    "help": "this list, or one command's help: %kms help COMMAND",
}


#: Each subcommand's parser (for completion of its options).
COMMAND_PARSERS: dict[str, Any] = {}


def _parser() -> Any:
    # MagicArgumentParser raises UsageError instead of exiting; IPython types it not.
    parser_class: Any = magic_arguments.MagicArgumentParser
    parser = parser_class(
        prog="%kms",
        description="Manage master keys and look at encrypted files (no COMMAND: status).",
        epilog=KEY_HELP + " %kms COMMAND --help shows a command's options.",
    )
    add_help(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)

    def command(name: str) -> Any:
        summary = SUBCOMMANDS[name]
        listed = summary.replace("%", "%%")  # argparse %-formats a help string
        sub = commands.add_parser(name, help=listed, description=summary, epilog=KEY_HELP)
        add_help(sub)
        COMMAND_PARSERS[name] = sub
        return sub

    for name in ("status", "keys", "aliases", "secrets"):
        command(name)
    create = command("create-key")
    create.add_argument("--alias", metavar="A", help="alias/A (or A) for the new key")
    create.add_argument("--description", metavar="D", default="", help="the key's description")
    alias = command("alias")
    alias.add_argument("name", metavar="NAME", help="the alias (alias/ may be omitted)")
    alias.add_argument("key", metavar="KEY", help="the key it will point to")
    for name in ("use", "describe", "enable", "disable", "rotate", "cancel-deletion"):
        command(name).add_argument("key", metavar="KEY", help="the master key")
    deletion = command("schedule-deletion")
    deletion.add_argument("key", metavar="KEY", help="the master key")
    deletion.add_argument("--days", type=int, required=True, metavar="N", help="7 to 366")
    allowed = {"dest": "allowed_keys", "nargs": "+", "action": "append", "metavar": "KEY"}
    allowed_help = "refuse the file unless it is under one of these keys"
    inspect = command("inspect")
    inspect.add_argument("path", metavar="PATH", help="the file")
    inspect.add_argument(
        "--with-kms",
        action="store_true",
        help="column-encrypted Parquet: one Decrypt, to show its schema and each column's key",
    )
    inspect.add_argument("--allowed-key", help=allowed_help, **allowed)
    inspect.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option for an s3:// or oss:// PATH's store (repeatable); no credentials",
    )
    rewrap = command("rewrap")
    rewrap.add_argument("path", metavar="PATH", help="the file, rewritten in place")
    rewrap.add_argument("--key", required=True, metavar="NEW", help="the new master key")
    rewrap.add_argument(
        "-c", "--context", nargs="+", action="append", metavar="K=V", help="the file's context"
    )
    rewrap.add_argument("--allowed-key", help=allowed_help, **allowed)
    rewrap.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option for an s3:// or oss:// PATH's store (repeatable); no credentials",
    )
    secret = command("secret")
    secret.add_argument("name", metavar="NAME", help="the secret's name")
    secret.add_argument("-o", "--output", metavar="VAR", help="bind it to VAR; show nothing")
    secret.add_argument("--stage", metavar="STAGE", help="a version stage (ACSCurrent...)")
    secret.add_argument("--version-id", metavar="VERSION", help="a version id")
    command("help").add_argument(
        "topic", nargs="?", metavar="COMMAND", choices=[*SUBCOMMANDS, None], help="a command"
    )
    return parser


#: The ``%kms`` parser; its errors raise ``UsageError``, ``--help`` ``HelpRequested``.
PARSER: Any = _parser()


def options_of(command: str) -> list[str]:
    """The long options of subcommand ``command``, sorted (none for an unknown one)."""
    parser = COMMAND_PARSERS.get(command)
    actions = [] if parser is None else parser._actions  # argparse has no public list
    return sorted(name for action in actions for name in action.option_strings if name[1] == "-")


def parse(line: str) -> Namespace:
    """Parse a ``%kms`` line; a mistake raises ``UsageError``."""
    args: Namespace = PARSER.parse_args(split(line))
    return args


def run(args: Namespace) -> object:
    """Run the subcommand ``args.command``; a bare key NAME means ``alias/NAME``."""
    if getattr(args, "key", None):
        args.key = resolve_key_name(args.key)
    command: Callable[[Namespace], object] = _COMMANDS[args.command]
    return command(args)


def _client() -> KmsClient:
    return _actions.management_client(session.get_kms())


def _cache_status(kms: Kms) -> str:
    if not isinstance(kms, CachingKms):
        return "off"
    stats = kms.stats
    return (
        f"{stats.hits} hits, {stats.misses} misses, {stats.entry_count} keys held; "
        f"a key serves {kms.max_age:g} s, {kms.max_messages} files, {format_size(kms.max_bytes)}"
    )


def _status(args: Namespace) -> Details[dict[str, str]]:
    kms = session.get_kms()
    fields = {
        "kms": describe_kms(kms),
        "default key": session.get_default_key() or "none (%kms use KEY)",
        "data-key cache": _cache_status(kms),
        "progress bars": f"from {format_size(_progress.get_progress_threshold())}",
        "kmsnb": __version__,
    }
    return Details("kmsnb status", fields, list(fields.items()))


def _keys(args: Namespace) -> Table[KeyRecord]:
    default = session.get_default_key()

    def is_default(record: KeyRecord) -> str:
        return "*" if default in {record.key_id, record.arn, *record.aliases} else ""

    columns: list[tuple[str, Callable[[KeyRecord], object]]] = [
        ("key id", lambda record: record.key_id),
        ("aliases", lambda record: ", ".join(record.aliases)),
        ("state", lambda record: record.state),
        ("description", lambda record: record.description),
        ("created", lambda record: record.created),
        ("default", is_default),
    ]
    return Table("keys", list(keys.list_keys(kms=session.get_kms())), columns)


def _aliases(args: Namespace) -> object:
    return keys.list_aliases(kms=session.get_kms())


def _create_key(args: Namespace) -> KeyRecord:
    # kmsnb.keys checks a requested alias first: a taken one creates nothing.
    return keys.create_key(alias=args.alias, description=args.description, kms=session.get_kms())


def _alias(args: Namespace) -> object:
    return keys.point_alias(args.name, args.key, kms=session.get_kms())


def _use(args: Namespace) -> KeyRecord:
    record = keys.describe(args.key, kms=session.get_kms())  # a typo fails now
    session.set_default_key(args.key)  # already resolved: alias/NAME for a bare NAME
    return dataclasses.replace(record, title=f"default key: {args.key}")


def _describe(args: Namespace) -> KeyRecord:
    return keys.describe(args.key, kms=session.get_kms())


def _change_key(verb: Callable[..., KeyRecord]) -> Callable[[Namespace], KeyRecord]:
    """A subcommand that calls ``kmsnb.keys.<verb>(KEY)`` and shows the key after it."""

    def command(args: Namespace) -> KeyRecord:
        return verb(args.key, kms=session.get_kms())

    return command


def _rotate(args: Namespace) -> object:
    return keys.rotate(args.key, kms=session.get_kms())


def _schedule_deletion(args: Namespace) -> KeyRecord:
    return keys.schedule_deletion(args.key, days=args.days, kms=session.get_kms())


def _inspect(args: Namespace) -> Details[Any]:
    # The magic has replaced --allowed-key's groups by the keys in force (or None).
    kms = session.get_kms() if args.with_kms else None
    info = inspect(
        args.path,
        kms=kms,
        allowed_keys=getattr(args, "allowed_keys", None),
        storage_options=parse_storage_options(args.storage_options),
    )
    if isinstance(info, FileInfo):
        return file_details("kmsnb file", info, path=args.path)
    return Details("column-encrypted Parquet", info, [("path", args.path), *info.fields()])


def _rewrap(args: Namespace) -> Details[FileInfo]:
    context = parse_context_pairs(flat(args.context))
    # The magic has replaced the option's groups by the keys in force (or None).
    allowed_keys = getattr(args, "allowed_keys", None)
    info = rewrap_file(
        args.path,
        args.key,
        kms=_client(),
        encryption_context=context,
        allowed_keys=allowed_keys,
        storage_options=parse_storage_options(args.storage_options),
    )
    return file_details("rewrapped", info, path=args.path)


def _help(args: Namespace) -> None:
    # A subcommand's parser answers its own --help by raising HelpRequested.
    PARSER.parse_args([args.topic, "--help"] if args.topic else ["--help"])


def _secret(args: Namespace) -> object:
    from kmsnb.secrets import get

    return get(args.name, version_stage=args.stage, version_id=args.version_id, kms=_client())


def _secrets(args: Namespace) -> Table[SecretInfo]:
    from kmsnb.secrets import list_secrets

    columns: list[tuple[str, Callable[[SecretInfo], object]]] = [
        ("name", lambda info: info.name),
        ("created", lambda info: info.create_time),
        ("updated", lambda info: info.update_time),
        ("deletion", lambda info: info.planned_delete_time or ""),
    ]
    return Table("secrets", list_secrets(kms=_client()), columns)


_COMMANDS: dict[str, Callable[[Namespace], object]] = {
    "status": _status,
    "keys": _keys,
    "aliases": _aliases,
    "create-key": _create_key,
    "alias": _alias,
    "use": _use,
    "describe": _describe,
    "enable": _change_key(keys.enable),
    "disable": _change_key(keys.disable),
    "rotate": _rotate,
    "schedule-deletion": _schedule_deletion,
    "cancel-deletion": _change_key(keys.cancel_deletion),
    "inspect": _inspect,
    "rewrap": _rewrap,
    "secret": _secret,
    "secrets": _secrets,
    "help": _help,
}


@magics_class
class KmsMagic(ShellMagics):
    """The ``%kms`` magic; settings are in the ``Kmsnb`` configurable (``%config Kmsnb``)."""

    @output_can_be_silenced
    @line_magic
    def kms(self, line: str) -> object:
        """Manage master keys and look at encrypted files.

        Usage: %kms COMMAND [ARGS]   (no COMMAND: status; %kms help, %kms COMMAND --help)

          status                           the KMS in use, the default key, the cache
          keys                             the master keys, with aliases and states
          aliases                          the aliases and the keys they point to
          create-key [--alias A] [--description D]
                                           create a master key (and an alias for it)
          alias NAME KEY                   point alias/NAME at KEY (create or move it)
          use KEY                          make KEY the session's default key
          describe KEY                     a key's state, aliases and versions
          enable KEY, disable KEY          allow, or refuse, every use of a key
          rotate KEY                       give KEY a new primary version; files made
                                           under older versions still decrypt
          schedule-deletion KEY --days N   delete KEY after N days (7 to 366)
          cancel-deletion KEY              keep a key that was scheduled for deletion
          inspect PATH [--with-kms] [--allowed-key KEY ...] [--storage-option K=V ...]
                                           what a kmsnb file's header says (no KMS
                                           call); for column-encrypted Parquet, its
                                           footer key, and with --with-kms (one
                                           Decrypt) its schema and each column's key
          rewrap PATH --key NEW [--context K=V ...] [--allowed-key KEY ...]
                                           move a file to master key NEW: the KMS
                                           rewraps its data key (ReEncrypt) and only
                                           the header's key slot is rewritten, in
                                           place (the file is copied only when the new
                                           slot does not fit); the data is never
                                           decrypted. Also after `rotate` (same key).
          secret NAME [-o VAR] [--stage S] a secret from Secrets Manager, masked:
                                           Secret('NAME', ••••); with -o it is bound
                                           to VAR and nothing is shown. Its value:
                                           VAR.reveal(), VAR.sqlalchemy_url(...)
          secrets                          the secrets' names and dates (no values)
          help [COMMAND]                   the commands, or one command's options

        KEY is a key id, an ARN (acs:kms:...) or alias/NAME; a bare NAME means alias/NAME
        (write alias/NAME for an alias that looks like a key id). Each command returns
        an object that shows as a table (HTML in Jupyter): ``keys = %kms keys``.
        Errors show as one line; ``%config Kmsnb.short_errors = False`` shows tracebacks.
        """
        try:
            args = parse(line or "status")
            if args.command == "help":
                _help(args)
        except HelpRequested as request:
            print(request.text.rstrip())
            return None
        if args.command in ("rewrap", "inspect"):
            args.allowed_keys = self._allowed_keys(args.allowed_keys)
        output = getattr(args, "output", None)  # %kms secret NAME -o VAR
        if output is not None:
            check_variable_name(output)
        with self._user_errors():
            result = run(args)
        if output is not None:
            self._shell.user_ns[output] = result
            return None
        return result
