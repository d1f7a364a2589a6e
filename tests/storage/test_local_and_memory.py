"""Local paths keep kmsnb._files' crash-safe writer; memory:// is made atomic too."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

import fsspec
import pytest

from kmsnb.storage import open_input, open_output

pytestmark = pytest.mark.unit


class Boom(Exception):
    """The failure a test injects mid-write."""


def _fail_midway(url: Any, data: bytes, error: BaseException | None = None, **options: Any) -> None:
    """Write ``data`` through open_output, then fail inside the block."""
    with open_output(url, **options) as output:
        output.write(data)
        raise error if error is not None else Boom


def _body_ran(url: Any, **options: Any) -> bool:
    """Whether open_output let the block run (it raises first when it refuses)."""
    entered = False
    with open_output(url, **options):
        entered = True
    return entered


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_local_write_is_atomic_and_private(tmp_path: Path, *, as_url: bool) -> None:
    target = tmp_path / "x.kms"
    url = f"file://{target}" if as_url else str(target)
    with open_output(url) as output:
        output.write(b"data")
        assert not target.exists()  # an anonymous file until complete
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with open_input(url) as source:
        assert source.read() == b"data"


def test_a_failed_local_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.kms"
    with pytest.raises(Boom):
        _fail_midway(target, b"partial")
    assert os.listdir(tmp_path) == []
    target.write_bytes(b"old")
    with pytest.raises(Boom):
        _fail_midway(target, b"partial", overwrite=True)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.kms"]


def test_an_existing_local_file_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x.kms"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        _body_ran(target)
    with open_output(target, overwrite=True) as output:
        output.write(b"new")
    assert target.read_bytes() == b"new"


@pytest.fixture
def memory_url() -> str:
    url = f"memory://kmsnb-test/{os.urandom(8).hex()}/x.kms"
    yield url
    fs = fsspec.filesystem("memory")
    with contextlib.suppress(FileNotFoundError):
        fs.rm(url.removeprefix("memory://"))


def test_memory_is_written_only_once_complete(memory_url: str) -> None:
    fs = fsspec.filesystem("memory")
    with pytest.raises(Boom):
        _fail_midway(memory_url, b"partial")
    assert not fs.exists(memory_url)
    with open_output(memory_url) as output:
        output.write(b"whole")
        assert not fs.exists(memory_url)
    with open_input(memory_url) as source:
        assert source.read() == b"whole"


def test_a_failed_memory_overwrite_keeps_the_old_object(memory_url: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file(memory_url, b"old")
    with pytest.raises(Boom):
        _fail_midway(memory_url, b"partial", overwrite=True)
    assert fs.cat_file(memory_url) == b"old"


def test_of_two_racing_memory_creators_one_wins(memory_url: str) -> None:
    fs = fsspec.filesystem("memory")
    first = open_output(memory_url)
    second = open_output(memory_url)
    first.__enter__().write(b"first")
    second.__enter__().write(b"second")
    first.__exit__(None, None, None)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        second.__exit__(None, None, None)
    assert fs.cat_file(memory_url) == b"first"
