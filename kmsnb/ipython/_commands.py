"""The ``%kms`` subcommands: one small function each, from parsed arguments to a display.

Each takes the parsed ``argparse.Namespace``, calls the session's KMS client or the file
functions, and returns a :class:`Table` or
:class:`Details`. Errors propagate; the magic turns them into one-line usage errors.
"""

from __future__ import annotations

import shlex
from argparse import Namespace
from collections.abc import Callable
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError

import kmsnb
from kmsnb import _progress, session
from kmsnb._version import __version__
from kmsnb.envelope import FileInfo
from kmsnb.ipython import _actions
from kmsnb.ipython._display import Details, Table
from kmsnb.kms._base import AliasInfo, KeyInfo, KeyVersionInfo, Kms, KmsClient
from kmsnb.kms._secrets import SecretInfo
from kmsnb.kms.caching import CachingKms
from kmsnb.rewrap import rewrap_file

__all__ = ["PARSER", "flat", "parse", "run", "split"]


def _parser() -> Any:
    # MagicArgumentParser raises UsageError instead of exiting; IPython types it not.
    parser_class: Any = magic_arguments.MagicArgumentParser
    parser = parser_class(prog="%kms")
    commands = parser.add_subparsers(dest="command", parser_class=parser_class)
    commands.add_parser("status")
    commands.add_parser("keys")
    commands.add_parser("aliases")
    create = commands.add_parser("create-key")
    create.add_argument("--alias", metavar="A")
    create.add_argument("--description", metavar="D", default="")
    alias = commands.add_parser("alias")
    alias.add_argument("name", metavar="NAME")
    alias.add_argument("key", metavar="KEY")
    for name in ("use", "describe", "enable", "disable", "rotate", "cancel-deletion"):
        commands.add_parser(name).add_argument("key", metavar="KEY")
    deletion = commands.add_parser("schedule-deletion")
    deletion.add_argument("key", metavar="KEY")
    deletion.add_argument("--days", type=int, required=True, metavar="N")
    inspect = commands.add_parser("inspect")
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--with-kms", action="store_true")
    inspect.add_argument("--allowed-key", dest="allowed_keys", nargs="+", action="append")
    rewrap = commands.add_parser("rewrap")
    rewrap.add_argument("path", metavar="PATH")
    rewrap.add_argument("--key", required=True, metavar="NEW")
    rewrap.add_argument("--context", nargs="+", action="append", metavar="K=V")
    rewrap.add_argument("--allowed-key", dest="allowed_keys", nargs="+", action="append")
    secret = commands.add_parser("secret")
    secret.add_argument("name", metavar="NAME")
    secret.add_argument("-o", "--output", metavar="VAR")
    secret.add_argument("--stage", metavar="STAGE")
    secret.add_argument("--version-id", metavar="VERSION")
    commands.add_parser("secrets")
    return parser


#: The ``%kms`` parser; its errors raise ``UsageError``.
PARSER: Any = _parser()


def split(line: str) -> list[str]:
    """A magic's line as a shell would split it: quotes group words and are removed.

    (IPython's own ``parse_argstring`` keeps the quotes: ``--description "a b"`` would
    store the quote characters in the key's description.) A ``#`` that begins a word
    outside quotes starts a comment, as in a shell, so ``%kms use alias/x  # it's ours``
    works; ``a#b`` and ``"#x"`` are words. A final ``;``, which silences the output of the
    magics that allow it, is not an argument.
    """
    try:
        return shlex.split(_without_comment(line).rstrip().removesuffix(";"))
    except ValueError as error:  # an unclosed quote
        raise UsageError(f"cannot split the line: {error}") from None


def _without_comment(line: str) -> str:
    """``line`` up to its comment, by the rules of a POSIX shell.

    (``shlex`` with ``comments=True`` would also cut ``a#b`` after ``a``.)
    """
    quote = ""
    escaped = False
    word_start = True
    for index, char in enumerate(line):
        if escaped:  # the character after a backslash is never special
            escaped = word_start = False
            continue
        if char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and word_start:
            return line[:index]
        word_start = not quote and not escaped and char.isspace()
    return line


def parse(line: str) -> Namespace:
    """Parse a ``%kms`` line; a mistake raises ``UsageError``."""
    args: Namespace = PARSER.parse_args(split(line))
    return args


def run(args: Namespace) -> object:
    """Run the subcommand ``args.command``."""
    command: Callable[[Namespace], object] = _COMMANDS[args.command]
    return command(args)


def flat(groups: list[list[str]] | None) -> list[str]:
    """Options given as ``--opt a b --opt c`` (argparse: append of nargs="+")."""
    return [item for group in groups or [] for item in group]


def _client() -> KmsClient:
    return _actions.management_client(session.get_kms())


def _alias_name(name: str) -> str:
    return name if name.startswith("alias/") else f"alias/{name}"


def _key_details(title: str, info: KeyInfo, client: KmsClient) -> Details[KeyInfo]:
    aliases = sorted(alias.alias_name for alias in client.list_aliases(info.key_id))
    versions = client.list_key_versions(info.key_id)
    return Details(
        title,
        info,
        [
            ("key id", info.key_id),
            ("aliases", ", ".join(aliases)),
            ("state", info.key_state),
            ("description", info.description),
            ("created", info.creation_date),
            ("primary version", info.primary_key_version),
            ("versions", len(versions)),
            ("deletion date", info.deletion_date),
            ("arn", info.arn),
        ],
    )


def _file_details(title: str, path: str, info: FileInfo) -> Details[FileInfo]:
    size = "unknown (written as a stream)" if info.plaintext_size is None else info.plaintext_size
    return Details(
        title,
        info,
        [
            ("path", path),
            ("key id", info.key_id),
            ("key version", info.key_version_id),
            ("encryption context", info.encryption_context or "none"),
            ("content type", info.content_type),
            ("plaintext size", size),
            ("file size", info.file_size),
            ("format", f"kmsnb v{info.format_version}, {info.algorithm}"),
        ],
    )


def _cache_status(kms: Kms) -> str:
    if not isinstance(kms, CachingKms):
        return "off"
    stats = kms.stats
    return (
        f"{stats.hits} hits, {stats.misses} misses, {stats.entry_count} keys held; "
        f"a key serves {kms.max_age:g} s, {kms.max_messages} files, {kms.max_bytes} bytes"
    )


def _status(args: Namespace) -> Details[dict[str, str]]:
    kms = session.get_kms()
    fields = {
        "kms": str(getattr(_client(), "location", "unknown")),
        "default key": session.get_default_key() or "none (%kms use KEY)",
        "data-key cache": _cache_status(kms),
        "progress bars": f"from {_progress.get_progress_threshold()} bytes",
        "kmsnb": __version__,
    }
    return Details("kmsnb status", fields, list(fields.items()))


def _keys(args: Namespace) -> Table[KeyInfo]:
    client = _client()
    aliases = _actions.alias_index(client)
    default = session.get_default_key()

    def is_default(info: KeyInfo) -> str:
        return "*" if default in {info.key_id, info.arn, *aliases.get(info.key_id, [])} else ""

    columns: list[tuple[str, Callable[[KeyInfo], object]]] = [
        ("key id", lambda info: info.key_id),
        ("aliases", lambda info: ", ".join(aliases.get(info.key_id, []))),
        ("state", lambda info: info.key_state),
        ("description", lambda info: info.description),
        ("created", lambda info: info.creation_date),
        ("default", is_default),
    ]
    return Table("keys", client.list_keys(), columns)


def _aliases(args: Namespace) -> Table[AliasInfo]:
    aliases = sorted(_client().list_aliases(), key=lambda alias: alias.alias_name)
    columns: list[tuple[str, Callable[[AliasInfo], object]]] = [
        ("alias", lambda alias: alias.alias_name),
        ("key id", lambda alias: alias.key_id),
    ]
    return Table("aliases", aliases, columns)


def _create_key(args: Namespace) -> Details[KeyInfo]:
    client = _client()
    alias = _alias_name(args.alias) if args.alias else None
    # Checked first, so that a taken alias does not leave a new key without one.
    if alias and alias in {item.alias_name for item in client.list_aliases()}:
        raise ValueError(f"{alias} exists; move it with %kms alias {alias} KEY")
    info = client.create_key(args.description)
    if alias:
        client.create_alias(alias, info.key_id)
    return _key_details("key created", info, client)


def _alias(args: Namespace) -> Details[KeyInfo]:
    client = _client()
    name = _alias_name(args.name)
    info = client.describe_key(args.key)
    if name in {item.alias_name for item in client.list_aliases()}:
        client.update_alias(name, info.key_id)
    else:
        client.create_alias(name, info.key_id)
    return _key_details(f"{name} points to", info, client)


def _use(args: Namespace) -> Details[KeyInfo]:
    client = _client()
    info = client.describe_key(args.key)  # a typo fails now, not at the next encryption
    session.set_default_key(args.key)
    return _key_details(f"default key: {args.key}", info, client)


def _describe(args: Namespace) -> Details[KeyInfo]:
    client = _client()
    return _key_details("key", client.describe_key(args.key), client)


def _change_key(action: str, title: str) -> Callable[[Namespace], Details[KeyInfo]]:
    """A subcommand that calls ``client.<action>(KEY)`` and shows the key after it."""

    def command(args: Namespace) -> Details[KeyInfo]:
        client = _client()
        getattr(client, action)(args.key)
        return _key_details(title, client.describe_key(args.key), client)

    return command


def _rotate(args: Namespace) -> Details[KeyVersionInfo]:
    version = _client().create_key_version(args.key)
    fields = [
        ("key id", version.key_id),
        ("new primary version", version.key_version_id),
        ("created", version.creation_date),
    ]
    return Details("key rotated", version, fields)


def _schedule_deletion(args: Namespace) -> Details[KeyInfo]:
    client = _client()
    client.schedule_key_deletion(args.key, args.days)
    return _key_details("key scheduled for deletion", client.describe_key(args.key), client)


def _inspect(args: Namespace) -> Details[Any]:
    # The magic has replaced --allowed-key's groups by the keys in force (or None).
    kms = session.get_kms() if args.with_kms else None
    info = kmsnb.inspect(args.path, kms=kms, allowed_keys=getattr(args, "allowed_keys", None))
    if isinstance(info, FileInfo):
        return _file_details("kmsnb file", args.path, info)
    return Details("column-encrypted Parquet", info, [("path", args.path), *info.fields()])


def _rewrap(args: Namespace) -> Details[FileInfo]:
    context = _actions.parse_context(flat(args.context))
    # The magic has replaced the option's groups by the keys in force (or None).
    allowed_keys = getattr(args, "allowed_keys", None)
    info = rewrap_file(
        args.path,
        args.key,
        kms=_client(),
        encryption_context=context,
        allowed_keys=allowed_keys,
    )
    return _file_details("rewrapped", args.path, info)


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
    "enable": _change_key("enable_key", "key enabled"),
    "disable": _change_key("disable_key", "key disabled"),
    "rotate": _rotate,
    "schedule-deletion": _schedule_deletion,
    "cancel-deletion": _change_key("cancel_key_deletion", "key deletion cancelled"),
    "inspect": _inspect,
    "rewrap": _rewrap,
    "secret": _secret,
    "secrets": _secrets,
}
