"""``progress=`` on ``kmsnb.save`` and ``kmsnb.load`` for tables (issue 12): the table's
own writer and reader show the bar, named after the file, counting the bytes encrypted and
read; ``load`` of bytes and text counts the plaintext it verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from progress_bars import BarRecorder

import kmsnb
from kmsnb import _progress, _whole_file_io
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

ROWS = 20_000


def _table(library: str) -> Any:
    columns = {"n": list(range(ROWS)), "s": [f"row {i}" for i in range(ROWS)]}
    if library == "pandas":
        return pd.DataFrame(columns)
    if library == "arrow":
        return pa.table(columns)
    return pl.DataFrame(columns)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
@pytest.mark.parametrize("library", ["pandas", "arrow", "polars"])
def test_a_table_saved_and_loaded_shows_its_bars(
    tmp_path: Path, kms: InMemoryKms, key_id: str, bars: BarRecorder, library: str, suffix: str
) -> None:
    """One bar each way, ending at the plaintext size, closed."""
    path = tmp_path / f"t.{suffix}.kms"
    kmsnb.save(_table(library), path, key_id, kms=kms, progress=True)
    kmsnb.load(path, kms=kms, into=library, progress=True)  # type: ignore[arg-type]

    size = len(kmsnb.decrypt_bytes(path.read_bytes(), kms=kms))
    saved, loaded = bars
    assert (saved.desc, saved.n, saved.total) == (f"encrypt {path.name}", size, size)
    assert (loaded.desc, loaded.n, loaded.total) == (f"decrypt {path.name}", size, size)
    assert saved.closed
    assert loaded.closed


def test_column_mode_counts_the_file(
    tmp_path: Path, kms: InMemoryKms, key_id: str, bars: BarRecorder
) -> None:
    """``columns=``: pyarrow encrypts and decrypts; the bars count the file it wrote."""
    path = tmp_path / "c.parquet"
    kmsnb.save(_table("pandas"), path, key_id, kms=kms, columns=["s"], progress=True)
    kmsnb.load(path, kms=kms, progress=True)
    assert [(bar.n, bar.total, bar.closed) for bar in bars] == [
        (path.stat().st_size,) * 2 + (True,)
    ] * 2


@pytest.mark.parametrize("value", [b"b" * 300_000, "t" * 300_000], ids=["bytes", "text"])
def test_load_of_bytes_and_text_counts_what_it_verifies(
    tmp_path: Path,
    kms: InMemoryKms,
    key_id: str,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    value: bytes | str,
) -> None:
    """Sized or streamed (no size in the header: the payload's is the total), the bar ends
    at the plaintext's size."""
    sized, streamed = tmp_path / "sized.kms", tmp_path / "streamed.kms"
    kmsnb.save(value, sized, key_id, kms=kms)
    with streamed.open("wb") as out, kmsnb.open_encrypt(out, key_id, kms=kms) as writer:
        writer.write(value if isinstance(value, bytes) else value.encode())
    assert kmsnb.inspect(streamed).plaintext_size is None

    assert kmsnb.load(sized, kms=kms, progress=True) == value
    assert len(kmsnb.load(streamed, kms=kms, progress=True)) == 300_000  # bytes: no type
    first, second = bars
    assert (first.desc, first.n, first.total) == ("load sized.kms", 300_000, 300_000)
    assert second.initial_total > second.n == second.total == 300_000
    assert first.updates > 1  # counted as chunks verified
    assert first.closed
    assert second.closed


@pytest.mark.parametrize(
    ("progress", "threshold", "made"),
    [(None, _progress.DEFAULT_PROGRESS_THRESHOLD, 0), (None, 0, 2), (False, 0, 0)],
)
def test_no_bar_unless_wanted(
    tmp_path: Path,
    kms: InMemoryKms,
    key_id: str,
    bars: BarRecorder,
    progress: bool | None,
    threshold: int,
    made: int,
) -> None:
    """Below the threshold, or with ``False``: no bar, tqdm not even looked up."""
    _progress.set_progress_threshold(threshold)
    path = tmp_path / "t.parquet.kms"
    kmsnb.save(_table("pandas").head(10), path, key_id, kms=kms, progress=progress)
    kmsnb.load(path, kms=kms, progress=progress)
    assert len(bars) == bars.lookups == made


def test_an_invalid_progress_is_a_type_error(
    tmp_path: Path, kms: InMemoryKms, key_id: str, bars: BarRecorder
) -> None:
    """For a table as for bytes: refused before the KMS is asked, nothing written."""
    path = tmp_path / "t.parquet.kms"
    with pytest.raises(TypeError, match="progress"):
        kmsnb.save(_table("arrow"), path, key_id, kms=kms, progress="yes")  # type: ignore[arg-type]
    assert not path.exists()
    assert kms.calls["generate_data_key"] == 0
    kmsnb.save(_table("arrow"), path, key_id, kms=kms)
    calls = dict(kms.calls)
    with pytest.raises(TypeError, match="progress"):
        kmsnb.load(path, kms=kms, progress=1)  # type: ignore[arg-type]
    assert dict(kms.calls) == calls
    assert not bars


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_an_interrupted_save_closes_its_bar_and_leaves_nothing(
    tmp_path: Path,
    kms: InMemoryKms,
    key_id: str,
    bars: BarRecorder,
    monkeypatch: pytest.MonkeyPatch,
    library: str,
) -> None:
    """Ctrl-C while the plaintext streams: the bar is closed, no file appears."""
    monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    bars.fail_after = 4096
    folder = tmp_path / "out"
    folder.mkdir()
    # polars turns an exception in the file it writes to into an OSError of its own.
    with pytest.raises(KeyboardInterrupt if library == "pandas" else OSError):
        kmsnb.save(_table(library), folder / "t.csv.kms", key_id, kms=kms, progress=True)
    assert bars.only.closed
    assert list(folder.iterdir()) == []
