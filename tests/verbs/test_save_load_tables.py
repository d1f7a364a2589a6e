"""``kmsnb.save`` / ``kmsnb.load`` with Arrow Tables and polars DataFrames (issue 14): every
table type x mode (whole file, column keys, uniform) x format (Parquet, CSV) round-trips,
types as each library's own Parquet writer keeps them; ``load(into=...)`` each way; the
receipt describes what was written."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

import kmsnb
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

MODES: dict[str, dict[str, Any]] = {
    "whole-file": {},
    "column-keys": {"columns": {"ssn": "pii"}},
    "column-list": {"columns": ["ssn"]},
    "uniform": {"uniform": True},
}


@pytest.fixture
def pii(kms: InMemoryKms) -> str:
    return kms.create_key(alias="alias/pii")


def arrow_table() -> pa.Table:
    """Narrow ints, tz-aware timestamps, decimals, lists, dictionaries and nulls."""
    moment = datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.UTC)
    return pa.table(
        {
            "i8": pa.array([1, None, -3], pa.int8()),
            "ssn": pa.array(["001", "002", None]),
            "at": pa.array([moment, None, moment], pa.timestamp("us", tz="Europe/Paris")),
            "price": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50")], pa.decimal128(12, 2)
            ),
            "tags": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
            "region": pa.array(["eu", "us", "eu"]).dictionary_encode(),
        }
    )


def polars_frame() -> pl.DataFrame:
    """Narrow ints, tz-aware datetimes, decimals, lists, categoricals, enums and nulls."""
    moment = datetime.datetime(2024, 3, 31, 1, 30)
    return pl.DataFrame(
        {
            "i8": pl.Series([1, None, -3], dtype=pl.Int8),
            "ssn": ["001", "002", None],
            "at": pl.Series([moment, None, moment]).dt.replace_time_zone("Europe/Paris"),
            "price": pl.Series(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50")], dtype=pl.Decimal(12, 2)
            ),
            "tags": [[1, 2], None, []],
            "region": pl.Series(["eu", "us", None], dtype=pl.Categorical),
            "tier": pl.Series(["gold", "free", None], dtype=pl.Enum(["free", "gold"])),
        }
    )


def arrow_own_round_trip(table: pa.Table) -> pa.Table:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return pq.read_table(io.BytesIO(buffer.getvalue()))


def polars_own_round_trip(df: pl.DataFrame) -> pl.DataFrame:
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    return pl.read_parquet(buffer.getvalue())


def check_receipt(saved: kmsnb.Saved, path: Path, key: str, shape: tuple[int, int]) -> None:
    assert saved.path == str(path)
    assert saved.shape == shape
    assert saved.ciphertext_size == path.stat().st_size
    assert saved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert saved.key_alias == "alias/kmsnb-test"
    if saved.column_mode:
        assert saved.key_version is None  # each wrapped key names its own
    else:
        info = kmsnb.inspect(path)
        assert saved.key_id == key == info.key_id  # type: ignore[union-attr]
        assert saved.key_version == info.key_version_id  # type: ignore[union-attr]
        assert saved.plaintext_size == info.plaintext_size  # type: ignore[union-attr]
    assert "3 rows x" in str(saved)


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_an_arrow_table_round_trips_as_parquet(
    tmp_path: Path, kms: InMemoryKms, key_id: str, pii: str, mode: dict[str, Any]
) -> None:
    """Types come back as pyarrow's own Parquet round trip gives them, in every mode."""
    table = arrow_table()
    path = tmp_path / "t.parquet.kms"
    saved = kmsnb.save(table, path, "kmsnb-test", kms=kms, **mode)
    assert (saved.content, saved.column_mode) == ("parquet", bool(mode))
    check_receipt(saved, path, key_id, (3, 6))
    loaded = kmsnb.load(path, kms=kms, into="arrow")
    assert isinstance(loaded, pa.Table)
    assert arrow_own_round_trip(table).equals(loaded)
    some = kmsnb.load(path, kms=kms, into="arrow", columns=["at", "price"])
    assert arrow_own_round_trip(table).select(["at", "price"]).equals(some)


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_a_polars_frame_round_trips_as_parquet(
    tmp_path: Path, kms: InMemoryKms, key_id: str, pii: str, mode: dict[str, Any]
) -> None:
    """Types come back as polars' own Parquet round trip gives them, in every mode."""
    df = polars_frame()
    path = tmp_path / "t.parquet.kms"
    saved = kmsnb.save(df, path, "kmsnb-test", kms=kms, **mode)
    assert (saved.content, saved.column_mode) == ("parquet", bool(mode))
    check_receipt(saved, path, key_id, (3, 7))
    loaded = kmsnb.load(path, kms=kms, into="polars")
    assert isinstance(loaded, pl.DataFrame)
    assert_frame_equal(loaded, polars_own_round_trip(df))
    some = kmsnb.load(path, kms=kms, into="polars", columns=["at", "tier"])
    assert_frame_equal(some, polars_own_round_trip(df).select(["at", "tier"]))


def test_an_arrow_table_round_trips_as_csv(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    # Not a null string: pyarrow's CSV writes it as an empty field, read back as "".
    table = pa.table({"n": [1, 2, 3], "x": [0.5, None, 2.0], "s": ["a", "b", ""]})
    path = tmp_path / "t.csv.kms"  # the suffix picks CSV
    saved = kmsnb.save(table, path, "kmsnb-test", kms=kms)
    assert (saved.content, saved.notes) == ("csv", ())
    check_receipt(saved, path, key_id, (3, 3))
    assert table.equals(kmsnb.load(path, kms=kms, into="arrow"))
    assert table.select(["s"]).equals(kmsnb.load(path, kms=kms, into="arrow", columns=["s"]))


def test_a_polars_frame_round_trips_as_csv(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    df = pl.DataFrame({"n": [1, 2, 3], "x": [0.5, None, 2.0], "s": ["a", "b", None]})
    path = tmp_path / "t.kms"
    saved = kmsnb.save(df, path, "kmsnb-test", kms=kms, format="csv")
    assert (saved.content, saved.notes) == ("csv", ())
    check_receipt(saved, path, key_id, (3, 3))
    assert_frame_equal(kmsnb.load(path, kms=kms, into="polars"), df)
    assert_frame_equal(kmsnb.load(path, kms=kms, into="polars", columns=["s"]), df.select("s"))


@pytest.mark.parametrize("table", [arrow_table(), polars_frame()], ids=["arrow", "polars"])
def test_csv_says_what_it_loses(tmp_path: Path, kms: InMemoryKms, key_id: str, table: Any) -> None:
    with pytest.warns(UserWarning, match="CSV keeps only text") as caught:
        saved = kmsnb.save(table.select(["i8", "ssn"]), tmp_path / "x.csv.kms", key_id, kms=kms)
    assert len(saved.notes) == 1
    assert "'i8'" in saved.notes[0]
    assert "'ssn'" not in saved.notes[0]
    assert "'i8'" in str(caught[0].message)


@pytest.mark.parametrize("table", [arrow_table(), polars_frame()], ids=["arrow", "polars"])
def test_column_mode_is_parquet_only(
    tmp_path: Path, kms: InMemoryKms, key_id: str, table: Any
) -> None:
    with pytest.raises(TypeError, match="writes Parquet, not CSV"):
        kmsnb.save(table, tmp_path / "x.csv.kms", key_id, kms=kms, columns=["ssn"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_into_reads_any_table_file_as_any_library(
    tmp_path: Path, kms: InMemoryKms, key_id: str, format: str
) -> None:
    """Whoever wrote it, pandas, Arrow and polars each read it; pandas is the default."""
    data = {"n": [1, 2, 3], "s": ["a", "b", "c"]}
    written = {
        "pandas": pd.DataFrame(data),
        "arrow": pa.table(data),
        "polars": pl.DataFrame(data),
    }
    for writer, table in written.items():
        path = tmp_path / f"{writer}.kms"
        kmsnb.save(table, path, key_id, kms=kms, format=format)
        as_pandas = kmsnb.load(path, kms=kms)
        pd.testing.assert_frame_equal(as_pandas, pd.DataFrame(data), check_dtype=False)
        pd.testing.assert_frame_equal(kmsnb.load(path, kms=kms, into="pandas"), as_pandas)
        as_arrow = kmsnb.load(path, kms=kms, into="arrow")
        assert as_arrow.select(["n", "s"]).to_pydict() == data, writer
        as_polars = kmsnb.load(path, kms=kms, into="polars")
        assert as_polars.select(["n", "s"]).to_dict(as_series=False) == data, writer


def test_bytes_and_text_ignore_into(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    kmsnb.save(b"\x00raw", tmp_path / "b.kms", key_id, kms=kms)
    kmsnb.save("text", tmp_path / "t.kms", key_id, kms=kms)
    for into in ("pandas", "arrow", "polars"):
        assert kmsnb.load(tmp_path / "b.kms", kms=kms, into=into) == b"\x00raw"  # type: ignore[arg-type]
        assert kmsnb.load(tmp_path / "t.kms", kms=kms, into=into) == "text"  # type: ignore[arg-type]


@pytest.mark.parametrize("into", ["numpy", "Arrow", None, 3])
def test_a_bad_into_is_a_value_error(
    tmp_path: Path, kms: InMemoryKms, key_id: str, into: object
) -> None:
    kmsnb.save(b"x", tmp_path / "b.kms", key_id, kms=kms)
    with pytest.raises(ValueError, match="into must be one of 'pandas', 'arrow', 'polars'"):
        kmsnb.load(tmp_path / "b.kms", kms=kms, into=into)  # type: ignore[arg-type]
