"""The ``%encrypt`` / ``%%encrypt`` and ``%decrypt`` magics.

Thin on purpose: each magic parses its line, calls the library (through
``kmsnb.ipython._actions``) and returns an object that displays itself. Errors of input,
files and the KMS are shown as one line (:mod:`kmsnb.ipython._magic_support`); an error in
the user's own code in a ``%%encrypt`` cell keeps its traceback, from the cell's own lines.

One convention for both: the file comes first for the magic that reads it and second for
the one that writes it, as ``cp SOURCE DEST`` (``%encrypt VAR PATH``, ``%%encrypt PATH``,
``%decrypt PATH``), and ``-o VAR`` always names a variable to bind the result to.
"""

from __future__ import annotations

import ast
import functools
import linecache
import os
import sys
import warnings
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, needs_local_scope, output_can_be_silenced

from kmsnb import session
from kmsnb._context import parse_context_pairs
from kmsnb.ipython import _actions
from kmsnb.ipython._magic_support import (
    HelpAction,
    HelpRequested,
    ShellMagics,
    argument,
    check_variable_name,
    flat,
    line_cell_magic,
    line_magic,
    magic_arguments,
    parse_argstring,
)
from kmsnb.storage import parse_storage_options

if TYPE_CHECKING:
    from kmsnb._save import Saved

__all__ = ["EncryptMagics"]


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


def _cell_filename(shell: Any) -> str | None:
    """The file name IPython compiled the running cell under (``Cell In[N]``), if any.

    The cell that runs ``%%encrypt`` is the nearest caller frame executing in the user's
    namespace; IPython maps its file name to the cell's number in tracebacks, whichever
    IPython version increments the counter when.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is shell.user_ns and frame.f_code.co_filename in linecache.cache:
            return frame.f_code.co_filename
        frame = frame.f_back
    return None


def _leading_blank_lines(text: str) -> int:
    lines = text.splitlines()
    return next((index for index, item in enumerate(lines) if item.strip()), len(lines))


def _user_frames(traceback: TracebackType | None, filename: str) -> TracebackType | None:
    """``traceback`` from the first frame of the cell's own code on (kmsnb's cut off)."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename != filename:
        traceback = traceback.tb_next
    return traceback


def _warn_output_path(namespace: dict[str, Any]) -> None:
    # Attributed to the user's line that ran the magic (the nearest frame running in the
    # user's namespace), not to this module.
    level, frame = 2, sys._getframe(1)  # stacklevel 2: the caller of this function
    while frame.f_back is not None and frame.f_globals is not namespace:
        level, frame = level + 1, frame.f_back
    warnings.warn(
        "%encrypt -o PATH is deprecated: write %encrypt VAR PATH, %%encrypt PATH (or --to "
        "PATH); -o names a variable, as in %decrypt PATH -o VAR",
        FutureWarning,
        stacklevel=level if frame.f_globals is namespace else 1,
    )


def _destination(args: Any, *, cell: bool, namespace: dict[str, Any]) -> tuple[str | None, str]:
    """(the variable to encrypt, the path to write) from ``%encrypt``'s arguments."""
    given = list(args.positional)
    named = [path for path in (args.to, args.output) if path]
    if args.output:
        _warn_output_path(namespace)
    if cell and len(given) + len(named) > 1:
        raise UsageError("%%encrypt takes one PATH and no variable; it encrypts the cell's value")
    variable = None if cell else (given.pop(0) if given else None)
    if not cell and variable is None:
        raise UsageError("%encrypt needs a variable: %encrypt VAR PATH")
    paths = given + named
    if len(paths) != 1:
        usage = "%%encrypt PATH" if cell else "%encrypt VAR PATH"
        raise UsageError(f"{usage}: give the file to write once (as PATH or --to PATH)")
    path = paths[0]
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise UsageError(f"{path} is a directory; name the file to write")
    return variable, path


@magics_class
class EncryptMagics(ShellMagics):
    """``%encrypt``/``%%encrypt`` and ``%decrypt``; settings in ``%config Kmsnb``."""

    @magic_arguments()
    @argument(
        "positional",
        nargs="*",
        metavar="[VAR] PATH",
        help="line form: the variable to encrypt and the file to write; cell form: the file",
    )
    @argument("--to", metavar="PATH", help="the file to write (instead of PATH)")
    @argument("-o", "--output", metavar="PATH", help="deprecated: the file to write; use PATH")
    @argument("-k", "--key", help="master key (id, alias/NAME, ARN); default: %%kms use KEY")
    @argument(
        "--format",
        dest="file_format",
        choices=_actions.FORMATS,
        help="a DataFrame: parquet or csv (default: from PATH's suffix, else parquet); "
        "bytes and text only confirm what the value is",
    )
    @argument(
        "-c", "--context", nargs="+", action="append", metavar="K=V", help="encryption context"
    )
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
    @argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option for an s3:// or oss:// PATH's store (repeatable; e.g. "
        "endpoint_url=http://127.0.0.1:9000); credentials come from the store's chain "
        "(environment, profile, role), never from here",
    )
    @argument("-h", "--help", action=HelpAction)
    @needs_local_scope
    @line_cell_magic
    def encrypt(
        self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None
    ) -> Saved | None:
        """Encrypt a DataFrame (Parquet or CSV), bytes or str (UTF-8) to a file.

        ``%encrypt VAR PATH`` encrypts a variable. ``%%encrypt PATH`` runs the cell as
        ordinary Python and encrypts the value of its last expression (or of the variable
        its last line assigns). Either way a receipt is shown (path, key, shape, sizes,
        SHA-256 of the file), never the data, and the value does not enter ``Out``.

        With ``--columns ssn=alias/pii ...`` a DataFrame is written with column-level
        encryption (Parquet modular encryption): a reader without ``alias/pii`` still
        reads the other columns, and Spark or pyarrow read the file with a KMS client.

        A ``%%encrypt`` cell's source is saved in the notebook and in IPython's history:
        compute or load the data there, never type it in.
        """
        try:
            args = parse_argstring(self.encrypt, line)
        except HelpRequested as request:
            print(request.text.rstrip())
            return None
        variable, path = _destination(args, cell=cell is not None, namespace=self._shell.user_ns)
        if variable is not None:
            value = self._variable(variable, local_ns)
        else:
            value = self._run_cell_body(line, cell or "")
        with self._user_errors():
            return _actions.encrypt_value(
                value,
                path,
                args.key,
                kms=session.get_kms(),
                file_format=args.file_format,
                encryption_context=parse_context_pairs(flat(args.context)),
                overwrite=args.overwrite,
                column_keys=flat(args.columns),
                uniform=args.uniform,
                storage_options=parse_storage_options(args.storage_options),
            )

    def _variable(self, name: str, local_ns: dict[str, Any] | None) -> object:
        for namespace in (local_ns, self._shell.user_ns):
            if namespace is not None and name in namespace:
                return namespace[name]
        raise UsageError(f"no variable named {name!r}")

    def _run_cell_body(self, line: str, cell: str) -> object:
        """Run the cell like an ordinary one and return its value, without displaying it.

        As ``%%time`` does: every statement but the last runs with ``exec`` in the user
        namespace, and the last is evaluated; nothing goes through the display hook. The
        body is compiled under the running cell's own file name, at its lines there (the
        ``%%encrypt`` line is line 1), so a traceback says ``Cell In[N], line L`` of the
        cell the user ran; and it starts at the user's code, not in kmsnb.
        """
        shell = self._shell
        source: str = shell.transform_cell(cell)  # type: ignore[no-untyped-call]
        # IPython drops a cell's leading blank lines; they still count in the cell's lines.
        dropped = _leading_blank_lines(cell) - _leading_blank_lines(source)
        text = f"%%encrypt {line}\n" + "\n" * dropped + source
        filename = _cell_filename(shell)
        if filename is None:  # called from code, not from a cell: a cell of its own
            filename = shell.compile.cache(text, shell.execution_count)
        else:
            linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        parsed = shell.compile.ast_parse(source, filename)
        ast.increment_lineno(parsed, 1 + dropped)
        module: ast.Module = shell.transform_ast(parsed)  # type: ignore[no-untyped-call]
        body, value = _split_value(module.body)
        namespace = shell.user_ns
        flags = shell.compile.flags  # the session's __future__ imports, as IPython compiles
        statements = compile(ast.Module(body, []), filename, "exec", flags, dont_inherit=True)
        expression = ast.fix_missing_locations(ast.Expression(value))
        last = compile(expression, filename, "eval", flags, dont_inherit=True)
        try:
            exec(statements, namespace)  # noqa: S102  (running the user's cell is the point)
            return eval(last, namespace)  # noqa: S307
        except Exception as error:
            frames = _user_frames(error.__traceback__, filename)
            if frames is not None and self._setting("short_errors", True):
                # Shown by IPython as any traceback is, from the user's frames on.
                formatter: Any = shell.InteractiveTB
                error._render_traceback_ = functools.partial(  # type: ignore[attr-defined]
                    formatter.structured_traceback, type(error), error, frames
                )
            raise

    @magic_arguments()
    @argument("path", metavar="PATH", help="the kmsnb file")
    @argument("-o", "--output", metavar="VAR", help="bind the result to VAR; return None")
    @argument(
        "--columns", nargs="+", action="append", metavar="COL", help="parquet/csv: columns to load"
    )
    @argument("-c", "--context", nargs="+", action="append", metavar="K=V", help="expected context")
    @argument(
        "--allowed-key",
        dest="allowed_keys",
        nargs="+",
        action="append",
        metavar="KEY",
        help="refuse the file unless it is under one of these master keys "
        "(default: %%config Kmsnb.allowed_keys)",
    )
    @argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option for an s3:// or oss:// PATH's store (repeatable; e.g. "
        "endpoint_url=http://127.0.0.1:9000); credentials come from the store's chain "
        "(environment, profile, role), never from here",
    )
    @argument("-h", "--help", action=HelpAction)
    @output_can_be_silenced
    @line_magic
    def decrypt(self, line: str) -> object:
        """Load a kmsnb file: a DataFrame for Parquet and CSV, str for text, else bytes.

        With ``-o VAR`` the result is bound to ``VAR`` and nothing is returned, so the
        data stays out of ``Out`` and the display; prefer it for sensitive data. With
        ``--allowed-key`` (or ``%config Kmsnb.allowed_keys``), a file under any other
        master key is refused before any data is read.
        """
        try:
            args = parse_argstring(self.decrypt, line)
        except HelpRequested as request:
            print(request.text.rstrip())
            return None
        if args.output:
            check_variable_name(args.output)
        columns = [name for item in flat(args.columns) for name in item.split(",") if name]
        with self._user_errors():
            value = _actions.decrypt_path(
                args.path,
                kms=session.get_kms(),
                columns=columns or None,
                encryption_context=parse_context_pairs(flat(args.context)),
                allowed_keys=self._allowed_keys(args.allowed_keys),
                storage_options=parse_storage_options(args.storage_options),
            )
        if args.output:
            self._shell.user_ns[args.output] = value
            return None
        return value
