"""``kmsnb.save`` / ``kmsnb.load`` round trips (issue 11): a DataFrame as Parquet, as CSV
and in column mode, bytes and str; the receipt; the naming rule for keys."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import pandas as pd
import pytest

import kmsnb
from kmsnb import session
from kmsnb.errors import ContextMismatchError, KmsAccessDeniedError
from kmsnb.kms.local import LocalKms
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"region": ["north", "south", "east"], "amount": [1.5, 2.0, 3.25]})


def test_a_dataframe_round_trips_as_parquet(
    tmp_path: Path, frame: pd.DataFrame, kms: InMemoryKms, key_id: str
) -> None:
    path = tmp_path / "sales.parquet.kms"
    saved = kmsnb.save(frame, path, key_id, kms=kms)
    assert saved.content == "parquet"
    assert saved.shape == (3, 2)
    assert saved.key_id == key_id
    assert saved.ciphertext_size == path.stat().st_size
    assert saved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    pd.testing.assert_frame_equal(frame, kmsnb.load(path, kms=kms))
    pd.testing.assert_frame_equal(frame[["amount"]], kmsnb.load(path, kms=kms, columns=["amount"]))


def test_a_dataframe_round_trips_as_csv_without_an_unnamed_column(
    tmp_path: Path, frame: pd.DataFrame, kms: InMemoryKms, key_id: str
) -> None:
    path = tmp_path / "sales.csv.kms"  # the suffix picks CSV
    saved = kmsnb.save(frame, path, key_id, kms=kms)
    assert saved.content == "csv"
    assert saved.notes == ()
    loaded = kmsnb.load(path, kms=kms)
    assert list(loaded.columns) == ["region", "amount"]
    pd.testing.assert_frame_equal(frame, loaded)


def test_csv_says_what_it_loses(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    frame = pd.DataFrame(
        {"when": pd.to_datetime(["2026-01-01", "2026-01-02"]), "n": [1, 2]}, index=["a", "b"]
    )
    with pytest.warns(UserWarning, match="CSV keeps only text") as caught:
        saved = kmsnb.save(frame, tmp_path / "x.kms", key_id, kms=kms, format="csv")
    message = str(caught[0].message)
    assert "'when'" in message
    assert "index" in message
    assert len(saved.notes) == 2
    assert "note" in str(saved)


def test_a_csv_with_its_index_gets_it_back(
    tmp_path: Path, frame: pd.DataFrame, kms: InMemoryKms, key_id: str
) -> None:
    indexed = frame.set_axis(["a", "b", "c"])
    path = tmp_path / "indexed.csv.kms"
    kmsnb.save(indexed, path, key_id, kms=kms, index=True)
    pd.testing.assert_frame_equal(indexed, kmsnb.load(path, kms=kms))


def test_column_mode(
    tmp_path: Path, frame: pd.DataFrame, local_kms: LocalKms, sales_key: str
) -> None:
    pii = local_kms.create_key("pii").key_id
    local_kms.create_alias("alias/pii", pii)
    path = tmp_path / "sales.parquet"
    saved = kmsnb.save(frame, path, "sales", kms=local_kms, columns={"amount": "pii"})
    assert saved.column_mode
    assert saved.content == "parquet"
    assert saved.key_version is None
    assert saved.key_alias == "alias/sales"
    pd.testing.assert_frame_equal(frame, kmsnb.load(path, kms=local_kms))
    local_kms.disable_key(pii)  # the region column needs only the footer's key
    regions = kmsnb.load(path, kms=local_kms, columns=["region"])
    pd.testing.assert_frame_equal(frame[["region"]], regions)


def test_bytes_round_trip(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    for value in (b"\x00binary\xff", bytearray(b"ba"), memoryview(b"mv")):
        path = tmp_path / "blob.kms"
        saved = kmsnb.save(value, path, key_id, kms=kms, overwrite=True)
        assert saved.content == "bytes"
        assert saved.plaintext_size == len(bytes(value))
        assert saved.shape is None
        loaded = kmsnb.load(path, kms=kms)
        assert type(loaded) is bytes
        assert loaded == bytes(value)


def test_str_round_trips_as_str(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    path = tmp_path / "note.kms"
    saved = kmsnb.save("naïve — 中文\n", path, key_id, kms=kms)
    assert saved.content == "text"
    assert saved.plaintext_size == len("naïve — 中文\n".encode())
    assert kmsnb.load(path, kms=kms) == "naïve — 中文\n"
    assert kmsnb.inspect(path).content_type == "text/plain; charset=utf-8"


def test_a_binary_file_is_streamed(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    source = tmp_path / "big.bin"
    data = bytes(range(256)) * 9000  # several chunks
    source.write_bytes(data)
    with open(source, "rb") as fileobj:
        fileobj.seek(100)
        saved = kmsnb.save(fileobj, tmp_path / "big.kms", key_id, kms=kms)
    assert saved.plaintext_size == len(data) - 100
    assert kmsnb.load(tmp_path / "big.kms", kms=kms) == data[100:]
    saved = kmsnb.save(io.BytesIO(b"in memory"), tmp_path / "m.kms", key_id, kms=kms)
    assert kmsnb.load(tmp_path / "m.kms", kms=kms) == b"in memory"


def test_a_text_file_object_is_refused(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    with pytest.raises(TypeError, match="binary mode"):
        kmsnb.save(io.StringIO("text"), tmp_path / "t.kms", key_id, kms=kms)
    assert not (tmp_path / "t.kms").exists()


def test_a_bare_alias_resolves(
    tmp_path: Path, frame: pd.DataFrame, local_kms: LocalKms, sales_key: str
) -> None:
    saved = kmsnb.save(frame, tmp_path / "p.kms", "sales", kms=local_kms)
    assert saved.key_id == sales_key
    assert saved.key_alias == "alias/sales"
    assert "alias/sales" in str(saved)


def test_a_kms3_key_id_passes_unchanged(tmp_path: Path) -> None:
    kms = InMemoryKms()
    key_id = "key-hzz62f1cb6fmmvtqyb0pb"
    kms.add_key(key_id, bytes(32), version_id="2ab1a0e4-6a27-4c6f-9a52-1d6f5b1f7a3e")
    saved = kmsnb.save(b"x", tmp_path / "k.kms", key_id, kms=kms)
    assert saved.key_id == key_id
    assert saved.key_alias is None


def test_kms_may_be_a_uri(tmp_path: Path, local_kms: LocalKms, sales_key: str) -> None:
    uri = f"local:{tmp_path / 'keystore'}"
    kmsnb.save(b"via uri", tmp_path / "u.kms", "sales", kms=uri)
    assert kmsnb.load(tmp_path / "u.kms", kms=uri) == b"via uri"


def test_the_session_gives_the_kms_and_the_default_key(
    tmp_path: Path, local_kms: LocalKms, sales_key: str
) -> None:
    session.set_kms(local_kms)
    session.set_default_key("sales")
    saved = kmsnb.save("hello", tmp_path / "s.kms")
    assert saved.key_id == sales_key
    assert kmsnb.load(tmp_path / "s.kms") == "hello"


def test_no_key_is_a_value_error(tmp_path: Path, kms: InMemoryKms) -> None:
    with pytest.raises(ValueError, match="no key given"):
        kmsnb.save(b"x", tmp_path / "n.kms", kms=kms)


def test_an_unknown_alias_is_refused_and_writes_nothing(
    tmp_path: Path, local_kms: LocalKms
) -> None:
    with pytest.raises(KmsAccessDeniedError):
        kmsnb.save(b"x", tmp_path / "n.kms", "nosuchalias", kms=local_kms)
    assert not (tmp_path / "n.kms").exists()


def test_the_context_binds_and_load_checks_it(
    tmp_path: Path, kms: InMemoryKms, key_id: str
) -> None:
    path = tmp_path / "c.kms"
    saved = kmsnb.save(b"x", path, key_id, kms=kms, encryption_context={"team": "sales"})
    assert saved.encryption_context == {"team": "sales"}
    assert kmsnb.load(path, kms=kms, encryption_context={"team": "sales"}) == b"x"
    with pytest.raises(ContextMismatchError, match="'team'"):
        kmsnb.load(path, kms=kms, encryption_context={"team": "other"})


def test_existing_files_are_kept_unless_overwrite(
    tmp_path: Path, kms: InMemoryKms, key_id: str
) -> None:
    path = tmp_path / "o.kms"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        kmsnb.save(b"x", path, key_id, kms=kms)
    assert path.read_bytes() == b"keep"
    kmsnb.save(b"x", path, key_id, kms=kms, overwrite=True)
    assert kmsnb.load(path, kms=kms) == b"x"


@pytest.mark.parametrize(
    ("value", "arguments", "error"),
    [
        (b"x", {"format": "parquet"}, TypeError),
        ("x", {"format": "bytes"}, TypeError),
        (b"x", {"columns": ["a"]}, TypeError),
        (b"x", {"index": False}, ValueError),
        (b"x", {"format": "xlsx"}, ValueError),
        (b"x", {"progress": "yes"}, TypeError),
        (42, {}, TypeError),
    ],
)
def test_misuse(
    tmp_path: Path,
    kms: InMemoryKms,
    key_id: str,
    value: object,
    arguments: dict[str, object],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        kmsnb.save(value, tmp_path / "m.kms", key_id, kms=kms, **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "m.kms").exists()
    assert kms.calls["generate_data_key"] == 0


def test_a_dataframe_is_not_saved_as_bytes(
    tmp_path: Path, frame: pd.DataFrame, kms: InMemoryKms, key_id: str
) -> None:
    with pytest.raises(TypeError, match="parquet or csv"):
        kmsnb.save(frame, tmp_path / "f.kms", key_id, kms=kms, format="bytes")


def test_load_refuses_table_options_for_bytes(
    tmp_path: Path, kms: InMemoryKms, key_id: str
) -> None:
    kmsnb.save(b"x", tmp_path / "b.kms", key_id, kms=kms)
    with pytest.raises(ValueError, match="Parquet and CSV"):
        kmsnb.load(tmp_path / "b.kms", kms=kms, columns=["a"])


def test_the_receipt_never_holds_the_data(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    secret = "confidential-payload-value"
    saved = kmsnb.save(secret, tmp_path / "r.kms", key_id, kms=kms)
    for shown in (str(saved), repr(saved), saved._repr_html_()):
        assert secret not in shown
    assert "<table" in saved._repr_html_()


def test_progress_can_be_forced(
    tmp_path: Path, kms: InMemoryKms, key_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.autonotebook's notices
        kmsnb.save(b"x" * 4096, tmp_path / "p.kms", key_id, kms=kms, progress=True)
    assert "save p.kms" in capsys.readouterr().err  # tqdm's text bar, on stderr
    kmsnb.save(b"x" * 4096, tmp_path / "q.kms", key_id, kms=kms, progress=None)
    assert "save q.kms" not in capsys.readouterr().err  # under the session's threshold
