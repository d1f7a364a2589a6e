"""``progress=`` on kmsnb.polars' writers and readers (issue 12): the bar counts the bytes
encrypted and read, ends full and closed, and is not made unless wanted."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from progress_bars import BarRecorder

import kmsnb
import kmsnb.polars
from kmsnb import _progress, _whole_file_io
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

KEY = "alias/main"


@pytest.fixture
def kms() -> InMemoryKms:
    fake = InMemoryKms()
    fake.create_key(alias=KEY)
    return fake


def _frame(rows: int = 20_000) -> pl.DataFrame:
    return pl.DataFrame({"n": range(rows), "s": [f"row {i}" for i in range(rows)]})


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_writes_and_reads_count_their_bytes(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    streamed: bool,
) -> None:
    """From ``estimated_size()`` to the plaintext encrypted; reading, to what was read."""
    if streamed:  # a frame past the limit is written through the streaming sink
        monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    frame, path = _frame(), tmp_path / f"f.{suffix}.kms"
    write = kmsnb.polars.write_parquet if suffix == "parquet" else kmsnb.polars.write_csv
    read = kmsnb.polars.read_parquet if suffix == "parquet" else kmsnb.polars.read_csv

    write(frame, path, KEY, kms=kms, progress=True)
    back = read(path, kms=kms, progress=True)

    size = len(kmsnb.decrypt_bytes(path.read_bytes(), kms=kms))
    written, was_read = bars
    assert written.initial_total == frame.estimated_size()
    assert (written.desc, written.n, written.total) == (f"encrypt {path.name}", size, size)
    assert (was_read.desc, was_read.n, was_read.total) == (f"decrypt {path.name}", size, size)
    assert written.closed
    assert was_read.closed
    assert_frame_equal(back, frame)


def test_column_mode_and_projection(tmp_path: Path, kms: InMemoryKms, bars: BarRecorder) -> None:
    """Column level goes through Arrow's writer and reader: the bar counts the file."""
    columns, whole = tmp_path / "c.parquet", tmp_path / "w.parquet.kms"
    kmsnb.polars.write_parquet(_frame(), columns, KEY, kms=kms, columns=["s"], progress=True)
    kmsnb.polars.read_parquet(columns, kms=kms, progress=True)
    kmsnb.polars.write_parquet(_frame(), whole, KEY, kms=kms)
    kmsnb.polars.read_parquet(whole, kms=kms, columns=["n"], progress=True)

    written, was_read, projected = bars
    assert written.n == written.total == was_read.n == was_read.total == columns.stat().st_size
    assert 0 < projected.n == projected.total
    assert all(bar.closed for bar in bars)


@pytest.mark.parametrize(
    ("progress", "threshold", "made"),
    [(None, _progress.DEFAULT_PROGRESS_THRESHOLD, 0), (None, 0, 1), (False, 0, 0)],
)
def test_no_bar_unless_wanted(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    progress: bool | None,
    threshold: int,
    made: int,
) -> None:
    """A small frame under the default threshold looks tqdm up not even once."""
    _progress.set_progress_threshold(threshold)
    for suffix in ("parquet", "csv"):
        path = tmp_path / f"f.{suffix}.kms"
        write = kmsnb.polars.write_parquet if suffix == "parquet" else kmsnb.polars.write_csv
        read = kmsnb.polars.read_parquet if suffix == "parquet" else kmsnb.polars.read_csv
        write(_frame(100), path, KEY, kms=kms, progress=progress)
        read(path, kms=kms, progress=progress)
    assert len(bars) == bars.lookups == 4 * made


def test_an_invalid_progress_is_a_type_error(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder
) -> None:
    """Refused before the KMS is asked; no file."""
    path = tmp_path / "f.parquet.kms"
    for write in (kmsnb.polars.write_parquet, kmsnb.polars.write_csv):
        with pytest.raises(TypeError, match="progress"):
            write(_frame(10), path, KEY, kms=kms, progress="yes")  # type: ignore[arg-type]
    assert not path.exists()
    assert kms.calls["generate_data_key"] == 0
    kmsnb.polars.write_parquet(_frame(10), path, KEY, kms=kms)
    calls = dict(kms.calls)
    for read in (kmsnb.polars.read_parquet, kmsnb.polars.read_csv):
        with pytest.raises(TypeError, match="progress"):
            read(path, kms=kms, progress=1)  # type: ignore[arg-type]
    assert dict(kms.calls) == calls
    assert not bars
