"""kmsnb._defaults: the DataFrame helpers name keys and KMSs by the library's one
rule each (a bare NAME means alias/NAME; kms= as kmsnb.connect takes it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import kmsnb
import kmsnb.dataframe
from kmsnb import session
from kmsnb.kms.local import LocalKms
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


@pytest.mark.parametrize("write", ["to_parquet", "to_csv"])
def test_a_bare_name_means_its_alias(
    write: str, df: pd.DataFrame, kms: InMemoryKms, tmp_path: Path
) -> None:
    path = tmp_path / "out.kms"
    getattr(df.kms, write)(path, "main", kms=kms)

    assert kmsnb.inspect(path).key_id == kms.describe_key("alias/main").key_id


def test_the_session_default_key_is_resolved_too(
    df: pd.DataFrame, kms: InMemoryKms, tmp_path: Path
) -> None:
    session.set_default_key("pii")
    df.kms.to_parquet(tmp_path / "out.kms", kms=kms)

    assert kmsnb.inspect(tmp_path / "out.kms").key_id == kms.describe_key("alias/pii").key_id


def test_kms_may_be_a_uri(df: pd.DataFrame, tmp_path: Path) -> None:
    uri = f"local:{tmp_path / 'store'}"
    with LocalKms(tmp_path / "store") as local:
        key_id = local.create_key("dataframe tests").key_id

    df.kms.to_parquet(tmp_path / "out.kms", key_id, kms=uri)
    df.kms.to_csv(tmp_path / "out.csv.kms", key_id, kms=uri)

    pd.testing.assert_frame_equal(df, kmsnb.read_parquet(tmp_path / "out.kms", kms=uri))
    back = kmsnb.dataframe.read_csv(tmp_path / "out.csv.kms", kms=uri, index_col=0)
    pd.testing.assert_frame_equal(df, back)


@pytest.mark.parametrize(
    ("key_id", "error"), [("", ValueError), (3, TypeError), ("a\nb", ValueError)]
)
def test_bad_key_names_are_refused(
    key_id: object, error: type[Exception], df: pd.DataFrame, kms: InMemoryKms, tmp_path: Path
) -> None:
    with pytest.raises(error):
        df.kms.to_parquet(tmp_path / "out.kms", key_id, kms=kms)
    assert not (tmp_path / "out.kms").exists()
