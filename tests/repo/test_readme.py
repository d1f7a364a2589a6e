"""Every code block of the README runs as written.

The blocks run in order, as a reader would run them, in a copy of the repository (the
working tree, as git sees it) with a fresh ``$HOME``, so the emulator's default keystore is
new: shell blocks with bash (``set -e``), Python blocks cell by cell in a real IPython
``InteractiveShell`` of the copy's own venv (a ``%%`` cell magic starts a cell of its own).
``make demo`` builds that venv as a user's would, from uv.lock, offline, from the uv cache
that ``make test`` filled. The one file a block names that the README cannot make,
``old.cipher``, is written here as Alibaba's tutorial writes it (with pycryptodome).

``make test`` itself is the command running this test: in the Quick start it is checked
with ``make -n`` (its recipe runs pytest) instead of being run again.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FENCE = re.compile(r"^```(?P<info>\S*)\n(?P<body>.*?)^```\n", flags=re.M | re.S)
#: The languages of the blocks that hold code; every block must say which it is.
LANGUAGES = {"console": "shell", "python": "python"}
RECURSIVE = "make test"

SHELL_RUNNER = """\
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

config = Config()
config.HistoryManager.hist_file = ":memory:"
config.InteractiveShell.colors = "nocolor"
shell = InteractiveShell.instance(config=config)
for cell in json.load(sys.stdin):
    print(f"--- cell: {cell.splitlines()[0]}", flush=True)
    shell.run_cell(cell, store_history=True).raise_error()
"""


@dataclass(frozen=True)
class Block:
    """A fenced block of the README: its section, its kind (``shell``/``python``), its code."""

    section: str
    kind: str
    code: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.section} (README.md:{self.line})"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        section = re.findall(r"^## (.+)$", before, flags=re.M)[-1]
        info = match.group("info")
        assert info in LANGUAGES, f"README.md:{before.count(chr(10)) + 1}: say the language"
        line = before.count("\n") + 1
        found.append(Block(section, LANGUAGES[info], match.group("body"), line))
    return found


def cells(code: str) -> list[str]:
    """The notebook cells of a Python block: a ``%%`` line starts a new cell."""
    split: list[list[str]] = [[]]
    for line in code.splitlines():
        if line.startswith("%%") and any(part.strip() for part in split[-1]):
            split.append([])
        split[-1].append(line)
    return ["\n".join(lines).strip() + "\n" for lines in split if any(x.strip() for x in lines)]


def _uv_cache() -> str:
    uv = Path(sys.executable).with_name("uv")
    command = [str(uv) if uv.exists() else "uv", "cache", "dir"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def _copy_of_the_repository(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def tutorial_cipher(kms: object, key_id: str, plaintext: bytes) -> bytes:
    """A ``.cipher`` file as the tutorial's script writes it: GenerateDataKey, AES-EAX with
    pycryptodome, four base64 lines (wrapped key, nonce, ciphertext, tag)."""
    from Crypto.Cipher import AES

    data_key = kms.generate_data_key(key_id)  # type: ignore[attr-defined]
    cipher = AES.new(bytes(data_key.plaintext), AES.MODE_EAX)
    data_key.wipe()
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    lines = [data_key.ciphertext_blob] + [
        base64.b64encode(part).decode() for part in (cipher.nonce, ciphertext, tag)
    ]
    return "".join(line + "\n" for line in lines).encode()


class Reader:
    """A reader of the README at a shell in the copy: same ``$HOME``, same folders."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        keep = ("LANG", "LC_ALL", "TMPDIR")
        self.env = {name: os.environ[name] for name in keep if name in os.environ}
        # This venv's bin first, as for `make test`: python3 and the uv that wrote the lock.
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        self.env.update(
            HOME=str(home),
            UV_CACHE_DIR=_uv_cache(),
            UV_OFFLINE="1",  # no traffic but to 127.0.0.1: everything is in the cache
            PIP_NO_INDEX="1",  # (pip would only bootstrap a uv, which is on PATH)
            ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
        )

    def shell(self, code: str, *, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"{code}\n--- out:\n{result.stdout}\n--- err:\n{result.stderr}"
        )
        return result.stdout

    def python(self, code: str) -> str:
        result = subprocess.run(
            [str(self.root / ".venv" / "bin" / "python"), "-c", SHELL_RUNNER],
            cwd=self.root,
            env=self.env,
            input=json.dumps(cells(code)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"{code}\n--- out:\n{result.stdout}\n--- err:\n{result.stderr}"
        )
        return result.stdout


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    root = tmp_path_factory.mktemp("readme") / "kmsnb"
    _copy_of_the_repository(root)
    return Reader(root, tmp_path_factory.mktemp("home"))


def _by_section(section: str) -> list[Block]:
    found = [block for block in blocks() if block.section == section]
    assert found, f"no code block under ## {section}"
    return found


@pytest.mark.unit
def test_every_block_is_run_here() -> None:
    sections = {block.section for block in blocks()}
    assert sections == {
        "Quick start",
        "In a notebook",
        "From Python",
        "From polars, pyarrow and DuckDB",
        "Object storage: S3 and OSS",
        "The emulator",
        "Secrets in notebooks",
        "The command line",
    }


@pytest.mark.unit
def test_a_cell_magic_starts_a_cell() -> None:
    assert cells("a = 1\n%%encrypt x\na\n") == ["a = 1\n", "%%encrypt x\na\n"]
    assert cells("%%encrypt x\na\n") == ["%%encrypt x\na\n"]


def test_quick_start(reader: Reader) -> None:
    (block,) = _by_section("Quick start")
    commands = [line for line in block.code.splitlines() if line.strip()]
    assert [line.split("#")[0].strip() for line in commands] == ["make demo", RECURSIVE]
    out = reader.shell("\n".join(line for line in commands if not line.startswith(RECURSIVE)))
    assert "data/decrypted_sales.csv matches data/sales.csv" in out
    assert "pytest" in reader.shell("make -n test")
    # The commands the demo prints work in a new shell, as printed.
    printed = [line.strip() for line in out.splitlines() if line.startswith("    .venv/bin/kmsnb")]
    assert len(printed) == 3
    reader.shell("\n".join(printed))


def test_in_a_notebook(reader: Reader) -> None:
    code = "\n".join(block.code for block in _by_section("In a notebook"))
    out = reader.python(code)
    assert "kmsnb: local emulator at" in out
    assert (reader.root / "sales.parquet.kms").exists()
    assert (reader.root / "report.parquet.kms").exists()


def test_from_python(reader: Reader) -> None:
    (block,) = _by_section("From Python")
    reader.python(block.code)
    assert (reader.root / "decrypted.csv").read_bytes() == (
        reader.root / "data" / "sales.csv"
    ).read_bytes()
    assert (reader.root / "big.bin.kms").stat().st_size > 0


def test_from_polars_pyarrow_and_duckdb(reader: Reader) -> None:
    """After the section's ``pip install 'kmsnb[polars,duckdb]'`` (make demo has neither),
    done here as make does, from uv.lock and the uv cache, offline."""
    reader.shell(
        "UV_PROJECT_ENVIRONMENT=.venv uv sync --locked --inexact --no-progress --quiet "
        "--extra polars --extra duckdb"
    )
    (block,) = _by_section("From polars, pyarrow and DuckDB")
    out = reader.python(block.code)
    assert "[(218.5,)]" in out  # DuckDB's sum, through the kmsnb:: file system
    assert (reader.root / "revenue-copy.parquet.kms").read_bytes()[:4] != b"PAR1"


def test_object_storage(reader: Reader) -> None:
    """After ``pip install 'kmsnb[s3]'`` (and ``[dask]``; make demo has neither), done here
    from uv.lock offline, against an S3 server started here (moto on 127.0.0.1, a free
    port) that the environment names as a user's would; the bucket ``my-bucket`` exists.
    Parts and objects land in the bucket, nothing local but what the blocks write."""
    import boto3
    from s3_server import CREDENTIALS, PROXY_VARIABLES, moto_server

    reader.shell(
        "UV_PROJECT_ENVIRONMENT=.venv uv sync --locked --inexact --no-progress --quiet "
        "--extra s3 --extra dask"
    )
    saved = dict(reader.env)
    with moto_server() as endpoint:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="my-bucket")
        for name in (*PROXY_VARIABLES, *(name.lower() for name in PROXY_VARIABLES)):
            reader.env.pop(name, None)
        reader.env.update(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
        try:
            python, shell = _by_section("Object storage: S3 and OSS")
            reader.python(python.code)
            out = reader.shell(shell.code)
        finally:
            reader.env.clear()
            reader.env.update(saved)
    assert "encrypted data/sales.csv -> s3://my-bucket/csv/sales.csv.kms" in out
    assert (reader.root / "from-s3.csv").read_bytes() == (
        reader.root / "data" / "sales.csv"
    ).read_bytes()
    assert not (reader.root / "s3:").exists()


SECRET = "correct horse battery staple"  # what the README's emulator block stores


def test_the_emulator(reader: Reader) -> None:
    """A script written for Alibaba Cloud (official SDK, real endpoint) reads, under
    ``kmsnb emulator exec``, the secret that ``kmsnb secret create`` stored."""
    (block,) = _by_section("The emulator")
    out = reader.shell(block.code)
    assert "read db/password version" in out
    assert SECRET not in out


def test_secrets_in_notebooks(reader: Reader) -> None:
    (block,) = _by_section("Secrets in notebooks")
    out = reader.python(block.code)
    assert "Secret('db/password', ••••)" in out
    assert "db/password" in out.split("Secret('db/password', ••••)")[-1]  # the listing
    assert SECRET not in out


def test_the_command_line(reader: Reader) -> None:
    (block,) = _by_section("The command line")
    # old.cipher: made by the tutorial's steps under a key of the emulator's default store.
    from kmsnb.kms.local import LocalKms

    where = "from kmsnb.emulator.store import default_store_dir; print(default_store_dir())"
    store = Path(reader.shell(f".venv/bin/python -c '{where}'").strip())
    assert store.is_relative_to(reader.env["HOME"])  # the reader's, not this machine's
    with LocalKms(store) as kms:
        old = tutorial_cipher(kms, kms.create_key("tutorial").key_id, b"north,120.5\n")
    (reader.root / "data" / "old.cipher").write_bytes(old)

    reader.shell(block.code)
    data = reader.root / "data"
    assert (data / "finance.csv").read_bytes() == (data / "sales.csv").read_bytes()
    assert (data / "old.csv").read_bytes() == b"north,120.5\n"
    assert (data / "old.csv.kms").exists()
    assert (data / "piped.csv.kms").exists()
