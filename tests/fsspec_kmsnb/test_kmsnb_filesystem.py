"""The ``kmsnb::`` fsspec file system: registered by entry point, read by pyarrow, pandas,
polars and DuckDB (seekable, decrypting only what they touch), written atomically."""

from __future__ import annotations

import importlib.metadata
import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import fsspec
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from forgery import forge_bytes

import kmsnb
import kmsnb.arrow
from kmsnb import session
from kmsnb.errors import (
    ContextMismatchError,
    IntegrityError,
    UnsupportedStorageError,
    WrongKeyError,
)
from kmsnb.fsspec_kmsnb import DecryptedFile, KmsnbFileSystem
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

MAIN_KEY = "alias/main"
PARQUET = "application/vnd.apache.parquet"


@pytest.fixture
def kms() -> Iterator[InMemoryKms]:
    """An in-memory KMS holding ``alias/main``, also the session's KMS."""
    fake = InMemoryKms()
    fake.create_key(alias=MAIN_KEY)
    session.reset()
    session.set_kms(fake)
    yield fake
    session.reset()


@pytest.fixture
def table() -> pa.Table:
    return pa.table({f"c{i}": pa.array(range(i, 100_000 + i), pa.int64()) for i in range(4)})


@pytest.fixture
def encrypted(kms: InMemoryKms, table: pa.Table, tmp_path: Path) -> Path:
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms)
    return path


def url(path: Path) -> str:
    return f"kmsnb::file://{path}"


def test_the_entry_point_registers_the_protocol() -> None:
    """``kmsnb`` is an ``fsspec.specs`` entry point, so fsspec finds it with no import."""
    points = importlib.metadata.entry_points(group="fsspec.specs")
    assert [p.value for p in points if p.name == "kmsnb"] == ["kmsnb.fsspec_kmsnb:KmsnbFileSystem"]
    assert fsspec.get_filesystem_class("kmsnb") is KmsnbFileSystem


def test_fsspec_open_reads_the_plaintext_seekably(
    kms: InMemoryKms, encrypted: Path, table: pa.Table
) -> None:
    expected = kmsnb.decrypt_bytes(encrypted.read_bytes(), kms=kms)
    with fsspec.open(url(encrypted), "rb", kmsnb={"kms": kms}) as f:
        assert isinstance(f, DecryptedFile)
        assert f.size == len(expected)
        assert f.seek(-8, io.SEEK_END) == len(expected) - 8
        assert f.read() == expected[-8:]
        f.seek(100)
        assert f.read(50) == expected[100:150]
        assert f.tell() == 150


def test_info_and_ls_report_plaintext_sizes(kms: InMemoryKms, tmp_path: Path) -> None:
    """Readers size their reads by ``info``; a stream of unknown size has its size too."""
    sized = tmp_path / "sized.kms"
    sized.write_bytes(kmsnb.encrypt_bytes(b"x" * 40_000, MAIN_KEY, kms=kms))
    streamed = tmp_path / "streamed.kms"
    with streamed.open("wb") as out, kmsnb.open_encrypt(out, MAIN_KEY, kms=kms) as writer:
        writer.write(b"y" * 50_000)
    assert kmsnb.inspect(streamed).plaintext_size is None
    fs = fsspec.filesystem("kmsnb", kms=kms)
    assert fs.info(str(sized))["size"] == 40_000
    assert fs.info(str(streamed))["size"] == 50_000
    sizes = {Path(e["name"]).name: e["size"] for e in fs.ls(str(tmp_path), detail=True)}
    assert sizes == {"sized.kms": 40_000, "streamed.kms": 50_000}
    assert fs.cat_file(str(streamed)) == b"y" * 50_000


def pandas_takes_chained_urls() -> bool:
    """Whether pandas hands a chained URL (``kmsnb::file://...``) given as a string to
    fsspec: pandas 3 does, pandas 2.2 (the floor) does not and needs the opened file."""
    from pandas.io.common import is_fsspec_url

    return bool(is_fsspec_url("kmsnb::file:///x"))


def test_pyarrow_pandas_polars_and_duckdb_read_through_it(
    kms: InMemoryKms, encrypted: Path, table: pa.Table
) -> None:
    fs = fsspec.filesystem("kmsnb", kms=kms)
    assert pq.read_table(str(encrypted), filesystem=fs).equals(table)
    assert pq.read_table(str(encrypted), filesystem=fs, columns=["c2"]).equals(table.select(["c2"]))
    if pandas_takes_chained_urls():
        frame = pd.read_parquet(url(encrypted), storage_options={"kmsnb": {"kms": kms}})
    else:  # pandas 2.2 sends "kmsnb::file://..." to its own file code: give it the file
        with fsspec.open(url(encrypted), kmsnb={"kms": kms}) as f:
            frame = pd.read_parquet(f)
    assert frame.equals(table.to_pandas())
    # polars 2.1 opens strings itself (kmsnb::... as a local name): give it the file.
    with fsspec.open(url(encrypted), kmsnb={"kms": kms}) as f:
        assert pl.read_parquet(f).equals(pl.from_arrow(table))
    with fsspec.open(url(encrypted)) as f:  # the session's KMS
        assert pl.read_parquet(f, columns=["c1"], use_pyarrow=True)["c1"].sum() == sum(
            range(1, 100_001)
        )
    connection = duckdb.connect()
    connection.register_filesystem(fs)
    rows = connection.execute(
        "SELECT count(*), sum(c3) FROM read_parquet($path)", {"path": f"kmsnb://{encrypted}"}
    )
    assert rows.fetchall() == [(100_000, sum(range(3, 100_003)))]


def test_a_projection_reads_only_part_of_the_file(
    kms: InMemoryKms, table: pa.Table, tmp_path: Path
) -> None:
    path = tmp_path / "t.parquet.kms"
    kmsnb.arrow.write_table(table, path, MAIN_KEY, kms=kms, compression="none")

    class Counting(fsspec.implementations.local.LocalFileSystem):  # type: ignore[misc]
        read_size = 0

        def _open(self, path: str, mode: str = "rb", **kwargs: object) -> object:
            f = super()._open(path, mode, **kwargs)
            original = f.readinto

            def readinto(buffer: memoryview) -> int:
                count: int = original(buffer)
                Counting.read_size += count
                return count

            f.readinto = readinto
            return f

    fs = KmsnbFileSystem(fs=Counting(), kms=kms)
    assert pq.read_table(str(path), filesystem=fs, columns=["c1"]).equals(table.select(["c1"]))
    assert 0 < Counting.read_size < path.stat().st_size / 2


def test_writes_encrypt_and_appear_when_complete(
    kms: InMemoryKms, table: pa.Table, tmp_path: Path
) -> None:
    target = tmp_path / "w.parquet.kms"
    options = {"kms": kms, "key": MAIN_KEY}
    with fsspec.open(url(target), "wb", kmsnb=options) as f:
        pq.write_table(table, f)
        assert list(tmp_path.iterdir()) == []  # nothing visible while writing
    assert kmsnb.inspect(target).content_type == PARQUET  # from the name
    assert kmsnb.arrow.read_table(target, kms=kms).equals(table)
    if pandas_takes_chained_urls():
        table.to_pandas().to_parquet(
            url(tmp_path / "p.parquet.kms"), storage_options={"kmsnb": options}
        )
    else:  # as above: pandas 2.2 writes a chained URL only through a file object
        with fsspec.open(url(tmp_path / "p.parquet.kms"), "wb", kmsnb=options) as f:
            table.to_pandas().to_parquet(f)
    assert kmsnb.read_parquet(tmp_path / "p.parquet.kms", kms=kms).equals(table.to_pandas())
    session.set_default_key(MAIN_KEY)
    with fsspec.open(url(tmp_path / "notes.txt.kms"), "wb") as f:
        f.write(b"hello")
    assert kmsnb.inspect(tmp_path / "notes.txt.kms").content_type == "application/octet-stream"
    assert kmsnb.decrypt_bytes((tmp_path / "notes.txt.kms").read_bytes(), kms=kms) == b"hello"


def test_a_failed_write_leaves_nothing(kms: InMemoryKms, tmp_path: Path) -> None:
    """An exception in the ``with`` block (or a ``finally`` that closes) discards the file:
    never a shorter valid one, and an existing file stays as it was."""
    target = tmp_path / "w.csv.kms"
    options = {"kms": kms, "key": MAIN_KEY}

    def fail_in_with() -> None:
        with fsspec.open(url(target), "wb", kmsnb=options) as f:
            f.write(b"a,b\n1,2\n")
            raise KeyError("stop")

    with pytest.raises(KeyError):
        fail_in_with()
    assert list(tmp_path.iterdir()) == []
    fs = KmsnbFileSystem(kms=kms, key=MAIN_KEY)
    fs.pipe_file(str(target), b"old")

    def fail_then_close_in_finally() -> None:
        writer = fs.open(str(target), "wb")
        try:
            writer.write(b"new")
            raise ValueError("half way")
        finally:
            writer.close()

    with pytest.raises(ValueError, match="half"):
        fail_then_close_in_finally()
    assert fs.cat_file(str(target)) == b"old"

    def write_while_handling() -> None:
        try:
            raise LookupError("handled")
        except LookupError:
            with fs.open(str(tmp_path / "fallback.kms"), "wb") as f:
                f.write(b"written in an except block")

    write_while_handling()
    assert fs.cat_file(str(tmp_path / "fallback.kms")) == b"written in an except block"
    (tmp_path / "fallback.kms").unlink()
    abandoned = fs.open(str(tmp_path / "abandoned.kms"), "wb")
    abandoned.write(b"never closed")
    del abandoned
    assert [p.name for p in tmp_path.iterdir()] == ["w.csv.kms"]


def test_exclusive_writes_and_transactions(kms: InMemoryKms, tmp_path: Path) -> None:
    fs = KmsnbFileSystem(kms=kms, key=MAIN_KEY)
    target = str(tmp_path / "x.kms")
    with fs.open(target, "xb") as f:
        f.write(b"first")
    with pytest.raises(FileExistsError), fs.open(target, "xb") as f:
        f.write(b"second")
    assert fs.cat_file(target) == b"first"
    with fs.transaction:
        with fs.open(str(tmp_path / "t1.kms"), "wb") as f:
            f.write(b"one")
        assert not (tmp_path / "t1.kms").exists()  # published by the commit
    assert fs.cat_file(str(tmp_path / "t1.kms")) == b"one"

    def fail_in_transaction() -> None:
        with fs.transaction:
            with fs.open(str(tmp_path / "t2.kms"), "wb") as f:
                f.write(b"two")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_in_transaction()
    assert not (tmp_path / "t2.kms").exists()
    with pytest.raises(ValueError, match="never appended"):
        fs.open(target, "ab")


def test_memory_target(kms: InMemoryKms, table: pa.Table) -> None:
    """Over another file system (memory://), files are stored whole once complete."""
    options = {"kms": kms, "key": MAIN_KEY}
    with fsspec.open("kmsnb::memory://bucket/t.parquet.kms", "wb", kmsnb=options) as f:
        pq.write_table(table, f)
        assert not fsspec.filesystem("memory").exists("/bucket/t.parquet.kms")
    stored = fsspec.filesystem("memory").cat_file("/bucket/t.parquet.kms")
    assert kmsnb.inspect(io.BytesIO(stored)).content_type == PARQUET
    with fsspec.open("kmsnb::memory://bucket/t.parquet.kms", kmsnb={"kms": kms}) as f:
        assert pq.read_table(f).equals(table)
    fsspec.filesystem("memory").rm("/bucket", recursive=True)


def test_a_target_kmsnb_cannot_write_atomically_is_refused(
    kms: InMemoryKms, tmp_path: Path
) -> None:
    """Writes go through kmsnb.storage, as every kmsnb writer's: a store it cannot write
    atomically (here fsspec's dir:// over a local folder) is refused before a KMS call."""
    from fsspec.implementations.dirfs import DirFileSystem

    fs = KmsnbFileSystem(fs=DirFileSystem(path=str(tmp_path)), kms=kms, key=MAIN_KEY)
    with pytest.raises(UnsupportedStorageError, match="atomically"):
        fs.open("t.kms", "wb")
    assert list(tmp_path.iterdir()) == []
    assert kms.calls["generate_data_key"] == 0


def test_kms_option_as_a_uri(tmp_path: Path) -> None:
    uri = f"local:{tmp_path / 'store'}"
    key = kmsnb.connect(uri).create_key().key_id  # type: ignore[attr-defined]
    with fsspec.open(url(tmp_path / "x.kms"), "wb", kmsnb={"kms": uri, "key": key}) as f:
        f.write(b"via a uri")
    with fsspec.open(url(tmp_path / "x.kms"), kmsnb={"kms": uri}) as f:
        assert f.read() == b"via a uri"


def test_reads_are_refused_as_kmsnb_refuses_them(
    kms: InMemoryKms, encrypted: Path, tmp_path: Path
) -> None:
    """Forged headers, other keys than allowed, another context and damaged chunks."""
    scratch = kms.create_key()
    forged = tmp_path / "forged.kms"
    forged.write_bytes(
        forge_bytes(kms, scratch_key_id=scratch, claimed_key_id=MAIN_KEY, plaintext=b"x" * 99)
    )
    with pytest.raises(WrongKeyError), fsspec.open(url(forged), kmsnb={"kms": kms}) as f:
        f.read()
    other = kms.create_key(alias="alias/other")
    with pytest.raises(WrongKeyError):
        fsspec.open(url(encrypted), kmsnb={"kms": kms, "allowed_keys": [other]}).open()
    with pytest.raises(ContextMismatchError):
        fsspec.open(url(encrypted), kmsnb={"kms": kms, "encryption_context": {"a": "b"}}).open()
    data = bytearray(encrypted.read_bytes())
    data[len(data) // 2] ^= 1
    encrypted.write_bytes(bytes(data))
    with fsspec.open(url(encrypted), kmsnb={"kms": kms}) as f:
        f.seek(0)
        with pytest.raises(IntegrityError):
            f.read()


@pytest.mark.slow
def test_dask_reads_through_it(kms: InMemoryKms, table: pa.Table, tmp_path: Path) -> None:
    """Dask's Parquet and CSV readers (blocks by plaintext offsets) on the session's KMS."""
    import dask.dataframe as dd

    kmsnb.arrow.write_table(table, tmp_path / "t.parquet.kms", MAIN_KEY, kms=kms)
    kmsnb.arrow.write_table(table, tmp_path / "t.csv.kms", MAIN_KEY, kms=kms, format="csv")
    parquet = dd.read_parquet(url(tmp_path / "t.parquet.kms")).compute()
    assert parquet.reset_index(drop=True).equals(table.to_pandas())
    csv = dd.read_csv(url(tmp_path / "t.csv.kms"), blocksize=300_000).compute()
    assert csv.reset_index(drop=True).equals(table.to_pandas())
