"""What every kmsnb magic shares: typed IPython decorators, shell-like splitting of a line,
the session's settings, and errors shown as one line.

A mistake of input, a missing file or a KMS refusal reaches the user as one line headed by
its class, ``KmsAccessDeniedError: ... (hint: ...)``, without a traceback (as jupysql does
with ``%config SqlMagic.short_errors``); ``%config Kmsnb.short_errors = False`` shows the
full traceback again, for a bug report. The exception itself is not replaced, so code that
catches ``KmsnbError`` around a magic still catches it.
"""

from __future__ import annotations

import argparse
import contextlib
import keyword
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics

from kmsnb.ipython._error_lines import USER_ERRORS, explain

__all__ = [
    "HelpAction",
    "HelpRequested",
    "ShellMagics",
    "add_help",
    "argument",
    "check_variable_name",
    "flat",
    "line_cell_magic",
    "line_magic",
    "magic_arguments",
    "parse_argstring",
    "split",
]

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython's magic_arguments has no type hints, and its magic markers are typed as returning
# "a function or a decorator"; these typed wrappers keep --strict meaningful here.
_ARGUMENTS: Any = _magic_arguments
_MARKERS: Any = _magic


def line_magic(function: _F) -> _F:
    marked: _F = _MARKERS.line_magic(function)
    return marked


def line_cell_magic(function: _F) -> _F:
    marked: _F = _MARKERS.line_cell_magic(function)
    return marked


class _Decorator(Protocol):
    def __call__(self, function: _F, /) -> _F: ...


def magic_arguments() -> _Decorator:
    decorator: _Decorator = _ARGUMENTS.magic_arguments()
    return decorator


def argument(*names: str, **options: Any) -> _Decorator:
    decorator: _Decorator = _ARGUMENTS.argument(*names, **options)
    return decorator


def parse_argstring(magic: Callable[..., Any], line: str) -> Any:
    """Parse ``line`` with the parser ``@magic_arguments`` gave ``magic``."""
    parser: Any = getattr(magic, "parser")  # noqa: B009  (set by magic_arguments)
    return parser.parse_args(split(line))


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


def flat(groups: list[list[str]] | None) -> list[str]:
    """Options given as ``--opt a b --opt c`` (argparse: append of nargs="+")."""
    return [item for group in groups or [] for item in group]


class HelpRequested(Exception):
    """``-h``/``--help`` was given: the magic shows ``text`` instead of running."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **options: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show this help")

    def __call__(self, parser: Any, *args: Any) -> None:
        # IPython's formatter writes reStructuredText for %magic? ("::", "%%kms"); a user
        # who asks for --help reads plain text.
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        raise HelpRequested(parser.format_help())


def add_help(parser: Any) -> None:
    """Give ``parser`` a ``-h``/``--help`` (IPython's magic parsers have none)."""
    parser.add_argument("-h", "--help", action=HelpAction)


def check_variable_name(name: str, option: str = "-o") -> None:
    """Refuse, as a usage error, a ``name`` the magic could not bind in the namespace."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{option} takes a variable name, not {name!r}")


class ShellMagics(Magics):
    """A ``Magics`` that knows its shell and the session's ``Kmsnb`` settings."""

    @property
    def _shell(self) -> InteractiveShell:
        if self.shell is None:
            raise AssertionError("kmsnb: internal error: magics used without a shell")
        return self.shell

    def _setting(self, name: str, default: Any) -> Any:
        """``%config Kmsnb.<name>``, or ``default`` when the extension is not loaded."""
        for item in self._shell.configurables:
            # By name, as unloading does: %reload_ext makes new classes.
            if type(item).__name__ == "Kmsnb":
                return getattr(item, name, default)
        return default

    def _allowed_keys(self, given: list[list[str]] | None) -> list[str] | None:
        """``--allowed-key``'s keys, else ``%config Kmsnb.allowed_keys``, else ``None``."""
        if given:
            return flat(given)
        configured = self._setting("allowed_keys", [])
        return [str(key) for key in configured] or None

    @contextlib.contextmanager
    def _user_errors(self) -> Iterator[None]:
        """Show errors of input, files and the KMS as one line (``Kmsnb.short_errors``)."""
        try:
            yield
        except USER_ERRORS as error:
            if self._setting("short_errors", True):
                _render_as_one_line(error)
            raise


def _render_as_one_line(error: BaseException) -> None:
    """Make IPython show ``error`` as ``ClassName: message (hint: ...)``, no traceback.

    IPython asks an exception for ``_render_traceback_`` before formatting its frames
    (``InteractiveShell.showtraceback``); an instance attribute answers for this one error
    only, which keeps its class, its ``__cause__`` and its frames for code that catches it.
    """
    line = f"{type(error).__name__}: {explain(error, 'magic')}"
    error._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
