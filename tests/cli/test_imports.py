"""What a CLI call imports (issue 16 item 3): the import graph, checked in a subprocess.

Not a timer: ``bench/bench_startup.py`` measures the time. These tests run ``python -m
kmsnb`` under ``PYTHONPROFILEIMPORTTIME`` (``-X importtime``), collect every module the
call imported, and assert that none of the heavy families is among them for ``--help``,
``--version``, ``encrypt`` and ``decrypt`` against a ``local:`` emulator store. Where a
module is still imported by another part of the path, the edges of the graph (which kmsnb
module ran which ``import``, cached or not) show that the CLI's own modules need it not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

#: Top-level packages no CLI call with a local KMS may import: data frames, notebooks,
#: Dask, fsspec, progress bars (tqdm is imported only for a bar on a terminal), and every
#: Alibaba Cloud SDK package.
HEAVY = frozenset({
    "pandas", "pyarrow", "numpy", "IPython", "ipywidgets", "traitlets", "dask", "distributed",
    "fsspec", "tqdm", "polars", "duckdb",
    "Tea", "alibabacloud_kms20160120", "alibabacloud_tea_openapi", "alibabacloud_credentials",
    "alibabacloud_tea_util", "alibabacloud_openapi_util", "alibabacloud_gateway_spi",
    "alibabacloud_endpoint_util", "alibabacloud_tea_xml", "aliyunsdkcore", "aliyunsdkkms",
    "aiohttp",
})  # fmt: skip


#: Modules a ``local:`` encrypt or decrypt once imported and no longer does (issue 16 item
#: 3), each name covering its submodules: what only another command needs (key import's RSA
#: and serialization code, with bcrypt; Secrets Manager, and its records while the keystore
#: holds no secret; the data-key cache; the network backend's retry rules), what only writes
#: to the keystore need (``uuid``, which imports ``platform``), the default store's location
#: (``platformdirs``, which imports ``tempfile`` and ``random``), and what a temporary name
#: needed (``socket``, ``secrets``). ``shutil`` (with bz2 and lzma) came from argparse's
#: default formatter. The network stack (``ssl``, ``http``, ``email``, ``asyncio``) belongs
#: to the Alibaba SDK alone. ``pathlib`` (with ``urllib.parse``, ``ipaddress`` and
#: ``fnmatch``) went when paths became strings (kmsnb._path_text), ``signal`` when the CLI's
#: handlers took ``_signal`` and only a named temporary file needs the rest.
NOT_FOR_A_LOCAL_FILE = frozenset({
    "uuid", "platform", "platformdirs", "tempfile", "random", "secrets", "socket",
    "selectors", "shutil", "bz2", "lzma", "bcrypt", "ssl", "http", "email", "asyncio",
    "pathlib", "urllib", "ipaddress", "fnmatch", "signal",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric",
    "kmsnb.emulator._import", "kmsnb.emulator._secrets", "kmsnb.emulator._secret_admin",
    "kmsnb.emulator._secret_common", "kmsnb.emulator._secret_records", "kmsnb.emulator.server",
    "kmsnb.kms._secrets", "kmsnb.kms._retry", "kmsnb.kms.caching", "kmsnb.kms.aliyun",
})  # fmt: skip


#: kmsnb modules a ``local:`` encrypt or decrypt of a kmsnb file once imported and no longer
#: does (issue 16 item 3, start-up): the legacy reader (AES-EAX, CMAC: a kmsnb file is told
#: from a tutorial one by its first bytes, kmsnb._legacy_sniff), FileInfo and its HTML
#: displays, the answers of key management (dataclasses), the OSS store and the endpoint
#: rules of a network KMS (ipaddress comes with urllib.parse, which pathlib imports).
NOT_FOR_A_KMSNB_FILE = frozenset({
    "kmsnb.legacy", "kmsnb._eax", "cryptography.hazmat.primitives.cmac", "kmsnb._file_info",
    "kmsnb._render", "html", "kmsnb.kms._info", "kmsnb.storage._oss", "kmsnb.kms._endpoint",
    "datetime",
})  # fmt: skip


#: The modules of the command line and of what it calls before and around the format: the
#: CLI, the KMS URI grammar, storage locations, atomic files, key names, hints, the key
#: check and the KMS interface; every module of the packages in CLI_PACKAGES too.
CLI_PATH = frozenset({
    "kmsnb", "kmsnb.connection", "kmsnb._files", "kmsnb._temporary", "kmsnb._write_back",
    "kmsnb._keynames", "kmsnb._text", "kmsnb._hints", "kmsnb._context", "kmsnb._key_check",
    "kmsnb.kms", "kmsnb.kms._base", "kmsnb.errors", "kmsnb._sizes", "kmsnb._legacy_sniff",
})  # fmt: skip
CLI_PACKAGES = frozenset({"kmsnb.cli", "kmsnb.storage"})

#: What those modules no longer import at all on a ``local:`` encrypt or decrypt (issue 16
#: item 3, start-up), though other modules of the path may, today: dataclasses (with
#: inspect, dis, ast), copy, hashlib (OpenSSL a second time: cryptography's SHA-256 serves),
#: urllib.parse (only an http(s):// KMS URI is parsed as a URL), threading (signal.signal
#: itself says when it is not the main thread), importlib (kmsnb.storage's lazy names are
#: imported by ``__import__``; ``python -m`` imports importlib itself, so only the edge is
#: checked).
NOT_FROM_THE_CLI_PATH = frozenset({
    "dataclasses", "copy", "hashlib", "urllib", "threading", "importlib",
})  # fmt: skip

#: What the KMS side of a ``local:`` call (kmsnb.connection, the local backend and the
#: emulator's keystore) no longer imports (start-up): pathlib, with the urllib.parse and
#: ipaddress it imports (the keystore keeps its directory as a string and makes a Path only
#: when asked; kmsnb._files, kmsnb._output and kmsnb._temporary import pathlib still), and
#: importlib (the emulator's action handlers come through __import__).
KMS_SIDE = frozenset({"kmsnb.connection", "kmsnb.kms", "kmsnb.emulator"})
NOT_FROM_THE_KMS_SIDE = frozenset({"pathlib", "importlib"})

#: The modules of kmsnb.cli that each call needs: a command imports its own module alone
#: (the parsers of the others are listed by kmsnb.cli without importing them), and
#: ``--help`` imports none of them, nor the exceptions, nor what runs a command.
CLI_MODULES = frozenset({
    "kmsnb.cli.files", "kmsnb.cli.keys", "kmsnb.cli.emulator", "kmsnb.cli.secrets",
    "kmsnb.cli._run", "kmsnb.cli._stdio", "kmsnb.cli._display",
})  # fmt: skip
NEEDED_BY = {
    "--help": frozenset(),
    "--version": frozenset(),
    "encrypt": frozenset({"kmsnb.cli.files", "kmsnb.cli._run", "kmsnb.cli._stdio",
                          "kmsnb.cli._display"}),
    "decrypt": frozenset({"kmsnb.cli.files", "kmsnb.cli._run", "kmsnb.cli._stdio",
                          "kmsnb.cli._display"}),
}  # fmt: skip

#: Runs kmsnb.cli.main with every ``import`` statement recorded as an edge (importing
#: module, imported name), cached imports too; the edges and the modules loaded go to the
#: file $KMSNB_TEST_EDGES.
_TRACE_IMPORTS = """
import builtins, json, os, sys
edges = set()
real_import = builtins.__import__
def tracing_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if importer.startswith("kmsnb") and level == 0:
        edges.add((importer, name))
        edges.update((importer, f"{name}.{item}") for item in fromlist or () if item != "*")
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = tracing_import
from kmsnb.cli import main
try:
    status = main(sys.argv[1:])
finally:
    with open(os.environ["KMSNB_TEST_EDGES"], "w") as file:
        json.dump({"edges": sorted(edges), "modules": sorted(sys.modules)}, file)
sys.exit(status)
"""


def _edges(
    tmp_path: Path, *args: str, env: dict[str, str]
) -> tuple[set[tuple[str, str]], set[str]]:
    """Which kmsnb module imported what during ``kmsnb ARGS`` (it must succeed), and the
    modules loaded at its end."""
    record = tmp_path / "edges.json"
    completed = subprocess.run(
        [sys.executable, "-c", _TRACE_IMPORTS, *args],
        capture_output=True,
        timeout=120,
        env={**env, "KMSNB_TEST_EDGES": str(record)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    recorded = json.loads(record.read_text())
    return {(importer, name) for importer, name in recorded["edges"]}, set(recorded["modules"])


def _on_the_cli_path(module: str) -> bool:
    return module in CLI_PATH or bool(_among({module}, CLI_PACKAGES))


def _imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules ``python -m kmsnb ARGS`` imports (it must succeed)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kmsnb", *args],
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
    )
    stderr = completed.stderr.decode(errors="replace")
    assert completed.returncode == 0, stderr
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "kmsnb.cli" in modules  # the report is what it says
    return modules


def _heavy(modules: set[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] in HEAVY}


def _among(modules: set[str], families: frozenset[str]) -> set[str]:
    """The ``modules`` that are one of ``families`` or inside one."""
    return {
        name
        for name in modules
        if any(name == family or name.startswith(f"{family}.") for family in families)
    }


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """An environment whose default KMS is a fresh local emulator store."""
    return {**os.environ, "KMSNB_KMS": f"local:{tmp_path / 'kms'}"}


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_command_module(flag: str, store: dict[str, str]) -> None:
    """``--help`` imports argparse and the parser modules: no cryptography, no KMS."""
    modules = _imported(flag, env=store)
    assert set() == _heavy(modules)
    assert set() == {name for name in modules if name.split(".")[0] == "cryptography"}
    unneeded = {"kmsnb.envelope", "kmsnb.legacy", "kmsnb._connect", "kmsnb.kms", "kmsnb.emulator"}
    assert set() == unneeded & modules
    # textwrap compiles its expressions when imported: kmsnb.cli._parser wraps without it.
    unneeded_stdlib = {"json", "typing", "dataclasses", "textwrap"}
    assert set() == _among(modules, NOT_FOR_A_LOCAL_FILE | unneeded_stdlib)


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_encrypt_and_decrypt_import_nothing_heavy(
    tmp_path: Path, store: dict[str, str], overwrite: bool
) -> None:
    """A round trip with a ``local:`` KMS: the format, the emulator, nothing heavy; also
    over existing files, where the output is linked under a temporary name (registered for
    removal on SIGTERM) before it replaces the old one."""
    key = _key(store)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(4096))
    encrypted = tmp_path / "plain.bin.kms"
    (tmp_path / "out").mkdir()
    again = ["--overwrite"] if overwrite else []
    if overwrite:
        encrypted.write_bytes(b"old")
        (tmp_path / "out" / "plain.bin").write_bytes(b"old")
    encrypt = _imported("encrypt", str(plain), "-o", str(encrypted), "-k", key, *again, env=store)
    decrypt = _imported("decrypt", str(encrypted), "-o", str(tmp_path) + "/out/", *again, env=store)
    assert (tmp_path / "out" / "plain.bin").read_bytes() == plain.read_bytes()
    for modules in (encrypt, decrypt):
        assert set() == _heavy(modules)
        assert {"kmsnb.envelope", "kmsnb.kms.local"} <= modules  # it did the work
        assert set() == _among(modules, NOT_FOR_A_LOCAL_FILE)
        assert set() == _among(modules, NOT_FOR_A_KMSNB_FILE)
        assert "kmsnb._legacy_sniff" in modules or modules is encrypt


def _key(store: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "kmsnb", "key", "create", "--alias", "imports"],
        capture_output=True,
        text=True,
        timeout=120,
        env=store,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_the_cli_path_imports_no_dataclasses_and_only_its_own_command(
    tmp_path: Path, store: dict[str, str], overwrite: bool
) -> None:
    """The edges of the import graph of --help, --version, encrypt and decrypt (with a new
    DST, which takes a named temporary file, and over an existing one): no module of the
    CLI path imports what it made lazy, and kmsnb.cli imports only the chosen command's
    module."""
    key = _key(store)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(4096))
    encrypted, back = tmp_path / "plain.bin.kms", tmp_path / "back.bin"
    if overwrite:
        encrypted.write_bytes(b"old")
        back.write_bytes(b"old")
    again = ["--overwrite"] if overwrite else []
    calls = {
        "--help": ["--help"],
        "--version": ["--version"],
        "encrypt": ["encrypt", str(plain), "-o", str(encrypted), "-k", key, *again],
        "decrypt": ["decrypt", str(encrypted), "-o", str(back), *again],
    }
    for name, args in calls.items():
        edges, imported = _edges(tmp_path, *args, env=store)
        from_cli_path = {
            (importer, module)
            for importer, module in edges
            if _on_the_cli_path(importer) and _among({module}, NOT_FROM_THE_CLI_PATH)
        }
        assert set() == from_cli_path, name
        from_kms_side = {
            (importer, module)
            for importer, module in edges
            if _among({importer}, KMS_SIDE) and _among({module}, NOT_FROM_THE_KMS_SIDE)
        }
        assert set() == from_kms_side, name
        assert NEEDED_BY[name] == _among(imported, CLI_MODULES), name
        if name.startswith("--"):
            assert set() == _among(imported, frozenset({"kmsnb.errors", "contextlib"})), name
    assert back.read_bytes() == plain.read_bytes()
