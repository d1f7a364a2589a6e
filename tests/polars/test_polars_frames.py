"""kmsnb.polars: polars DataFrames in and out of kmsnb files, both modes, Parquet and CSV."""

from __future__ import annotations

import datetime
import decimal
import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from forgery import ForgingKms, forge_bytes
from polars.testing import assert_frame_equal

import kmsnb
import kmsnb.arrow
import kmsnb.dataframe
import kmsnb.polars
from kmsnb import session
from kmsnb.errors import FormatError, IntegrityError, KmsAccessDeniedError, WrongKeyError
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

MAIN_KEY = "alias/main"
PII_KEY = "alias/pii"


@pytest.fixture
def kms() -> Iterator[InMemoryKms]:
    fake = InMemoryKms()
    fake.create_key(alias=MAIN_KEY)
    fake.create_key(alias=PII_KEY)
    session.reset()
    yield fake
    session.reset()


def many_types() -> pl.DataFrame:
    """Ints, floats, strings, tz-aware datetimes, dates, decimals, lists, categoricals,
    enums, structs, durations, binary and nulls."""
    moment = datetime.datetime(2024, 3, 31, 1, 30)
    epoch = datetime.datetime(1970, 1, 1)
    return pl.DataFrame(
        {
            "i8": pl.Series([1, None, 3, -4], dtype=pl.Int8),
            "u64": pl.Series([2**63, 1, None, 2], dtype=pl.UInt64),
            "f32": pl.Series([0.5, None, 2.5, float("inf")], dtype=pl.Float32),
            "name": ["ana", None, "", "dé"],
            "ssn": ["001", "002", None, "004"],
            "at": pl.Series([moment, None, moment, moment]).dt.replace_time_zone("Europe/Paris"),
            "day": [datetime.date(2020, 1, 1), None, datetime.date(2021, 2, 3), epoch.date()],
            "price": pl.Series(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50"), decimal.Decimal(0)],
                dtype=pl.Decimal(12, 2),
            ),
            "tags": [[1, 2], None, [], [3]],
            "region": pl.Series(["eu", "us", None, "eu"], dtype=pl.Categorical),
            "tier": pl.Series(["gold", "free", "free", None], dtype=pl.Enum(["free", "gold"])),
            "point": [{"x": 1, "y": "a"}, None, {"x": 3, "y": None}, {"x": 4, "y": "d"}],
            "wait": [datetime.timedelta(seconds=1), None, datetime.timedelta(0), moment - epoch],
            "blob": [b"\x00", None, b"", b"xyz"],
            "flag": [True, None, False, True],
            "nothing": pl.Series([None] * 4, dtype=pl.Null),
        }
    )


def own_round_trip(df: pl.DataFrame) -> pl.DataFrame:
    """What polars' own Parquet writer and reader give back."""
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    return pl.read_parquet(buffer.getvalue())


@pytest.mark.parametrize(
    "mode",
    [{}, {"columns": {"ssn": PII_KEY}}, {"uniform": True}],
    ids=["whole-file", "column-keys", "uniform"],
)
def test_types_round_trip_as_polars_keeps_them(
    kms: InMemoryKms, tmp_path: Path, mode: dict[str, object]
) -> None:
    df = many_types()
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms, **mode)  # type: ignore[arg-type]
    expected = own_round_trip(df)
    assert_frame_equal(kmsnb.polars.read_parquet(path, kms=kms), expected)
    some = ["at", "region", "tier", "price", "tags"]
    assert_frame_equal(kmsnb.polars.read_parquet(path, kms=kms, columns=some), expected[some])


def test_files_are_shared_with_arrow_and_pandas(kms: InMemoryKms, tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms)
    assert kmsnb.arrow.read_table(path, kms=kms).to_pydict() == df.to_dict(as_series=False)
    assert kmsnb.dataframe.read_parquet(path, kms=kms)["a"].tolist() == [1, 2, 3]
    df.to_pandas().kms.to_parquet(tmp_path / "p.parquet.kms", MAIN_KEY, kms=kms, index=False)
    assert_frame_equal(kmsnb.polars.read_parquet(tmp_path / "p.parquet.kms", kms=kms), df)


def test_projection_decrypts_only_what_it_reads(kms: InMemoryKms) -> None:
    df = pl.DataFrame({f"c{i}": pl.int_range(i, 200_000 + i, eager=True) for i in range(10)})
    sink = io.BytesIO()
    kmsnb.polars.write_parquet(df, sink, MAIN_KEY, kms=kms, compression="uncompressed")

    class Counting(io.BytesIO):
        read_size = 0

        def readinto(self, buffer: object) -> int:
            count = super().readinto(buffer)  # type: ignore[arg-type]
            self.read_size += count
            return count

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.read_size += len(data)
            return data

    one = Counting(sink.getvalue())
    assert_frame_equal(kmsnb.polars.read_parquet(one, kms=kms, columns=["c3"]), df[["c3"]])
    assert one.read_size < len(sink.getvalue()) / 5


def test_csv_round_trip(kms: InMemoryKms, tmp_path: Path) -> None:
    df = pl.DataFrame({"n": [1, 2, None], "s": ["a", "b,c", "d"]})
    path = tmp_path / "t.csv.kms"
    kmsnb.polars.write_csv(df, path, MAIN_KEY, kms=kms)
    assert kmsnb.inspect(path).content_type == "text/csv"
    assert_frame_equal(kmsnb.polars.read_csv(path, kms=kms), df)
    with pytest.raises(FormatError, match="holds CSV, not Parquet"):
        kmsnb.polars.read_parquet(path, kms=kms)


def test_reader_without_the_pii_key_reads_the_other_columns(
    kms: InMemoryKms, tmp_path: Path
) -> None:
    df = many_types()
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    kms.disable_key(PII_KEY)
    got = kmsnb.polars.read_parquet(path, kms=kms, columns=["name", "tier"])
    assert_frame_equal(got, own_round_trip(df)[["name", "tier"]])
    with pytest.raises(KmsAccessDeniedError, match="'ssn'"):
        kmsnb.polars.read_parquet(path, kms=kms, columns=["ssn"])


def test_forgeries_are_refused(kms: InMemoryKms, tmp_path: Path) -> None:
    """The same key check as every kmsnb reader: whole-file and column-level forgeries."""
    scratch = kms.create_key()
    sink = io.BytesIO()
    pl.DataFrame({"a": [1]}).write_parquet(sink)
    forged = tmp_path / "forged.parquet.kms"
    forged.write_bytes(
        forge_bytes(
            kms,
            scratch_key_id=scratch,
            claimed_key_id=MAIN_KEY,
            plaintext=sink.getvalue(),
            content_type="application/vnd.apache.parquet",
        )
    )
    for columns in (None, ["a"]):
        with pytest.raises(WrongKeyError):
            kmsnb.polars.read_parquet(forged, kms=kms, columns=columns)
    columns_forged = tmp_path / "columns.parquet.kms"
    kmsnb.polars.write_parquet(
        pl.DataFrame({"a": [1], "ssn": ["x"]}),
        columns_forged,
        MAIN_KEY,
        kms=ForgingKms(kms, scratch, PII_KEY),
        columns={"ssn": PII_KEY},
    )
    with pytest.raises(WrongKeyError):
        kmsnb.polars.read_parquet(columns_forged, kms=kms, columns=["ssn"])


def test_tampered_file_is_refused(kms: InMemoryKms, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(pl.DataFrame({"a": range(100_000)}), path, MAIN_KEY, kms=kms)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        kmsnb.polars.read_parquet(path, kms=kms)


def test_misuse(kms: InMemoryKms, tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1]})
    with pytest.raises(TypeError, match="LazyFrame"):
        kmsnb.polars.write_parquet(df.lazy(), tmp_path / "x", MAIN_KEY, kms=kms)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="polars DataFrame"):
        kmsnb.polars.write_parquet(df.to_pandas(), tmp_path / "x", MAIN_KEY, kms=kms)  # type: ignore[arg-type]
    df.write_parquet(tmp_path / "plain.parquet")
    with pytest.raises(FormatError, match="plain, unencrypted"):
        kmsnb.polars.read_parquet(tmp_path / "plain.parquet", kms=kms)
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms)
    with pytest.raises(FileExistsError):
        kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.parquet", "t.parquet.kms"]


@pytest.mark.parametrize("limit", [0, 1 << 30], ids=["streamed", "in-memory"])
def test_both_write_paths(
    kms: InMemoryKms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Frames above the sized-write limit stream through the sink, smaller ones are
    serialised in memory first; both read back the same, and a failed write leaves nothing."""
    from kmsnb import _whole_file_io

    monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", limit)
    df = many_types()
    path = tmp_path / "t.parquet.kms"
    kmsnb.polars.write_parquet(df, path, MAIN_KEY, kms=kms)
    assert_frame_equal(kmsnb.polars.read_parquet(path, kms=kms), own_round_trip(df))
    with pytest.raises(ValueError, match="compression"):
        kmsnb.polars.write_parquet(
            df, tmp_path / "bad.parquet.kms", MAIN_KEY, kms=kms, compression="nope"
        )
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
