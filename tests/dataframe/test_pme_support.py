"""Which pyarrow column mode needs, and the error a too-old one gets."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow as pa
import pytest

import kmsnb
from kmsnb import _pme
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TOO_OLD = r"needs pyarrow >= 26, and this is pyarrow {} .*; pip install 'pyarrow>=26'"


@pytest.fixture
def fresh_check() -> Iterator[None]:
    """``check_support`` runs once per process: forget its answer before and after."""
    _pme.check_support.cache_clear()
    yield
    _pme.check_support.cache_clear()


def frame() -> pd.DataFrame:
    return pd.DataFrame({"name": ["ann", "bob"], "ssn": ["123-45-6789", "987-65-4321"]})


@pytest.mark.parametrize("version", ["17.0.0", "20.0.0", "21.0.0", "25.0.1", "25.1.0.dev12"])
def test_a_too_old_pyarrow_is_told_the_version_needed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kms: InMemoryKms,
    fresh_check: None,
    version: str,
) -> None:
    written = tmp_path / "written.parquet"
    frame().kms.to_parquet(written, MAIN_KEY, kms=kms, columns=["ssn"])
    _pme.check_support.cache_clear()
    monkeypatch.setattr(pa, "__version__", version)
    expected = TOO_OLD.format(version.replace(".", r"\."))

    with pytest.raises(ImportError, match=expected) as caught:
        frame().kms.to_parquet(tmp_path / "new.parquet", MAIN_KEY, kms=kms, columns=["ssn"])
    assert "PARQUET_REQUIRE_ENCRYPTION" not in str(caught.value)
    assert not (tmp_path / "new.parquet").exists()
    with pytest.raises(ImportError, match=expected):
        kmsnb.read_parquet(written, kms=kms, columns=["name"])


def test_a_too_old_pyarrow_still_encrypts_whole_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kms: InMemoryKms, fresh_check: None
) -> None:
    monkeypatch.setattr(pa, "__version__", "20.0.0")
    path = tmp_path / "p.parquet.kms"
    frame().kms.to_parquet(path, MAIN_KEY, kms=kms)
    pd.testing.assert_frame_equal(frame(), kmsnb.read_parquet(path, kms=kms))


def test_the_missing_feature_is_not_called_a_build_problem(
    monkeypatch: pytest.MonkeyPatch, fresh_check: None
) -> None:
    """pyarrow 17 to 20 have no ``uniform_encryption`` (faked here, with their version):
    the error names the version needed, not a build without encryption."""
    real = _pme.pe.EncryptionConfiguration

    def without_uniform(*args: object, **kwargs: object) -> object:
        if "uniform_encryption" in kwargs:
            raise TypeError("__init__() got an unexpected keyword argument 'uniform_encryption'")
        return real(*args, **kwargs)

    monkeypatch.setattr(_pme.pe, "EncryptionConfiguration", without_uniform)
    monkeypatch.setattr(pa, "__version__", "20.0.0")
    with pytest.raises(ImportError, match=TOO_OLD.format(r"20\.0\.0")):
        _pme.check_support()


@pytest.mark.parametrize("version", ["26.0.0", "26.0.1", "27.0.0.dev3", "100.1.0", "unknown"])
def test_new_enough_or_unreadable_versions_go_to_the_round_trip(
    monkeypatch: pytest.MonkeyPatch, fresh_check: None, version: str
) -> None:
    """The round trip passes with the pyarrow installed here; a build without PME fails
    it (``test_missing_pme_support_is_an_import_error``)."""
    monkeypatch.setattr(pa, "__version__", version)
    _pme.check_support()


def test_the_floor_is_the_one_pyproject_declares() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    pandas_extra = project["optional-dependencies"]["pandas"]
    declared = [spec for spec in pandas_extra if spec.startswith("pyarrow")]
    assert [f"pyarrow>={_pme.PYARROW_MIN_VERSION}"] == declared
