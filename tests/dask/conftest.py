"""Fixtures for the kmsnb.dask tests: a keystore in tmp_path and a small threaded cluster.

No ``__init__.py`` in this folder on purpose: as a package named ``dask`` under
``tests/`` it would shadow the real ``dask`` once pytest put ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import distributed
import pandas as pd
import pytest

import kmsnb.dask
from kmsnb import session
from kmsnb.kms.local import LocalKms


@pytest.fixture(autouse=True)
def _isolated_kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach a KMS through the caller's environment or an earlier test."""
    monkeypatch.delenv("KMSNB_KMS", raising=False)
    monkeypatch.delenv("KMSNB_EMULATOR_ROOT_KEY", raising=False)
    session.reset()  # given no kms=, kmsnb.dask follows the session
    yield
    session.reset()
    kmsnb.dask._kms_ref.connect_once.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "kms"


@pytest.fixture
def kms_uri(store: Path) -> str:
    return f"local:{store}"


@pytest.fixture
def local_kms(store: Path) -> Iterator[LocalKms]:
    with LocalKms(store) as kms:
        yield kms


@pytest.fixture
def key_id(local_kms: LocalKms) -> str:
    return local_kms.create_key("kmsnb.dask tests").key_id


@pytest.fixture
def frame() -> pd.DataFrame:
    """Columns of the common kinds; names that must never appear in clear on disk."""
    count = 240
    return pd.DataFrame(
        {
            "patient_ssn": [f"123-45-{i:04d}" for i in range(count)],
            "diagnosis_code": [i % 7 for i in range(count)],
            "dose_mg": [i * 0.25 for i in range(count)],
            "admitted": pd.date_range("2024-01-01", periods=count, freq="h"),
            "discharged": [i % 2 == 0 for i in range(count)],
        }
    )


@pytest.fixture
def ddf(frame: pd.DataFrame) -> dd.DataFrame:
    return dd.from_pandas(frame, npartitions=4)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded workers in this process: starts in well under a second."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as local_cluster:
        yield local_cluster


@pytest.fixture
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    """A client for one test only: while it lives it is Dask's default scheduler."""
    with distributed.Client(cluster) as dask_client:
        yield dask_client
