"""What a CLI call imports (issue 16 item 3): the import graph, checked in a subprocess.

Not a timer: ``bench/bench_startup.py`` measures the time. These tests run ``python -m
kmsnb`` under ``PYTHONPROFILEIMPORTTIME`` (``-X importtime``), collect every module the
call imported, and assert that none of the heavy families is among them for ``--help``,
``--version``, ``encrypt`` and ``decrypt`` against a ``local:`` emulator store.
"""

from __future__ import annotations

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
#: to the Alibaba SDK alone.
NOT_FOR_A_LOCAL_FILE = frozenset({
    "uuid", "platform", "platformdirs", "tempfile", "random", "secrets", "socket",
    "selectors", "shutil", "bz2", "lzma", "bcrypt", "ssl", "http", "email", "asyncio",
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
    assert set() == _among(modules, NOT_FOR_A_LOCAL_FILE | {"json", "typing", "dataclasses"})


def test_encrypt_and_decrypt_import_nothing_heavy(tmp_path: Path, store: dict[str, str]) -> None:
    """A round trip with a ``local:`` KMS: the format, the emulator, nothing heavy."""
    key = subprocess.run(
        [sys.executable, "-m", "kmsnb", "key", "create", "--alias", "imports"],
        capture_output=True,
        text=True,
        timeout=120,
        env=store,
        check=True,
    ).stdout.strip()
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(4096))
    encrypted = tmp_path / "plain.bin.kms"
    (tmp_path / "out").mkdir()
    encrypt = _imported("encrypt", str(plain), "-o", str(encrypted), "-k", key, env=store)
    decrypt = _imported("decrypt", str(encrypted), "-o", str(tmp_path) + "/out/", env=store)
    assert (tmp_path / "out" / "plain.bin").read_bytes() == plain.read_bytes()
    for modules in (encrypt, decrypt):
        assert set() == _heavy(modules)
        assert {"kmsnb.envelope", "kmsnb.kms.local"} <= modules  # it did the work
        assert set() == _among(modules, NOT_FOR_A_LOCAL_FILE)
        assert set() == _among(modules, NOT_FOR_A_KMSNB_FILE)
        assert "kmsnb._legacy_sniff" in modules or modules is encrypt
