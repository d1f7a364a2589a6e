"""Parser pieces every command group shares.

Each command is a small ``cmd_*(args) -> int`` function, added with :func:`add_command`,
which wraps it in :func:`kmsnb.cli._run.run_command` (errors become statuses) when its
parser is built. A group run bare prints its usage.

Only argparse and the standard library are imported here: ``kmsnb --help`` imports this
module and no other of kmsnb.cli but the package.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeAlias

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    Handler: TypeAlias = Callable[[argparse.Namespace], int]
    Builder: TypeAlias = Callable[[Commands, str, str], argparse.ArgumentParser]

__all__ = [
    "HelpFormatter",
    "LazyCommands",
    "add_allowed_key_option",
    "add_command",
    "add_context_option",
    "add_elsewhere",
    "add_group",
    "add_key_option",
    "add_no_fsync_option",
    "build_command",
    "build_group",
    "exact_size",
    "key_name",
    "size",
    "subcommands",
]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized to the terminal without importing :mod:`shutil`, and
    wrapping without :mod:`textwrap`.

    ``shutil`` (with zlib, bz2 and lzma) was a tenth of ``kmsnb --help``'s start-up; the
    width rule is :func:`shutil.get_terminal_size`'s: ``$COLUMNS``, else the terminal of
    stdout, else 80. ``textwrap`` compiles its word-splitting expressions when imported,
    1.5 ms of the 37 ms of ``kmsnb --help``, for help lines that need only a greedy wrap
    at spaces (:func:`_wrap`; argparse has no hook for another wrapper but these two
    methods, which its own Raw* formatters override too).
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_width() - 2  # what argparse leaves as a margin
        super().__init__(prog, indent_increment, max_help_position, width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return _wrap(self._whitespace_matcher.sub(" ", text).strip(), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = _wrap(self._whitespace_matcher.sub(" ", text).strip(), width - len(indent))
        return "\n".join(indent + line for line in lines)


def _wrap(text: str, width: int) -> list[str]:
    """``text``'s words (single spaces apart) in lines of at most ``width`` characters,
    filled greedily; a longer word gets a line of its own, unbroken (a path or a URL
    stays whole, where textwrap would cut it)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" ") if text else ():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _terminal_width() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class LazyCommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose parsers are built only when their command is chosen.

    Building every parser took longer than Python's own start-up (an ``ArgumentParser``
    costs about half a millisecond, and kmsnb has some thirty), so :func:`add_command` and
    :func:`add_group` register a name, its help line and a builder; ``kmsnb --help``
    lists the help lines and ``kmsnb encrypt ...`` builds the encrypt parser alone. This
    leans on ``add_subparsers``'s ``action=`` hook and on the attributes of argparse's
    ``_SubParsersAction`` that hold the choices (stable since Python 3.2).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._builders: dict[str, Callable[[], argparse.ArgumentParser]] = {}

    def add_lazy(self, name: str, help: str, build: Callable[[], argparse.ArgumentParser]) -> None:
        """Register ``name``, listed with ``help``, built by ``build`` when chosen."""
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), help))
        self._name_parser_map[name] = None  # a placeholder: `choices` lists the names
        self._builders[name] = build

    def parser_for(self, name: str) -> argparse.ArgumentParser:
        """The parser of ``name``, built now if it was not yet."""
        build = self._builders.pop(name, None)
        if build is not None:
            del self._name_parser_map[name]
            self._name_parser_map[name] = build()
        parser: argparse.ArgumentParser = self._name_parser_map[name]
        return parser

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values and values[0] in self._builders:
            self.parser_for(values[0])
        super().__call__(parser, namespace, values, option_string)


def subcommands(parser: argparse.ArgumentParser) -> Commands:
    """The (lazy) ``COMMAND`` subparsers of ``parser``."""
    commands: Commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", action=LazyCommands
    )
    return commands


def add_group(
    commands: Commands, name: str, help: str, add_commands: Callable[[Commands], None]
) -> None:
    """Add a command group (``kmsnb NAME ...``) that prints its usage when run bare.

    ``add_commands`` adds the group's commands, when the group is chosen.
    """
    _lazy(commands).add_lazy(
        name, help, functools.partial(build_group, commands, name, help, add_commands)
    )


def build_group(
    commands: Commands, name: str, help: str, add_commands: Callable[[Commands], None]
) -> argparse.ArgumentParser:
    """The parser of the group ``name`` that :func:`add_group` adds (built now)."""
    group = commands.add_parser(name, description=help, formatter_class=HelpFormatter)
    group.set_defaults(parser=group)
    add_commands(subcommands(group))
    return group


def add_command(
    commands: Commands,
    name: str,
    handler: Handler,
    help: str,
    description: str | None = None,
    *,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Add ``name``, run by ``handler`` inside :func:`~kmsnb.cli._run.run_command`'s error
    handling.

    ``arguments`` adds its arguments to its parser, when the command is chosen.
    """
    build = functools.partial(
        build_command, commands, name, handler, help, description, arguments=arguments
    )
    _lazy(commands).add_lazy(name, help, build)


def build_command(
    commands: Commands,
    name: str,
    handler: Handler,
    help: str,
    description: str | None = None,
    *,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """The parser of the command ``name`` that :func:`add_command` adds (built now)."""
    from kmsnb.cli._run import run_command  # here: `kmsnb --help` runs no command

    parser: argparse.ArgumentParser = commands.add_parser(
        name, description=description or help, formatter_class=HelpFormatter
    )
    parser.set_defaults(handler=run_command(handler), parser=parser)
    if arguments is not None:
        arguments(parser)
    return parser


def add_elsewhere(commands: Commands, name: str, help: str, build: Builder) -> None:
    """Add ``name``, listed with ``help``, whose parser ``build(commands, name, help)``
    makes when it is chosen: the top-level commands, whose modules (:mod:`kmsnb.cli.files`,
    ...) are imported only then, so that ``kmsnb encrypt`` imports none of the others and
    ``kmsnb --help`` none at all (start-up)."""
    _lazy(commands).add_lazy(name, help, functools.partial(build, commands, name, help))


def _lazy(commands: Commands) -> LazyCommands:
    if not isinstance(commands, LazyCommands):
        raise AssertionError("kmsnb: internal error: commands made without subcommands()")
    return commands


# --- argument types -------------------------------------------------------------------


class _ContextAction(argparse.Action):
    """Collect repeated ``--context KEY=VALUE`` into a context (:mod:`kmsnb._context`'s
    rule); a bad pair is a usage error that names it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from kmsnb._context import parse_context_pairs

        pairs = [f"{key}={value}" for key, value in (getattr(namespace, self.dest) or {}).items()]
        try:
            context = parse_context_pairs([*pairs, str(values)])
        except ValueError as error:
            parser.error(f"--context: {error}")
        setattr(namespace, self.dest, context)


def key_name(text: str) -> str:
    """A master key argument, by the one rule (:func:`kmsnb._keynames.resolve_key_name`):
    a bare ``NAME`` means ``alias/NAME``."""
    from kmsnb._keynames import resolve_key_name

    try:
        return resolve_key_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def size(text: str) -> int:
    """A byte count: ``65536``, ``64K``, ``1M`` (powers of 1024)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    scale = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r} (e.g. 65536, 64K, 1M)")
    return int(digits) * scale


def exact_size(text: str) -> int:
    """A byte count that may be zero: ``0``, ``1048576``, ``64K``."""
    return 0 if text == "0" else size(text)


# --- options shared by several commands -----------------------------------------------


def add_key_option(parser: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """``-k/--key KEY``: a master key."""
    parser.add_argument(
        "-k", "--key", required=required, default=None, metavar="KEY", type=key_name, help=help
    )


def add_context_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``-c/--context KEY=VALUE``, repeatable."""
    parser.add_argument(
        "-c", "--context", action=_ContextAction, default=None, metavar="KEY=VALUE", help=help
    )


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE``, repeatable: options for a URL's store."""
    parser.add_argument(
        "--storage-option",
        dest="storage_options",
        action=_StorageOptionAction,
        default=None,
        metavar="KEY=VALUE",
        help="an option for an s3:// or oss:// URL's store (repeatable; e.g. "
        "endpoint_url=http://127.0.0.1:9000, region=cn-hangzhou; true/false are booleans). "
        "Credentials come from the store's own chain and fsspec's configuration "
        "(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ALIBABA_CLOUD_ACCESS_KEY_ID...), never "
        "from here",
    )


class _StorageOptionAction(argparse.Action):
    """Collect repeated ``--storage-option KEY=VALUE`` (:mod:`kmsnb.storage._options`'
    rule); a bad pair, or a credential, is a usage error that names it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from kmsnb.storage import parse_storage_options

        pairs = [*getattr(namespace, "storage_option_pairs", []), str(values)]
        try:
            options = parse_storage_options(pairs)
        except ValueError as error:
            parser.error(f"--storage-option: {error}")
        namespace.storage_option_pairs = pairs
        setattr(namespace, self.dest, options)


def add_no_fsync_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip the fsyncs, for scratch outputs: DST still appears only once complete, "
        "but a power cut may leave it missing or short",
    )


def add_allowed_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allowed-key",
        dest="allowed_keys",
        action="append",
        default=None,
        metavar="KEY",
        type=key_name,
        help="refuse the file unless the KMS unwraps it with this master key (repeatable: "
        "any of them)",
    )
