"""The layout shows the architecture (issue 11): checked on the source, with ``ast``.

* no module under ``kmsnb/`` is longer than 450 lines;
* imports run one way, down the layers (``LAYERS``): errors <- _format <- envelope <-
  verbs, dataframe, storage <- cli / ipython / widgets; KMS backends use only the KMS
  interface; the envelope never imports a concrete backend; nothing outside
  ``kmsnb.ipython`` imports a module that defines magics;
* no private name (``_x``) is imported from, or reached into, another module (a private
  *module*'s public names are fine);
* every ``.md`` file a docstring or comment cites exists in the repository, and so does
  the section it names (``§N`` or a quoted heading);
* each ``kmsnb/`` subpackage has a mirroring ``tests/`` directory;
* the faces (CLI, magics, widgets) do not import ``kmsnb._format``, ``kmsnb._files`` or
  ``kmsnb.kms._base``.

Imports under ``if TYPE_CHECKING:`` are types only: they do not count for the layers or
for the faces. Each failure lists every offender as ``file:line: what``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "kmsnb"
MAX_MODULE_LINES = 450

# Lowest first. A module may import modules of its own layer or of a lower one. A module
# belongs to the layer of the longest prefix that names it (a package names its modules).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "kmsnb.errors",
            "kmsnb._wipe",
            "kmsnb._version",
            "kmsnb._text",
            "kmsnb._keynames",
            "kmsnb._context",
            "kmsnb._hints",
            # Text and HTML tables over _text only: records of every layer render with it.
            "kmsnb._render",
            "kmsnb._sizes",
            # The immutable record that replaced frozen dataclasses (start-up).
            "kmsnb._record",
            # Paths as strings spelled as pathlib would (start-up, a small file's work).
            "kmsnb._path_text",
        ),
    ),
    (
        "format",
        (
            "kmsnb._format",
            "kmsnb._files",
            "kmsnb._temporary",
            "kmsnb._write_back",
            "kmsnb._write_behind",
            "kmsnb._output",
            "kmsnb._eax",
            "kmsnb._legacy_sniff",
            "kmsnb._thrift",
            "kmsnb._progress",
            # Where bytes live (local files, object stores): below the file operations.
            "kmsnb.storage",
        ),
    ),
    (
        "kms",
        (
            # The KMS interface (kms._base; kms._secrets is its Secret type) ...
            "kmsnb.kms._base",
            "kmsnb.kms._secrets",
            # ... and the backends, which may use nothing else (see BACKENDS).
            "kmsnb.kms",
            "kmsnb.emulator",
            "kmsnb.testing",
        ),
    ),
    (
        "envelope",
        (
            "kmsnb.envelope",
            "kmsnb._file_ops",
            "kmsnb._key_check",
            "kmsnb.rewrap",
            "kmsnb.legacy",
            # Whole-file tables: the encrypting sink, atomic outputs, seekable inputs ...
            "kmsnb._whole_file_io",
            # ... and the verified plaintext as the table readers take it.
            "kmsnb._whole_file_read",
        ),
    ),
    (
        "verbs",
        (
            "kmsnb.connection",
            "kmsnb._connect",
            "kmsnb._defaults",
            "kmsnb.session",
            "kmsnb.secrets",
            "kmsnb.keys",
            "kmsnb._save",
            "kmsnb._load",
            "kmsnb._tables",
            "kmsnb._inspect",
            "kmsnb._column_keys",
            "kmsnb._pme",
            "kmsnb._pme_footer",
            "kmsnb._pme_inspect",
            "kmsnb._pme_io",
            "kmsnb._pme_wrap",
            "kmsnb.dataframe",
            "kmsnb.dask",
            "kmsnb.duckdb",
            "kmsnb.arrow",
            "kmsnb.polars",
            "kmsnb.fsspec_kmsnb",
        ),
    ),
    (
        "faces",
        (
            "kmsnb.cli",
            "kmsnb.__main__",
            "kmsnb._commands",
            "kmsnb._local_commands",
            "kmsnb._secret_commands",
            "kmsnb.ipython",
            "kmsnb.widgets",
            "kmsnb.demo",
        ),
    ),
    # The package itself re-exports the public API (and hooks the IPython extension).
    ("package", ("kmsnb",)),
)

#: The small KMS interface the envelope and the backends share.
KMS_INTERFACE = ("kmsnb.kms._base", "kmsnb.kms._secrets")
#: Concrete KMS backends: they may import the base layer, the KMS interface and each
#: other's packages (the in-process client runs the emulator), nothing else.
BACKENDS = ("kmsnb.kms", "kmsnb.emulator", "kmsnb.testing")
#: Thin faces: parse, call a verb, display.
FACES = (
    "kmsnb.cli",
    "kmsnb.__main__",
    "kmsnb._commands",
    "kmsnb._local_commands",
    "kmsnb._secret_commands",
    "kmsnb.ipython",
    "kmsnb.widgets",
)
#: What the faces must leave to the verbs (types under TYPE_CHECKING are fine).
FACE_INTERNALS = ("kmsnb._format", "kmsnb._files", "kmsnb.kms._base")


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@dataclass(frozen=True)
class Import:
    """One import of a kmsnb module: ``name`` is set for ``from module import name``."""

    path: Path
    line: int
    module: str
    name: str | None
    type_only: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@cache
def modules() -> dict[str, Path]:
    """Every module under ``kmsnb/``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node``, with whether it sits in an ``if TYPE_CHECKING:`` body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child.test, type_only
            for statement in child.body:
                yield statement, True
                yield from _walk(statement, True)
            for statement in child.orelse:
                yield statement, type_only
                yield from _walk(statement, type_only)
            continue
        yield child, type_only
        yield from _walk(child, type_only)


def _absolute(module_name: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module_name.split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports(module_name: str) -> tuple[Import, ...]:
    """The kmsnb modules ``module_name`` imports, at any depth of its code.

    ``from package import submodule`` counts as an import of the submodule, and
    ``importlib.import_module("kmsnb....")`` with a constant name as an import too.
    """
    path = modules()[module_name]
    found = []
    for node, type_only in _walk(tree(path)):
        if isinstance(node, ast.Import):
            found += [
                Import(path, node.lineno, alias.name, None, type_only)
                for alias in node.names
                if _in(alias.name, ("kmsnb",))
            ]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module_name, path, node)
            if not _in(source, ("kmsnb",)):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules():
                    found.append(Import(path, node.lineno, submodule, None, type_only))
                else:
                    found.append(Import(path, node.lineno, source, alias.name, type_only))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _in(node.args[0].value, ("kmsnb",))
        ):
            found.append(Import(path, node.lineno, node.args[0].value, None, type_only))
    return tuple(found)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _in(module, (prefix,)) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _runtime_imports() -> Iterator[tuple[str, Import]]:
    for module in modules():
        for imported in imports(module):
            if not imported.type_only and imported.module != module:
                yield module, imported


# -- (a) size -----------------------------------------------------------------------------


def test_no_module_is_longer_than_the_limit() -> None:
    """Every module under kmsnb/ has at most 450 lines (issue 11)."""
    too_long = [
        f"{path.relative_to(REPO)}: {count} lines"
        for path in modules().values()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == [], f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(too_long)


# -- (b) layers ---------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    """A new module is placed in LAYERS, so that the layer checks below see it."""
    unplaced = [
        f"{path.relative_to(REPO)}: {module} is in no layer (add it to LAYERS in {__name__})"
        for module, path in modules().items()
        if layer_of(module) is None
    ]
    assert unplaced == [], "\n".join(unplaced)


def test_no_import_runs_up_the_layers() -> None:
    """errors <- _format <- envelope <- verbs <- faces: never the other way."""
    upward = []
    for module, imported in _runtime_imports():
        own, target = layer_of(module), layer_of(imported.module)
        if own is not None and target is not None and target > own:
            upward.append(
                f"{imported.where}: {module} ({LAYERS[own][0]}) imports "
                f"{imported.module} ({LAYERS[target][0]})"
            )
    assert upward == [], "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_kms_backends_use_only_the_kms_interface() -> None:
    """Backends (kms/, emulator/, testing) import errors and the base layer, the KMS
    interface and the backends' own packages; never the format, the envelope or above."""
    allowed = LAYERS[0][1] + KMS_INTERFACE + BACKENDS
    reaching = [
        f"{imported.where}: {module} imports {imported.module}"
        for module, imported in _runtime_imports()
        if _in(module, BACKENDS) and not _in(imported.module, allowed)
    ]
    assert reaching == [], "KMS backends importing beyond the interface:\n" + "\n".join(reaching)


def test_the_emulator_imports_only_errors_wipe_and_itself() -> None:
    """The emulator stands alone: kmsnb/kms/local.py imports it, never the other way round."""
    allowed = LAYERS[0][1] + ("kmsnb.emulator",)
    reaching = [
        f"{imported.where}: {module} imports {imported.module}"
        for module, imported in _runtime_imports()
        if _in(module, ("kmsnb.emulator",)) and not _in(imported.module, allowed)
    ]
    assert reaching == [], "the emulator importing other kmsnb modules:\n" + "\n".join(reaching)


def test_the_envelope_never_imports_a_concrete_backend() -> None:
    """The envelope layer and those below it know only the KMS interface."""
    envelope = next(index for index, (name, _) in enumerate(LAYERS) if name == "envelope")
    concrete = [
        f"{imported.where}: {module} imports {imported.module}"
        for module, imported in _runtime_imports()
        if not _in(module, BACKENDS)
        and (layer_of(module) or 0) <= envelope
        and _in(imported.module, BACKENDS)
        and not _in(imported.module, KMS_INTERFACE)
    ]
    assert concrete == [], "concrete backends imported by the envelope:\n" + "\n".join(concrete)


def _defines_magics(module: str) -> bool:
    for node in ast.walk(tree(modules()[module])):
        if isinstance(node, ast.ClassDef):
            names = [base for base in node.bases] + list(node.decorator_list)
            for name in names:
                if isinstance(name, ast.Name) and name.id in ("Magics", "magics_class"):
                    return True
                if isinstance(name, ast.Attribute) and name.attr in ("Magics", "magics_class"):
                    return True
    return False


def test_nothing_imports_the_magics() -> None:
    """Modules defining IPython magics are loaded by the extension hook, never imported
    by the library (outside kmsnb.ipython)."""
    magics = {module for module in modules() if _defines_magics(module)}
    assert magics, "no module defines magics: this check would check nothing"
    importing = [
        f"{imported.where}: {module} imports {imported.module}"
        for module in modules()
        for imported in imports(module)
        if imported.module in magics and not _in(module, ("kmsnb.ipython",))
    ]
    assert importing == [], "magics imported from outside kmsnb.ipython:\n" + "\n".join(importing)


# -- (c) private names --------------------------------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_aliases(module: str) -> dict[str, str]:
    """Names bound to kmsnb modules by ``import`` statements in ``module``."""
    aliases = {}
    for node, _ in _walk(tree(modules()[module])):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _in(alias.name, ("kmsnb",)):
                    continue
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, modules()[module], node)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules():
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else [*inner, node.attr]
    return None


def test_no_private_name_is_imported_from_another_module() -> None:
    """``from kmsnb.a import _b`` and ``kmsnb.a._b`` are failures; ``kmsnb._a.b`` is fine."""
    offenders = []
    for module in modules():
        for imported in imports(module):
            if imported.name is not None and _is_private(imported.name):
                offenders.append(
                    f"{imported.where}: {module} imports {imported.name} from {imported.module}"
                )
        aliases = _module_aliases(module)
        path = modules()[module]
        for node in ast.walk(tree(path)):
            if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
                continue
            dotted = _dotted(node.value)
            if dotted is None or dotted[0] not in aliases:
                continue
            target = ".".join([aliases[dotted[0]], *dotted[1:]])
            if target in modules() and f"{target}.{node.attr}" not in modules():
                offenders.append(
                    f"{path.relative_to(REPO)}:{node.lineno}: {module} uses {target}.{node.attr}"
                )
    assert offenders == [], "private names used across modules:\n" + "\n".join(offenders)


# -- (d) citations ------------------------------------------------------------------------

# A cited Markdown file (a path ending in .md), optionally followed by the section it
# names: a section sign and a number (6, 5.4) or a quoted heading, as in
# (docs/FORMAT.md, "Payload").
CITATION = re.compile(
    r"(?P<path>/?(?:[\w.-]+/)*[\w.-]+\.md)\b`*"
    r"(?:,?\s*(?:§\s*(?P<number>\d+(?:\.\d+)*)|\"(?P<heading>[^\"]{1,80})\"))?"
)
SCANNED = ("kmsnb", "tests", "bench")


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """Docstrings and comments of a Python file, with their first line."""
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield first.lineno, first.value.value
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def _resolve(cited: str, citing: Path) -> Path | None:
    """The repository file a citation means: from the root, beside the citing file, or,
    for a bare name, in docs/."""
    candidates = [REPO / cited, citing.parent / cited]
    if "/" not in cited:
        candidates.append(REPO / "docs" / cited)
    for candidate in candidates:
        if candidate.resolve().is_relative_to(REPO) and candidate.is_file():
            return candidate
    return None


@cache
def headings(document: Path) -> tuple[str, ...]:
    lines = document.read_text(encoding="utf-8").splitlines()
    return tuple(line.lstrip("#").strip() for line in lines if line.startswith("#"))


def _has_section(document: Path, number: str | None, heading: str | None) -> bool:
    if number is not None:
        return any(re.match(rf"{re.escape(number)}\.?\s", text) for text in headings(document))
    if heading is not None:
        heading = " ".join(heading.split())  # a quoted heading may be wrapped
        names = {re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", text) for text in headings(document)}
        return heading in names or heading in headings(document)
    return True


def _python_files() -> Iterator[Path]:
    for folder in SCANNED:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_every_cited_markdown_file_and_section_exists() -> None:
    """A docstring or comment that cites a Markdown file (and a section of it) points at
    a file in the repository that exists, and at a section that file has."""
    broken = []
    for path in _python_files():
        if "tutorial" in path.relative_to(REPO).parts:
            continue  # Alibaba's tutorial scripts, kept as published
        for line, text in _texts(path):
            for match in CITATION.finditer(text):
                where = f"{path.relative_to(REPO)}:{line}"
                cited = match["path"]
                document = _resolve(cited, path)
                if document is None:
                    broken.append(f"{where}: cites {cited}, which is not in the repository")
                elif not _has_section(document, match["number"], match["heading"]):
                    section = f"§{match['number']}" if match["number"] else f'"{match["heading"]}"'
                    broken.append(f"{where}: cites {cited} {section}, which it has no section for")
    assert broken == [], "citations that point nowhere:\n" + "\n".join(broken)


# -- (e) tests mirror the package ---------------------------------------------------------


def test_each_subpackage_has_a_mirroring_tests_directory() -> None:
    """kmsnb/<name>/ is tested in tests/<name>/ (a leading underscore dropped)."""
    missing = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        name = init.parent.name.lstrip("_")
        tests = REPO / "tests" / name
        if not any(tests.glob("test_*.py")):
            missing.append(f"{init.parent.relative_to(REPO)}/: no tests/{name}/test_*.py")
    assert missing == [], "subpackages without their tests directory:\n" + "\n".join(missing)


# -- (f) thin faces -----------------------------------------------------------------------


def test_faces_do_not_import_the_internals() -> None:
    """The CLI, the magics and the widgets call the verbs; they leave the format, the
    file outputs and the KMS interface's internals to them."""
    reaching = [
        f"{imported.where}: {module} imports {imported.module}"
        + (f" ({imported.name})" if imported.name else "")
        for module, imported in _runtime_imports()
        if _in(module, FACES) and _in(imported.module, FACE_INTERNALS)
    ]
    assert reaching == [], "faces importing internals:\n" + "\n".join(reaching)
