"""Whole-file DataFrame encryption: round trips, registration, atomic writes, bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq
import pytest

import kmsnb
import kmsnb.dataframe
from kmsnb import session
from kmsnb._files import is_temporary_name
from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET, MAGIC
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
)
from kmsnb.kms import CachingKms
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY

pytestmark = pytest.mark.unit

SECRET_COLUMN = "very_secret_column_name"
SECRET_VALUE = "needle-in-the-plaintext"


def dtype_zoo(index: str = "range") -> pd.DataFrame:
    """Every dtype a Parquet round trip must keep."""
    df = pd.DataFrame(
        {
            "int": np.arange(5, dtype="int64"),
            "i32": np.arange(5, dtype="int32"),
            "float": [0.5, 1.5, np.nan, 3.5, 4.5],
            "f32": np.arange(5, dtype="float32"),
            "text": ["a", "b", None, "d", SECRET_VALUE],
            "string": pd.array(["x", None, "z", "w", "v"], dtype="string"),
            "Int64": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "boolean": pd.array([True, None, False, True, False], dtype="boolean"),
            "bool": [True, False, True, False, True],
            "category": pd.Categorical(["lo", "hi", "lo", None, "hi"], categories=["lo", "hi"]),
            "ordered": pd.Categorical(["s", "m", "l", "m", "s"], ["s", "m", "l"], ordered=True),
            "naive": pd.date_range("2024-01-01", periods=5, freq="h"),
            "aware": pd.date_range("2024-03-30", periods=5, freq="D", tz="Europe/Paris"),
            "delta": pd.to_timedelta([1, 2, 3, 4, 5], unit="s"),
            SECRET_COLUMN: [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    if index == "named":
        df.index = pd.Index([10, 20, 30, 40, 50], name="row_id")
    elif index == "multi":
        df.index = pd.MultiIndex.from_arrays(
            [["a", "a", "b", "b", "c"], list(pd.date_range("2024", periods=5, tz="UTC"))],
            names=["group", "when"],
        )
    elif index == "string":
        df.index = pd.Index(list("vwxyz"))
    return df


@pytest.fixture
def cached(kms: InMemoryKms) -> CachingKms[InMemoryKms]:
    return CachingKms(kms)


@pytest.mark.parametrize("index", ["range", "named", "multi", "string"])
def test_parquet_round_trip_keeps_the_dtype_zoo(
    tmp_path: Path, kms: InMemoryKms, index: str
) -> None:
    df = dtype_zoo(index)
    df.attrs = {"source": "test"}
    path = tmp_path / "zoo.parquet.kms"
    df.kms.to_parquet(path, MAIN_KEY, kms=kms)
    result = kmsnb.read_parquet(path, kms=kms)
    pd.testing.assert_frame_equal(df, result)
    assert result.attrs == {"source": "test"}


def test_header_tells_a_dataframe_and_hides_its_shape(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "zoo.kms"
    dtype_zoo().kms.to_parquet(path, MAIN_KEY, kms=kms, encryption_context={"team": "a"})
    info = kmsnb.inspect(path)
    assert info.content_type == CONTENT_TYPE_PARQUET
    assert info.encryption_context == {"team": "a"}
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    for needle in (SECRET_COLUMN.encode(), SECRET_VALUE.encode(), b"PAR1", b"pandas"):
        assert needle not in data


def test_read_selected_columns_and_pandas_kwargs(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "zoo.kms"
    dtype_zoo("named").kms.to_parquet(path, MAIN_KEY, kms=kms, compression="zstd")
    result = kmsnb.read_parquet(path, kms=kms, columns=["int", "text"], dtype_backend="pyarrow")
    assert list(result.columns) == ["int", "text"]
    assert result.index.name == "row_id"
    assert str(result["int"].dtype) == "int64[pyarrow]"


def test_index_false(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "zoo.kms"
    dtype_zoo("named").kms.to_parquet(path, MAIN_KEY, kms=kms, index=False)
    assert isinstance(kmsnb.read_parquet(path, kms=kms).index, pd.RangeIndex)


def test_csv_round_trip_is_lossy_but_faithful_to_text(tmp_path: Path, kms: InMemoryKms) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "é", None], "c": [0.5, None, 1.5]})
    path = tmp_path / "frame.csv.kms"
    df.kms.to_csv(path, MAIN_KEY, kms=kms, index=False)
    assert kmsnb.inspect(path).content_type == CONTENT_TYPE_CSV
    pd.testing.assert_frame_equal(df, kmsnb.read_csv(path, kms=kms))
    with_index = tmp_path / "indexed.csv.kms"
    df.kms.to_csv(with_index, MAIN_KEY, kms=kms, sep=";")
    result = kmsnb.read_csv(with_index, kms=kms, sep=";", index_col=0)
    pd.testing.assert_frame_equal(df, result)


def test_csv_of_many_read_steps_round_trips(tmp_path: Path, kms: InMemoryKms) -> None:
    """A CSV of a few MiB, not a whole number of anything: pandas' 256 KiB reads, the
    128 KiB buffer before them and the reader's 1 MiB decryption steps all end mid-way;
    the python engine (line by line, through the buffer) reads it too."""
    rows = 90_001
    df = pd.DataFrame(
        {
            "n": np.arange(rows),
            "s": [f"row {i}, quoted" for i in range(rows)],
            "x": np.linspace(0, 1, rows),
        }
    )
    path = tmp_path / "big.csv.kms"
    df.kms.to_csv(path, MAIN_KEY, kms=kms, index=False)
    assert kmsnb.inspect(path).plaintext_size > 3 << 20
    pd.testing.assert_frame_equal(df, kmsnb.read_csv(path, kms=kms))
    pd.testing.assert_frame_equal(df, kmsnb.read_csv(path, kms=kms, engine="python"))


def test_csv_loses_what_csv_cannot_hold(tmp_path: Path, kms: InMemoryKms) -> None:
    """The documented loss: categoricals and nullable dtypes come back re-inferred."""
    df = dtype_zoo()[["category", "Int64"]]
    path = tmp_path / "zoo.csv.kms"
    df.kms.to_csv(path, MAIN_KEY, kms=kms, index=False)
    result = kmsnb.read_csv(path, kms=kms)
    assert str(result["category"].dtype) != "category"
    assert str(result["Int64"].dtype) != "Int64"


def test_accessor_is_registered_the_documented_ways() -> None:
    """In fresh interpreters: pandas first then kmsnb; kmsnb.dataframe; kmsnb.read_parquet."""
    script = """
import sys
import kmsnb
assert "pandas" not in sys.modules, "import kmsnb imported pandas"
import pandas as pd
assert not hasattr(pd.DataFrame(), "kms")
kmsnb.read_parquet  # loads kmsnb.dataframe
assert hasattr(pd.DataFrame(), "kms")
"""
    script_pandas_first = """
import pandas as pd
import kmsnb
df = pd.DataFrame({"a": [1]})
# pandas 2 caches an accessor on the frame, pandas 3 makes one per access: either way it
# holds only the frame (kmsnb.dataframe.KmsAccessor).
pandas_caches_accessors = int(pd.__version__.split(".")[0]) < 3
assert hasattr(df, "kms") and (df.kms is df.kms) == pandas_caches_accessors
assert df.kms._df is df and list(vars(df.kms)) == ["_df"]
"""
    for code in (script, script_pandas_first):
        completed = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stderr


def test_accessor_refuses_non_frames() -> None:
    with pytest.raises(AttributeError):
        kmsnb.dataframe.KmsAccessor(pd.Series([1]))
    assert pd.DataFrame.kms is kmsnb.dataframe.KmsAccessor


def test_session_defaults(tmp_path: Path, kms: InMemoryKms) -> None:
    session.set_kms(kms)
    session.set_default_key(MAIN_KEY)
    path = tmp_path / "defaults.kms"
    dtype_zoo().kms.to_parquet(path)
    pd.testing.assert_frame_equal(dtype_zoo(), kmsnb.read_parquet(path))


def test_many_small_frames_through_the_session_cache(tmp_path: Path, kms: InMemoryKms) -> None:
    """Small files have a known size, so the session cache reuses one data key."""
    session.set_kms(kms)
    session.set_default_key(MAIN_KEY)
    df = pd.DataFrame({"a": [1, 2]})
    for i in range(50):
        df.kms.to_parquet(tmp_path / f"{i}.kms")
    assert kms.calls["generate_data_key"] == 1
    for i in range(50):
        kmsnb.read_parquet(tmp_path / f"{i}.kms")
    assert kms.calls["decrypt_data_key"] == 1


def test_large_writes_stream_and_get_their_own_key(
    tmp_path: Path, cached: CachingKms[InMemoryKms], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SIZED_WRITE_LIMIT the size is unknown: streamed, and never sharing a key."""
    monkeypatch.setattr(kmsnb._whole_file_io, "SIZED_WRITE_LIMIT", 1024)
    df = pd.DataFrame({"a": np.arange(20_000)})
    for name in ("one.kms", "two.kms"):
        df.kms.to_parquet(tmp_path / name, MAIN_KEY, kms=cached, compression=None)
        assert kmsnb.inspect(tmp_path / name).plaintext_size is None
        pd.testing.assert_frame_equal(df, kmsnb.read_parquet(tmp_path / name, kms=cached))
    assert cached.wrapped.calls["generate_data_key"] == 2


def test_no_plaintext_temporary_file(
    tmp_path: Path, kms: InMemoryKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only kmsnb's temporary ciphertext may appear beside the destination, and it is
    sealed: each file is published (linked from /proc/self/fd, or renamed) as ciphertext."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a temporary file was requested")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    seen: list[tuple[list[str], bytes]] = []
    real_replace, real_link = os.replace, os.link

    def snapshot(source: Any, destination: Any) -> None:
        seen.append((sorted(os.listdir(tmp_path)), Path(source).read_bytes()[: len(MAGIC)]))

    def spy_replace(source: Any, destination: Any) -> None:
        snapshot(source, destination)
        real_replace(source, destination)

    def spy_link(source: Any, destination: Any, **kwargs: Any) -> None:
        snapshot(source, destination)
        real_link(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "link", spy_link)
    dtype_zoo().kms.to_parquet(tmp_path / "a.kms", MAIN_KEY, kms=kms)
    dtype_zoo().kms.to_parquet(tmp_path / "a.kms", MAIN_KEY, kms=kms, overwrite=True)
    pd.DataFrame({"x": [1]}).kms.to_csv(tmp_path / "b.kms", MAIN_KEY, kms=kms)
    assert len(seen) == 4  # link; link to a temporary name and rename over; link
    for listing, head in seen:
        assert all(is_temporary_name(name) or name == "a.kms" for name in listing)
        assert head == MAGIC
    assert sorted(os.listdir(tmp_path)) == ["a.kms", "b.kms"]


def failing_write_table(*args: Any, **kwargs: Any) -> None:
    sink = args[1]
    sink.write(b"PAR1" + b"\0" * 100_000)
    raise RuntimeError("disk full, say")


def test_failed_write_leaves_nothing(
    tmp_path: Path, kms: InMemoryKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.kms"
    old.write_bytes(b"previous contents")
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    for path in (tmp_path / "new.kms", old):
        with pytest.raises(RuntimeError, match="disk full"):
            dtype_zoo().kms.to_parquet(path, MAIN_KEY, kms=kms, overwrite=True)
    assert os.listdir(tmp_path) == ["old.kms"]
    assert old.read_bytes() == b"previous contents"


def test_overwrite(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "f.kms"
    pd.DataFrame({"a": [1]}).kms.to_parquet(path, MAIN_KEY, kms=kms)
    with pytest.raises(FileExistsError):
        pd.DataFrame({"a": [2]}).kms.to_parquet(path, MAIN_KEY, kms=kms)
    pd.DataFrame({"a": [2]}).kms.to_parquet(path, MAIN_KEY, kms=kms, overwrite=True)
    assert kmsnb.read_parquet(path, kms=kms)["a"].tolist() == [2]


def test_fsspec_memory(kms: InMemoryKms, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    url = "memory://bucket/zoo.kms"
    df = dtype_zoo("multi")
    df.kms.to_parquet(url, MAIN_KEY, kms=kms)
    stored = fs.cat_file("/bucket/zoo.kms")
    assert stored.startswith(MAGIC)
    assert SECRET_VALUE.encode() not in stored
    pd.testing.assert_frame_equal(df, kmsnb.read_parquet(url, kms=kms))
    with pytest.raises(FileExistsError):
        df.kms.to_parquet(url, MAIN_KEY, kms=kms)
    df.kms.to_csv("memory://bucket/zoo.csv.kms", MAIN_KEY, kms=kms, storage_options={})
    assert len(kmsnb.read_csv("memory://bucket/zoo.csv.kms", kms=kms)) == 5
    # A failed write commits nothing.
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    with pytest.raises(RuntimeError):
        df.kms.to_parquet("memory://bucket/failed.kms", MAIN_KEY, kms=kms)
    assert not fs.exists("/bucket/failed.kms")
    fs.rm("/bucket", recursive=True)


def test_file_url_and_file_objects(tmp_path: Path, kms: InMemoryKms) -> None:
    df = dtype_zoo()
    df.kms.to_parquet(f"file://{tmp_path}/url.kms", MAIN_KEY, kms=kms)
    pd.testing.assert_frame_equal(df, kmsnb.read_parquet(tmp_path / "url.kms", kms=kms))
    buffer = io.BytesIO()
    df.kms.to_parquet(buffer, MAIN_KEY, kms=kms)
    buffer.seek(0)
    pd.testing.assert_frame_equal(df, kmsnb.read_parquet(buffer, kms=kms))


def test_tampering_is_detected(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "f.kms"
    dtype_zoo().kms.to_parquet(path, MAIN_KEY, kms=kms)
    data = bytearray(path.read_bytes())
    data[-30] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        kmsnb.read_parquet(path, kms=kms)


# -- bad input: the right error, and nothing written ---------------------------------------


@pytest.mark.parametrize(
    ("frame", "writer", "error", "match"),
    [
        ([1, 2], "to_parquet", TypeError, "DataFrame"),
        (pd.Series([1]), "to_parquet", TypeError, "to_frame"),
        (pd.DataFrame({"z": [1j]}), "to_parquet", TypeError, "Parquet"),
        (pd.DataFrame({"m": [1, "a"]}), "to_parquet", TypeError, "Parquet"),
        (pd.DataFrame({"z": [1j]}), "to_csv", TypeError, "complex"),
        (pd.DataFrame({"b": [b"raw"]}), "to_csv", TypeError, "bytes"),
        (pd.DataFrame({"b": [b"raw", "text"]}), "to_csv", TypeError, "bytes"),
        (pd.DataFrame({"a": [1]}, index=pd.Index([b"k"])), "to_csv", TypeError, "bytes"),
        ({"a": [1]}, "to_csv", TypeError, "DataFrame"),
    ],
)
def test_unwritable_input(
    tmp_path: Path, kms: InMemoryKms, frame: Any, writer: str, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        getattr(kmsnb.dataframe, writer)(frame, tmp_path / "out.kms", MAIN_KEY, kms=kms)
    assert os.listdir(tmp_path) == []
    assert kms.calls["generate_data_key"] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"partition_cols": ["a"]}, "partition_cols"),
        ({"engine": "fastparquet"}, "pyarrow"),
        ({"filesystem": object()}, "storage_options"),
        ({"storage_options": {"anon": True}}, "fsspec URLs"),
    ],
)
def test_unsupported_options(
    tmp_path: Path, kms: InMemoryKms, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        pd.DataFrame({"a": [1]}).kms.to_parquet(tmp_path / "x.kms", MAIN_KEY, kms=kms, **kwargs)
    assert os.listdir(tmp_path) == []


def test_no_key_anywhere(tmp_path: Path, kms: InMemoryKms) -> None:
    with pytest.raises(ValueError, match="set_default_key"):
        pd.DataFrame({"a": [1]}).kms.to_parquet(tmp_path / "x.kms", kms=kms)


def test_disabled_key_writes_nothing_and_reads_nothing(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "x.kms"
    pd.DataFrame({"a": [1]}).kms.to_parquet(path, MAIN_KEY, kms=kms)
    kms.disable_key(MAIN_KEY)
    with pytest.raises(KmsAccessDeniedError, match="disabled"):
        pd.DataFrame({"a": [1]}).kms.to_parquet(tmp_path / "y.kms", MAIN_KEY, kms=kms)
    with pytest.raises(KmsAccessDeniedError, match="disabled"):
        kmsnb.read_parquet(path, kms=kms)
    assert os.listdir(tmp_path) == ["x.kms"]


def test_wrong_kms_and_unknown_key(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "x.kms"
    pd.DataFrame({"a": [1]}).kms.to_parquet(path, MAIN_KEY, kms=kms)
    with pytest.raises(KmsAccessDeniedError, match="not found"):
        kmsnb.read_parquet(path, kms=InMemoryKms())  # the key lives in another KMS
    with pytest.raises(KmsAccessDeniedError, match="not found"):
        pd.DataFrame({"a": [1]}).kms.to_csv(tmp_path / "y.kms", "alias/nope", kms=kms)
    assert os.listdir(tmp_path) == ["x.kms"]


def test_context_mismatch(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "x.kms"
    pd.DataFrame({"a": [1]}).kms.to_parquet(path, MAIN_KEY, kms=kms, encryption_context={"t": "1"})
    with pytest.raises(ContextMismatchError, match="'t'"):
        kmsnb.read_parquet(path, kms=kms, encryption_context={"t": "2"})
    assert kms.calls["decrypt_data_key"] == 0  # refused before the KMS was asked
    assert kmsnb.read_parquet(path, kms=kms, encryption_context={"t": "1"})["a"].tolist() == [1]


def test_files_of_the_wrong_kind(tmp_path: Path, kms: InMemoryKms) -> None:
    df = pd.DataFrame({"a": [1]})
    plain = tmp_path / "plain.parquet"
    df.to_parquet(plain)
    with pytest.raises(FormatError, match="plain, unencrypted Parquet"):
        kmsnb.read_parquet(plain, kms=kms)
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    with pytest.raises(FormatError, match="neither"):
        kmsnb.read_parquet(junk, kms=kms)
    csv = tmp_path / "x.csv.kms"
    df.kms.to_csv(csv, MAIN_KEY, kms=kms)
    with pytest.raises(FormatError, match="read_csv"):
        kmsnb.read_parquet(csv, kms=kms)
    parquet = tmp_path / "x.parquet.kms"
    df.kms.to_parquet(parquet, MAIN_KEY, kms=kms)
    with pytest.raises(FormatError, match="read_parquet"):
        kmsnb.read_csv(parquet, kms=kms)
    with pytest.raises(FormatError, match="Parquet file"):
        kmsnb.read_csv(plain, kms=kms)
    raw = tmp_path / "raw.kms"
    raw.write_bytes(kmsnb.encrypt_bytes(b"bytes", MAIN_KEY, kms=kms))
    with pytest.raises(FormatError, match="decrypt_file"):
        kmsnb.read_parquet(raw, kms=kms)
    assert kms.calls["decrypt_data_key"] == 0  # each refused from its header alone
    with pytest.raises(FormatError, match="whole-file"):
        kmsnb.read_parquet(parquet, kms=kms, mode="columns")
    with pytest.raises(ValueError, match="mode"):
        kmsnb.read_parquet(parquet, kms=kms, mode="both")  # type: ignore[arg-type]


def test_key_pending_deletion_in_the_local_emulator(tmp_path: Path) -> None:
    """A real KMS client: the emulator in-process, its keystore in tmp_path."""
    from kmsnb.kms.local import LocalKms

    with LocalKms(tmp_path / "keystore") as local:
        cache = CachingKms(local)
        key = cache.create_key("dataframe tests")
        cache.create_alias(MAIN_KEY, key.key_id)
        df = pd.DataFrame({"a": [1, 2]})
        df.kms.to_parquet(tmp_path / "whole.kms", MAIN_KEY, kms=cache)
        df.kms.to_parquet(tmp_path / "cols.parquet", MAIN_KEY, kms=cache, columns=["a"])
        pd.testing.assert_frame_equal(df, kmsnb.read_parquet(tmp_path / "whole.kms", kms=cache))
        cache.schedule_key_deletion(key.key_id, 7)  # through the cache: which clears it
        with LocalKms(tmp_path / "keystore") as reader:
            for name in ("whole.kms", "cols.parquet"):
                with pytest.raises(KmsAccessDeniedError, match="PendingDeletion"):
                    kmsnb.read_parquet(tmp_path / name, kms=reader)
        with pytest.raises(KmsAccessDeniedError, match="PendingDeletion"):
            kmsnb.read_parquet(tmp_path / "whole.kms", kms=cache)
        with pytest.raises(KmsAccessDeniedError, match="PendingDeletion"):
            df.kms.to_parquet(tmp_path / "again.kms", MAIN_KEY, kms=cache)
