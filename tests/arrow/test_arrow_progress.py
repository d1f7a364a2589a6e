"""``progress=`` on kmsnb.arrow.write_table and read_table (issue 12): a bar whose count is
what went through the encryptor (or the file pyarrow wrote, in column mode) and what was
read, closed at the end, none when not wanted, and no tqdm looked up for a small table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from progress_bars import BarRecorder, plaintext_size

import kmsnb
import kmsnb.arrow
from kmsnb import _progress, _whole_file_io
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

KEY = "alias/main"


@pytest.fixture
def kms() -> InMemoryKms:
    fake = InMemoryKms()
    fake.create_key(alias=KEY)
    return fake


def _table(rows: int = 20_000) -> pa.Table:
    return pa.table({"n": list(range(rows)), "s": [f"row {i}" for i in range(rows)]})


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "streamed"])
@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_write_table_counts_the_bytes_it_encrypts(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    file_format: str,
    streamed: bool,
) -> None:
    """The bar starts from the table's nbytes and ends at the plaintext encrypted, closed."""
    if streamed:  # past the sized-write limit: the plaintext streams through the sink
        monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    table = _table()
    path = tmp_path / f"t.{file_format}.kms"

    kmsnb.arrow.write_table(table, path, KEY, kms=kms, format=file_format, progress=True)  # type: ignore[arg-type]

    bar = bars.only
    assert (bar.desc, bar.initial_total, bar.closed) == (f"encrypt {path.name}", table.nbytes, True)
    assert bar.n == bar.total == plaintext_size(path, kms)
    if streamed:
        assert bar.updates > 1  # it moved as the serialiser wrote, not once at the end
    assert kmsnb.arrow.read_table(path, kms=kms).equals(table)


def test_write_table_in_column_mode_counts_the_file_written(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder
) -> None:
    """Column level, pyarrow encrypts: the bar counts the encrypted file's bytes."""
    path = tmp_path / "c.parquet"
    kmsnb.arrow.write_table(_table(), path, KEY, kms=kms, columns=["s"], progress=True)

    bar = bars.only
    assert bar.n == bar.total == path.stat().st_size
    assert bar.closed


@pytest.mark.parametrize(
    ("progress", "threshold", "made"),
    [
        (None, _progress.DEFAULT_PROGRESS_THRESHOLD, 0),  # a small table: no bar
        (None, 0, 1),  # the session's threshold says always
        (False, 0, 0),
        (True, _progress.DEFAULT_PROGRESS_THRESHOLD, 1),
    ],
)
def test_write_and_read_table_follow_progress(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    progress: bool | None,
    threshold: int,
    made: int,
) -> None:
    """``None`` follows the threshold, ``True``/``False`` force; no bar, no tqdm lookup."""
    _progress.set_progress_threshold(threshold)
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(_table(100), path, KEY, kms=kms, progress=progress)
    kmsnb.arrow.read_table(path, kms=kms, progress=progress)
    assert len(bars) == bars.lookups == 2 * made


def test_an_invalid_progress_is_refused_before_anything_is_done(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder
) -> None:
    """``progress="yes"`` is a TypeError: no KMS call, no file, no bar."""
    path = tmp_path / "t.parquet.kms"
    with pytest.raises(TypeError, match="progress"):
        kmsnb.arrow.write_table(_table(10), path, KEY, kms=kms, progress="yes")  # type: ignore[arg-type]
    assert not path.exists()
    assert kms.calls["generate_data_key"] == 0
    kmsnb.arrow.write_table(_table(10), path, KEY, kms=kms)
    calls = dict(kms.calls)
    with pytest.raises(TypeError, match="progress"):
        kmsnb.arrow.read_table(path, kms=kms, progress=1)  # type: ignore[arg-type]
    assert dict(kms.calls) == calls
    assert not bars


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "streamed"])
def test_read_table_counts_the_plaintext_it_verifies(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    streamed: bool,
) -> None:
    """The total is the header's plaintext size, else (streamed) the payload's, and ends at
    what was read."""
    if streamed:
        monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(_table(), path, KEY, kms=kms)
    info = kmsnb.inspect(path)
    assert (info.plaintext_size is None) == streamed

    kmsnb.arrow.read_table(path, kms=kms, progress=True)

    bar, size = bars.only, plaintext_size(path, kms)
    assert bar.initial_total == (size if not streamed else path.stat().st_size - info.header_size)
    assert (bar.desc, bar.n, bar.total, bar.closed) == ("decrypt t.parquet.kms", size, size, True)


def test_read_table_of_some_columns_counts_what_it_read(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder
) -> None:
    """A projection reads part of the plaintext: the bar ends full at that part."""
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(_table(), path, KEY, kms=kms)

    kmsnb.arrow.read_table(path, kms=kms, columns=["n"], progress=True)

    bar, size = bars.only, plaintext_size(path, kms)
    assert bar.initial_total == size
    assert 0 < bar.n == bar.total < size
    assert bar.closed


def test_read_table_of_csv_and_of_column_mode(
    tmp_path: Path, kms: InMemoryKms, bars: BarRecorder
) -> None:
    """CSV counts the plaintext streamed to pyarrow; column mode, the file pyarrow read."""
    csv, columns = tmp_path / "t.csv.kms", tmp_path / "c.parquet"
    kmsnb.arrow.write_table(_table(), csv, KEY, kms=kms, format="csv")
    kmsnb.arrow.write_table(_table(), columns, KEY, kms=kms, columns=["s"])

    kmsnb.arrow.read_table(csv, kms=kms, progress=True)
    kmsnb.arrow.read_table(columns, kms=kms, progress=True)

    first, second = bars
    assert first.n == first.total == plaintext_size(csv, kms)
    assert second.n == second.total == columns.stat().st_size
    assert first.closed
    assert second.closed


@pytest.mark.parametrize("mode", ["sized", "streamed", "columns"])
def test_an_interrupted_write_closes_its_bar_and_leaves_nothing(
    tmp_path: Path,
    kms: InMemoryKms,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """Ctrl-C at the bar's first step: the bar is closed, no file is there."""
    if mode == "streamed":
        monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    bars.fail_after = 1
    path = tmp_path / "out" / "t.parquet"
    path.parent.mkdir()
    columns = ["s"] if mode == "columns" else None
    with pytest.raises(KeyboardInterrupt):
        kmsnb.arrow.write_table(_table(), path, KEY, kms=kms, columns=columns, progress=True)
    assert bars.only.closed
    assert list(path.parent.iterdir()) == []
