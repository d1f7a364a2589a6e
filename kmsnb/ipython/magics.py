"""The magics: ``%kms``, ``%encrypt`` / ``%%encrypt`` and ``%decrypt``.

Thin on purpose: each magic parses its line, calls the library (through
``kmsnb.ipython._actions`` and, for ``%kms``, one small function per subcommand in
``kmsnb.ipython._commands``) and returns an object that displays itself. Errors of input,
files and the KMS reach the user as one-line ``UsageError``s with a hint; errors in the
user's own cell code keep their traceback.
"""

from __future__ import annotations

import ast
import contextlib
import keyword
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, magics_class, needs_local_scope, output_can_be_silenced

from kmsnb import session
from kmsnb.ipython import _actions, _commands
from kmsnb.ipython._display import Receipt

__all__ = ["KmsnbMagics"]

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
    parser: Any = getattr(magic, "parser")  # noqa: B009  (set by magic_arguments)
    return parser.parse_args(_commands.split(line))


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Show errors of input, files and the KMS as one line, without a traceback."""
    try:
        yield
    except _actions.USER_ERRORS as error:
        raise UsageError(_actions.explain(error)) from None


def _split_value(body: list[ast.stmt]) -> tuple[list[ast.stmt], ast.expr]:
    """The statements to run and the expression whose value ``%%encrypt`` encrypts."""
    last = body[-1] if body else None
    if isinstance(last, ast.Expr):
        return body[:-1], last.value
    target = None
    if isinstance(last, ast.Assign) and len(last.targets) == 1:
        target = last.targets[0]
    elif isinstance(last, ast.AnnAssign) and last.value is not None:
        target = last.target
    if isinstance(target, ast.Name):
        return body, ast.copy_location(ast.Name(target.id, ast.Load()), target)
    raise UsageError(
        "%%encrypt encrypts the cell's value: end the cell with an expression (df) "
        "or an assignment to a name (df = ...)"
    )


@magics_class
class KmsnbMagics(Magics):
    """The kmsnb magics; settings are in the ``Kmsnb`` configurable (``%config Kmsnb``)."""

    @property
    def _shell(self) -> InteractiveShell:
        if self.shell is None:
            raise AssertionError("kmsnb: internal error: magics used without a shell")
        return self.shell

    def _allowed_keys(self, given: list[list[str]] | None) -> list[str] | None:
        """``--allowed-key``'s keys, else ``%config Kmsnb.allowed_keys``, else ``None``."""
        if given:
            return _commands.flat(given)
        for item in self._shell.configurables:
            # By name, as unloading does: %reload_ext makes new classes.
            configured = getattr(item, "allowed_keys", None)
            if type(item).__name__ == "Kmsnb" and configured:
                return [str(key) for key in configured]
        return None

    @output_can_be_silenced
    @line_magic
    def kms(self, line: str) -> object:
        """Manage master keys and look at encrypted files.

        Usage: %kms COMMAND [ARGS]   (no COMMAND: status)

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
          inspect PATH [--with-kms] [--allowed-key KEY ...]
                                           what a kmsnb file's header says (no KMS
                                           call); for column-encrypted Parquet, its
                                           footer key, and with --with-kms (one
                                           Decrypt) its schema and each column's key
          rewrap PATH --key NEW [--context K=V ...] [--allowed-key KEY ...]
                                           move a file to master key NEW: the KMS
                                           rewraps its data key (ReEncrypt) and only
                                           the header is rewritten; the data is never
                                           decrypted. Also after `rotate` (same key).
          secret NAME [-o VAR] [--stage S] a secret from Secrets Manager, masked:
                                           Secret('NAME', ••••); with -o it is bound
                                           to VAR and nothing is shown. Its value:
                                           VAR.reveal(), VAR.sqlalchemy_url(...)
          secrets                          the secrets' names and dates (no values)

        KEY is a key id, alias/NAME or ARN; NAME may omit "alias/". Each command returns
        an object that shows as a table (HTML in Jupyter): ``keys = %kms keys``.
        """
        args = _commands.parse(line or "status")
        if args.command in ("rewrap", "inspect"):
            args.allowed_keys = self._allowed_keys(args.allowed_keys)
        output = getattr(args, "output", None)  # %kms secret NAME -o VAR
        if output is not None and (not output.isidentifier() or keyword.iskeyword(output)):
            raise UsageError(f"-o takes a variable name, not {output!r}")
        with _user_errors():
            result = _commands.run(args)
        if output is not None:
            self._shell.user_ns[output] = result
            return None
        return result

    @magic_arguments()
    @argument("variable", nargs="?", metavar="VAR", help="line form: the variable to encrypt")
    @argument("-k", "--key", help="master key (id, alias/NAME, ARN); default: %%kms use KEY")
    @argument("-o", "--output", required=True, metavar="PATH", help="the file to write")
    @argument(
        "--format",
        dest="file_format",
        choices=_actions.FORMATS,
        help="parquet (default for a DataFrame) or csv; bytes for bytes and str",
    )
    @argument("--context", nargs="+", action="append", metavar="K=V", help="encryption context")
    @argument(
        "--columns",
        nargs="+",
        action="append",
        metavar="COL=KEY",
        help="parquet: column-level encryption, COL under master key KEY (COL alone: under "
        "-k KEY); the footer and the other columns are under -k KEY",
    )
    @argument(
        "--uniform",
        action="store_true",
        help="parquet: column-level encryption with -k KEY for everything (DuckDB reads it)",
    )
    @argument("--overwrite", action="store_true", help="replace PATH if it exists")
    @needs_local_scope
    @line_cell_magic
    def encrypt(
        self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None
    ) -> Receipt:
        """Encrypt a DataFrame (Parquet or CSV), bytes or str (UTF-8) to a file.

        ``%encrypt VAR -o PATH`` encrypts a variable. ``%%encrypt -o PATH`` runs the cell
        as ordinary Python and encrypts the value of its last expression (or of the
        variable its last line assigns). Either way a receipt is shown (path, key, shape,
        sizes, SHA-256 of the file), never the data, and the value does not enter ``Out``.

        With ``--columns ssn=alias/pii ...`` a DataFrame is written with column-level
        encryption (Parquet modular encryption): a reader without ``alias/pii`` still
        reads the other columns, and Spark or pyarrow read the file with a KMS client.

        A ``%%encrypt`` cell's source is saved in the notebook and in IPython's history:
        compute or load the data there, never type it in.
        """
        args = parse_argstring(self.encrypt, line)
        if cell is None:
            if not args.variable:
                raise UsageError("%encrypt needs a variable: %encrypt VAR -o PATH")
            value = self._variable(args.variable, local_ns)
        else:
            if args.variable:
                raise UsageError("%%encrypt takes no variable; it encrypts the cell's value")
            value = self._run_cell_body(cell)
        with _user_errors():
            return _actions.encrypt_value(
                value,
                args.output,
                args.key,
                kms=session.get_kms(),
                file_format=args.file_format,
                encryption_context=_actions.parse_context(_commands.flat(args.context)),
                overwrite=args.overwrite,
                column_keys=_commands.flat(args.columns),
                uniform=args.uniform,
            )

    def _variable(self, name: str, local_ns: dict[str, Any] | None) -> object:
        for namespace in (local_ns, self._shell.user_ns):
            if namespace is not None and name in namespace:
                return namespace[name]
        raise UsageError(f"no variable named {name!r}")

    def _run_cell_body(self, cell: str) -> object:
        """Run the cell like an ordinary one and return its value, without displaying it.

        As ``%%time`` does: every statement but the last runs with ``exec`` in the user
        namespace, and the last is evaluated; nothing goes through the display hook.
        """
        shell = self._shell
        source: str = shell.transform_cell(cell)  # type: ignore[no-untyped-call]
        # Cached like a cell of its own, so that tracebacks show the body's lines.
        filename = shell.compile.cache(source, shell.execution_count, raw_code=cell)
        parsed = shell.compile.ast_parse(source, filename)
        module: ast.Module = shell.transform_ast(parsed)  # type: ignore[no-untyped-call]
        body, value = _split_value(module.body)
        namespace = shell.user_ns
        flags = shell.compile.flags  # the session's __future__ imports, as IPython compiles
        statements = compile(ast.Module(body, []), filename, "exec", flags, dont_inherit=True)
        exec(statements, namespace)  # noqa: S102  (running the user's cell is the point)
        expression = ast.fix_missing_locations(ast.Expression(value))
        last = compile(expression, filename, "eval", flags, dont_inherit=True)
        return eval(last, namespace)  # noqa: S307

    @magic_arguments()
    @argument("path", metavar="PATH", help="the kmsnb file")
    @argument("-o", "--output", metavar="VAR", help="bind the result to VAR; return None")
    @argument(
        "--columns", nargs="+", action="append", metavar="COL", help="parquet/csv: columns to load"
    )
    @argument("--context", nargs="+", action="append", metavar="K=V", help="expected context")
    @argument(
        "--allowed-key",
        dest="allowed_keys",
        nargs="+",
        action="append",
        metavar="KEY",
        help="refuse the file unless it is under one of these master keys "
        "(default: %%config Kmsnb.allowed_keys)",
    )
    @output_can_be_silenced
    @line_magic
    def decrypt(self, line: str) -> object:
        """Load a kmsnb file: a DataFrame for Parquet and CSV, str for text, else bytes.

        With ``-o VAR`` the result is bound to ``VAR`` and nothing is returned, so the
        data stays out of ``Out`` and the display; prefer it for sensitive data. With
        ``--allowed-key`` (or ``%config Kmsnb.allowed_keys``), a file under any other
        master key is refused before any data is read.
        """
        args = parse_argstring(self.decrypt, line)
        if args.output and (not args.output.isidentifier() or keyword.iskeyword(args.output)):
            raise UsageError(f"-o takes a variable name, not {args.output!r}")
        columns = [
            name for item in _commands.flat(args.columns) for name in item.split(",") if name
        ]
        with _user_errors():
            value = _actions.decrypt_path(
                args.path,
                kms=session.get_kms(),
                columns=columns or None,
                encryption_context=_actions.parse_context(_commands.flat(args.context)),
                allowed_keys=self._allowed_keys(args.allowed_keys),
            )
        if args.output:
            self._shell.user_ns[args.output] = value
            return None
        return value
