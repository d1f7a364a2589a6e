"""``progress=`` on ``df.kms.to_parquet``/``to_csv`` and ``kmsnb.read_parquet``/``read_csv``
(issue 12): a bar counting the bytes encrypted and read, closed at the end; none when not
wanted; the frame's size judged without reading its strings."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from progress_bars import BarRecorder, plaintext_size

import kmsnb
import kmsnb.dataframe  # registers df.kms
from kmsnb import _progress, _whole_file_io
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

KEY = "alias/main"


def _frame(rows: int = 20_000) -> pd.DataFrame:
    return pd.DataFrame({"n": range(rows), "s": [f"row {i}" for i in range(rows)]})


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "streamed"])
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_writes_and_reads_count_their_bytes(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    streamed: bool,
) -> None:
    """Each bar ends at the plaintext that went through the encryptor (and came back)."""
    if streamed:
        monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    frame, path = _frame(), tmp_path / f"f.{suffix}.kms"
    write = frame.kms.to_parquet if suffix == "parquet" else frame.kms.to_csv
    read = kmsnb.read_parquet if suffix == "parquet" else kmsnb.read_csv

    write(path, KEY, kms=kms, progress=True, index=False)
    back = read(path, kms=kms, progress=True)

    size = plaintext_size(path, kms)
    written, was_read = bars
    assert (written.desc, written.n, written.total) == (f"encrypt {path.name}", size, size)
    assert (was_read.desc, was_read.n, was_read.total) == (f"decrypt {path.name}", size, size)
    assert written.closed
    assert was_read.closed
    pd.testing.assert_frame_equal(back, frame)


def test_the_frame_size_is_judged_without_reading_it(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """to_csv's estimate is 8 bytes a cell: no ``memory_usage`` (a deep one reads every
    string; even a shallow one costs as much as a small write)."""

    def memory_usage(self: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("memory_usage called")

    monkeypatch.setattr(pd.DataFrame, "memory_usage", memory_usage)
    frame = _frame(100)
    frame.kms.to_csv(tmp_path / "f.csv.kms", KEY, kms=kms, progress=True)
    assert bars.only.initial_total == frame.size * 8


@pytest.mark.parametrize(
    ("progress", "threshold", "made"),
    [
        (None, _progress.DEFAULT_PROGRESS_THRESHOLD, 0),  # a small frame: no bar, no tqdm
        (None, 0, 1),
        (False, 0, 0),
    ],
)
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_no_bar_unless_wanted(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    suffix: str,
    progress: bool | None,
    threshold: int,
    made: int,
) -> None:
    """``None`` follows the session's threshold, ``False`` never shows one."""
    _progress.set_progress_threshold(threshold)
    frame, path = _frame(100), tmp_path / f"f.{suffix}.kms"
    write = frame.kms.to_parquet if suffix == "parquet" else frame.kms.to_csv
    read = kmsnb.read_parquet if suffix == "parquet" else kmsnb.read_csv
    write(path, KEY, kms=kms, progress=progress)
    read(path, kms=kms, progress=progress)
    assert len(bars) == bars.lookups == 2 * made


@pytest.mark.parametrize("verb", ["to_parquet", "to_csv", "read_parquet", "read_csv"])
def test_an_invalid_progress_is_a_type_error(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder, verb: str
) -> None:
    """Refused before any KMS call; nothing written."""
    frame, path = _frame(10), tmp_path / "f.kms"
    if verb.startswith("read"):
        frame.kms.to_parquet(path, KEY, kms=kms)
    calls = dict(kms.calls)
    if verb.startswith("to"):
        call = functools.partial(getattr(frame.kms, verb), path, KEY, progress="yes")
    else:
        call = functools.partial(getattr(kmsnb, verb), path, progress=0)
    with pytest.raises(TypeError, match="progress"):
        call(kms=kms)
    assert dict(kms.calls) == calls
    assert path.exists() == verb.startswith("read")
    assert not bars


def test_column_mode_and_projection(tmp_path: Path, kms: InMemoryKms, bars: BarRecorder) -> None:
    """Column level counts the file pyarrow writes and reads; a projection of a whole-file
    Parquet, the plaintext it read."""
    frame = _frame()
    columns, whole = tmp_path / "c.parquet", tmp_path / "w.parquet.kms"
    frame.kms.to_parquet(columns, KEY, kms=kms, columns=["s"], progress=True)
    kmsnb.read_parquet(columns, kms=kms, progress=True)
    frame.kms.to_parquet(whole, KEY, kms=kms)
    kmsnb.read_parquet(whole, kms=kms, columns=["n"], progress=True)

    written, was_read, projected = bars
    assert written.n == written.total == was_read.n == was_read.total == columns.stat().st_size
    assert 0 < projected.n == projected.total < plaintext_size(whole, kms)
    assert all(bar.closed for bar in bars)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_an_interrupted_write_closes_its_bar_and_leaves_nothing(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
) -> None:
    """Ctrl-C mid-write, with the plaintext streaming: the bar is closed, no file is left."""
    monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    bars.fail_after = 4096
    folder = tmp_path / "out"
    folder.mkdir()
    frame = _frame()
    write = frame.kms.to_parquet if suffix == "parquet" else frame.kms.to_csv
    with pytest.raises(KeyboardInterrupt):
        write(folder / f"f.{suffix}.kms", KEY, kms=kms, progress=True)
    assert bars.only.closed
    assert list(folder.iterdir()) == []
