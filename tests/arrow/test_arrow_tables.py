"""kmsnb.arrow: pyarrow Tables in and out of kmsnb files, both modes, Parquet and CSV.

(No ``__init__.py`` here, nor in tests/polars: a package named like a library would hide it.)
"""

from __future__ import annotations

import datetime
import decimal
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from forgery import ForgingKms, forge_bytes

import kmsnb
import kmsnb.arrow
import kmsnb.dataframe
from kmsnb import session
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    UnsupportedStorageError,
    WrongKeyError,
)
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

MAIN_KEY = "alias/main"
PII_KEY = "alias/pii"
PARQUET = "application/vnd.apache.parquet"


@pytest.fixture
def kms() -> Iterator[InMemoryKms]:
    fake = InMemoryKms()
    fake.create_key(alias=MAIN_KEY)
    fake.create_key(alias=PII_KEY)
    session.reset()
    yield fake
    session.reset()


def many_types(rows: int = 6) -> pa.Table:
    """Ints, floats (inf: NaN never compares equal), strings, tz-aware timestamps, dates,
    decimals, lists, dictionaries, structs, binary and nulls (every column has one)."""
    half = rows // 2

    def nulled(values: list[object]) -> list[object]:
        return [None if i == 1 else value for i, value in enumerate(values)]

    moment = datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.UTC)
    return pa.table(
        {
            "i8": pa.array(nulled(list(range(rows))), pa.int8()),
            "u64": pa.array(nulled([2**63 + i for i in range(rows)]), pa.uint64()),
            "f32": pa.array(nulled([i / 3 for i in range(rows)]), pa.float32()),
            "f64": pa.array(nulled([float("inf"), *[i * 1.5 for i in range(rows - 1)]])),
            "name": pa.array(nulled(["ana", "bo", "", "dé", "e" * 40, "f"] * (rows // 6))),
            "ssn": pa.array(nulled([f"{i:03}-00-0000" for i in range(rows)])),
            "at": pa.array(
                nulled([moment + datetime.timedelta(hours=i) for i in range(rows)]),
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "day": pa.array(
                nulled(
                    [datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in range(rows)]
                )
            ),
            "price": pa.array(
                nulled([decimal.Decimal(f"{i}.25") for i in range(rows)]), pa.decimal128(12, 2)
            ),
            "tags": pa.array(nulled([[i, i + 1] if i % 2 else [] for i in range(rows)])),
            "region": pa.array(nulled(["eu", "us"] * half)).dictionary_encode(),
            "point": pa.array(nulled([{"x": i, "y": str(i)} for i in range(rows)])),
            "blob": pa.array(nulled([bytes([i]) * i for i in range(rows)]), pa.binary()),
            "nothing": pa.nulls(rows),
        }
    )


def own_round_trip(table: pa.Table) -> pa.Table:
    """What pyarrow's own Parquet writer and reader give back."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return pq.read_table(io.BytesIO(buffer.getvalue()))


class CountingFile(io.BytesIO):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_size = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_size += len(data)
        return data

    def readinto(self, buffer: object) -> int:
        count = super().readinto(buffer)  # type: ignore[arg-type]
        self.read_size += count
        return count


@pytest.mark.parametrize(
    "mode",
    [{}, {"columns": {"ssn": PII_KEY}}, {"columns": ["ssn"]}, {"uniform": True}],
    ids=["whole-file", "column-keys", "column-list", "uniform"],
)
def test_types_round_trip_as_pyarrow_keeps_them(
    kms: InMemoryKms, tmp_path: Path, mode: dict[str, object]
) -> None:
    """Every type comes back as pyarrow's own Parquet round trip gives it, in every mode,
    all columns and a projection."""
    table = many_types()
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, **mode)  # type: ignore[arg-type]
    expected = own_round_trip(table)
    assert expected.equals(kmsnb.arrow.read_table(path, kms=kms))
    some = ["at", "region", "price", "tags"]
    assert expected.select(some).equals(kmsnb.arrow.read_table(path, kms=kms, columns=some))


def test_whole_file_is_a_kmsnb_file_pandas_reads(kms: InMemoryKms, tmp_path: Path) -> None:
    """The same files as the pandas helpers: an ordinary kmsnb file holding Parquet."""
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    assert kmsnb.inspect(path).content_type == PARQUET
    assert kmsnb.dataframe.read_parquet(path, kms=kms).equals(table.to_pandas())
    df = table.to_pandas()
    df.kms.to_parquet(tmp_path / "p.parquet.kms", MAIN_KEY, kms=kms, columns={"b": PII_KEY})
    back = kmsnb.arrow.read_table(tmp_path / "p.parquet.kms", kms=kms)
    assert back.select(["a", "b"]).to_pydict() == table.to_pydict()


def test_projection_decrypts_only_what_it_reads(kms: InMemoryKms) -> None:
    """``columns=`` on a whole-file Parquet goes through the seekable reader: far fewer
    ciphertext bytes are read than the file holds."""
    table = pa.table({f"c{i}": pa.array(range(i, 200_000 + i), pa.int64()) for i in range(10)})
    sink = io.BytesIO()
    kmsnb.arrow.write_table(table, sink, MAIN_KEY, kms=kms, compression="none")
    whole = CountingFile(sink.getvalue())
    assert kmsnb.arrow.read_table(whole, kms=kms).equals(table)
    one = CountingFile(sink.getvalue())
    assert kmsnb.arrow.read_table(one, kms=kms, columns=["c3"]).equals(table.select(["c3"]))
    assert one.read_size < whole.read_size / 5


def test_csv_round_trip_and_projection(kms: InMemoryKms, tmp_path: Path) -> None:
    table = pa.table({"n": [1, 2, None], "s": ["a", "b,c", "d"], "x": [0.5, 1.5, 2.5]})
    path = tmp_path / "t.csv.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, format="csv")
    assert kmsnb.inspect(path).content_type == "text/csv"
    assert kmsnb.arrow.read_table(path, kms=kms).equals(table)
    assert kmsnb.arrow.read_table(path, kms=kms, columns=["x", "s"]).equals(
        table.select(["x", "s"])
    )
    assert kmsnb.dataframe.read_csv(path, kms=kms)["s"].tolist() == ["a", "b,c", "d"]


def test_csv_of_many_read_steps_round_trips(kms: InMemoryKms, tmp_path: Path) -> None:
    """pyarrow's 1 MiB block reads end mid-way through the reader's decryption steps."""
    rows = 120_001
    table = pa.table({"n": list(range(rows)), "s": [f"value {i}" for i in range(rows)]})
    path = tmp_path / "big.csv.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, format="csv")
    assert kmsnb.inspect(path).plaintext_size > 2 << 20
    assert kmsnb.arrow.read_table(path, kms=kms).equals(table)


def test_reader_without_the_pii_key_reads_the_other_columns(
    kms: InMemoryKms, tmp_path: Path
) -> None:
    table = many_types()
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    kms.disable_key(PII_KEY)
    got = kmsnb.arrow.read_table(path, kms=kms, columns=["name", "i8"])
    assert got.equals(own_round_trip(table).select(["name", "i8"]))
    with pytest.raises(KmsAccessDeniedError, match="'ssn'"):
        kmsnb.arrow.read_table(path, kms=kms, columns=["ssn"])


def test_session_defaults_and_kms_uri(kms: InMemoryKms, tmp_path: Path) -> None:
    """``kms=None`` and ``key=None`` use the session; ``kms`` may be a URI."""
    session.set_kms(kms)
    session.set_default_key(MAIN_KEY)
    table = pa.table({"a": [1]})
    kmsnb.arrow.write_table(table, tmp_path / "s.parquet.kms")
    assert kmsnb.arrow.read_table(tmp_path / "s.parquet.kms").equals(table)
    uri = f"local:{tmp_path / 'store'}"
    local = kmsnb.connect(uri)
    key = local.create_key().key_id  # type: ignore[attr-defined]
    kmsnb.arrow.write_table(table, tmp_path / "u.parquet.kms", key, kms=uri)
    assert kmsnb.arrow.read_table(tmp_path / "u.parquet.kms", kms=uri).equals(table)


def test_a_bare_key_name_means_its_alias(kms: InMemoryKms, tmp_path: Path) -> None:
    """The one key-naming rule (kmsnb._defaults), as for pandas: ``main`` is ``alias/main``,
    for the Arrow and polars writers and the session's default key alike."""
    import polars as pl

    import kmsnb.polars

    table = pa.table({"a": [1]})
    expected = kms.describe_key(MAIN_KEY).key_id
    kmsnb.arrow.write_table(table, tmp_path / "a.parquet.kms", "main", kms=kms)
    kmsnb.polars.write_csv(pl.DataFrame({"a": [1]}), tmp_path / "p.csv.kms", "main", kms=kms)
    session.set_default_key("main")
    kmsnb.arrow.write_table(table, tmp_path / "s.parquet.kms", kms=kms)
    for name in ("a.parquet.kms", "p.csv.kms", "s.parquet.kms"):
        assert kmsnb.inspect(tmp_path / name).key_id == expected


@pytest.mark.parametrize("mode", [{}, {"columns": ["ssn"]}], ids=["whole-file", "columns"])
def test_urls_go_through_kmsnb_storage(kms: InMemoryKms, mode: dict[str, object]) -> None:
    """An fsspec URL is written through kmsnb.storage (published whole, exclusive unless
    overwrite) and read back; a store kmsnb cannot write atomically is refused before
    any KMS call."""
    import fsspec
    import polars as pl

    import kmsnb.polars

    table = pa.table({"a": [1, 2], "ssn": ["x", "y"]})
    url = "memory://kmsnb-arrow-urls/t.parquet.kms"
    try:
        kmsnb.arrow.write_table(table, url, MAIN_KEY, kms=kms, **mode)  # type: ignore[arg-type]
        with pytest.raises(FileExistsError):
            kmsnb.arrow.write_table(table, url, MAIN_KEY, kms=kms, **mode)  # type: ignore[arg-type]
        assert kmsnb.arrow.read_table(url, kms=kms).equals(table)
        frame = pl.from_arrow(table)
        kmsnb.polars.write_parquet(frame, url, MAIN_KEY, kms=kms, overwrite=True)  # type: ignore[arg-type]
        assert kmsnb.polars.read_parquet(url, kms=kms).equals(frame)
    finally:
        fsspec.filesystem("memory").rm("/kmsnb-arrow-urls", recursive=True)
    calls = dict(kms.calls)
    with pytest.raises(UnsupportedStorageError, match="atomically"):
        kmsnb.arrow.write_table(table, "ftp://127.0.0.1/t.parquet.kms", MAIN_KEY, kms=kms)
    assert dict(kms.calls) == calls


def test_forged_whole_file_is_refused(kms: InMemoryKms, tmp_path: Path) -> None:
    """A header naming the trusted key over a data key of a scratch key: the KMS's answer
    gives it away, before any row is released (both read paths)."""
    scratch = kms.create_key()
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), sink)
    path = tmp_path / "forged.parquet.kms"
    path.write_bytes(
        forge_bytes(
            kms,
            scratch_key_id=scratch,
            claimed_key_id=MAIN_KEY,
            plaintext=sink.getvalue(),
            content_type=PARQUET,
        )
    )
    with pytest.raises(WrongKeyError):
        kmsnb.arrow.read_table(path, kms=kms)
    with pytest.raises(WrongKeyError):
        kmsnb.arrow.read_table(path, kms=kms, columns=["a"])


def test_forged_column_key_is_refused(kms: InMemoryKms, tmp_path: Path) -> None:
    scratch = kms.create_key()
    path = tmp_path / "forged.parquet.kms"
    table = pa.table({"a": [1, 2], "ssn": ["x", "y"]})
    forger = ForgingKms(kms, scratch, PII_KEY)
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=forger, columns={"ssn": PII_KEY})
    assert forger.forged_count
    with pytest.raises(WrongKeyError):
        kmsnb.arrow.read_table(path, kms=kms, columns=["ssn"])


def test_allowed_keys_and_context_are_checked(kms: InMemoryKms, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet.kms"
    table = pa.table({"a": [1]})
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, encryption_context={"p": "x"})
    with pytest.raises(WrongKeyError):
        kmsnb.arrow.read_table(path, kms=kms, allowed_keys=[PII_KEY])
    with pytest.raises(ContextMismatchError):
        kmsnb.arrow.read_table(path, kms=kms, encryption_context={"p": "y"})
    good = kmsnb.arrow.read_table(
        path, kms=kms, allowed_keys=[MAIN_KEY], encryption_context={"p": "x"}
    )
    assert good.equals(table)


@pytest.mark.parametrize("columns", [None, ["c1"]], ids=["all", "projection"])
def test_tampered_file_is_refused(
    kms: InMemoryKms, tmp_path: Path, columns: list[str] | None
) -> None:
    table = pa.table({f"c{i}": pa.array(range(50_000), pa.int64()) for i in range(2)})
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, compression="none")
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 1  # inside c1's pages
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        kmsnb.arrow.read_table(path, kms=kms, columns=columns)


def test_misuse(kms: InMemoryKms, tmp_path: Path) -> None:
    table = pa.table({"a": [1]})
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    with pytest.raises(FileExistsError):
        kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    kmsnb.arrow.write_table(pa.table({"a": [2]}), path, MAIN_KEY, kms=kms, overwrite=True)
    assert kmsnb.arrow.read_table(path, kms=kms)["a"].to_pylist() == [2]
    with pytest.raises(TypeError, match="pyarrow Table"):
        kmsnb.arrow.write_table({"a": [1]}, tmp_path / "x", MAIN_KEY, kms=kms)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        kmsnb.arrow.write_table(table, tmp_path / "x", MAIN_KEY, kms=kms, format="orc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CSV is whole-file"):
        kmsnb.arrow.write_table(
            table, tmp_path / "x", MAIN_KEY, kms=kms, format="csv", uniform=True
        )
    pq.write_table(table, tmp_path / "plain.parquet")
    with pytest.raises(FormatError, match="plain, unencrypted"):
        kmsnb.arrow.read_table(tmp_path / "plain.parquet", kms=kms)
    (tmp_path / "bytes.kms").write_bytes(kmsnb.encrypt_bytes(b"hi", MAIN_KEY, kms=kms))
    with pytest.raises(FormatError, match="not a table"):
        kmsnb.arrow.read_table(tmp_path / "bytes.kms", kms=kms)
    with pytest.raises(ValueError, match="drop 'kmsnb::'"):
        kmsnb.arrow.read_table(f"kmsnb::file://{path}", kms=kms)
    assert not [p for p in tmp_path.iterdir() if p.name == "x"]


def test_failed_write_leaves_nothing(kms: InMemoryKms, tmp_path: Path) -> None:
    """A write the serialiser gives up on leaves no file (and an old one untouched)."""
    path = tmp_path / "t.parquet.kms"
    table = pa.table({"a": [1]})
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    old = path.read_bytes()
    for mode in ({}, {"uniform": True}):
        with pytest.raises((ValueError, pa.ArrowException)):
            kmsnb.arrow.write_table(
                table, path, MAIN_KEY, kms=kms, overwrite=True, compression="nope", **mode
            )
        with pytest.raises((ValueError, pa.ArrowException)):
            kmsnb.arrow.write_table(table, tmp_path / "new", MAIN_KEY, kms=kms, compression="x")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.read_bytes() == old


def test_large_tables_stream_through_the_sink(
    kms: InMemoryKms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables above the sized-write limit are not serialised in memory first: they go
    through the streaming sink, and read back the same."""
    from kmsnb import _whole_file_io

    monkeypatch.setattr(_whole_file_io, "SIZED_WRITE_LIMIT", 0)
    table = many_types(60)
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    assert kmsnb.arrow.read_table(path, kms=kms).equals(own_round_trip(table))
