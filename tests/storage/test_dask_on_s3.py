"""kmsnb.dask on s3:// against a real S3-protocol server (moto, 127.0.0.1): a 2-process
``distributed.LocalCluster`` writes and reads a dataset, its parts land in the bucket and
nothing on a local disk; an overwrite that fails halfway keeps the old dataset whole;
credentials in ``storage_options`` and unwritable URLs are refused before any work."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import kmsnb.dask  # noqa: E402  (after the importorskip above)
from kmsnb.errors import UnsupportedStorageError  # noqa: E402
from kmsnb.kms.local import LocalKms  # noqa: E402
from kmsnb.storage import GENERATION_PREFIX  # noqa: E402

from .conftest import object_keys, pending_uploads  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def frame() -> pd.DataFrame:
    count = 400
    return pd.DataFrame(
        {
            "region": [f"r{i % 5}" for i in range(count)],
            "amount": [i * 0.5 for i in range(count)],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    """An emulator keystore with a key: its ``local:`` URI (absolute) and the key id."""
    path = tmp_path / "kms"
    with LocalKms(path) as kms:
        key_id = kms.create_key("dask").key_id
    return f"local:{path}", key_id


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and temporary directory for this process and the
    workers it starts, and AWS credentials in the environment the workers inherit."""
    work, temporary = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return tmp_path


@pytest.fixture
def cluster(scratch: Path) -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            local_directory=str(scratch / "dask-worker-space"),
        ) as local_cluster,
        distributed.Client(local_cluster) as client,
    ):
        yield client


def _kmsnb_files_under(folder: Path) -> list[str]:
    """Files kmsnb.dask would write (parts, meta, manifest) or URL-named folders."""
    found = []
    for root, folders, names in os.walk(folder):
        for name in [*folders, *names]:
            if name.startswith(("part.", "_meta", "_kmsnb", GENERATION_PREFIX, "s3:")):
                found.append(os.path.join(root, name))
    return found


def test_a_cluster_writes_and_reads_a_dataset_in_the_bucket_only(
    cluster: Any,
    scratch: Path,
    frame: pd.DataFrame,
    store: tuple[str, str],
    bucket: str,
    s3_endpoint: str,
    s3_client: Any,
) -> None:
    kms, key_id = store
    options = {"endpoint_url": s3_endpoint}
    url = f"s3://{bucket}/sales.kmsds"
    worker_pids = set(cluster.run(os.getpid).values())
    assert os.getpid() not in worker_pids
    ddf = dd.from_pandas(frame, npartitions=4)
    manifest = kmsnb.dask.to_parquet(ddf, url, key_id, kms=kms, storage_options=options)
    keys = object_keys(s3_client, bucket)
    prefix = f"sales.kmsds/{manifest.generation}/"
    assert keys == sorted(
        [
            "sales.kmsds/_kmsnb_manifest.json",
            f"{prefix}_meta.parquet.kms",
            *(f"{prefix}part.{index:05d}.parquet.kms" for index in range(4)),
        ]
    )
    read = kmsnb.dask.read_parquet(url, kms=kms, storage_options=options)
    pd.testing.assert_frame_equal(ddf.compute(), read.compute())
    projected = kmsnb.dask.read_parquet(url, kms=kms, storage_options=options, columns=["amount"])
    assert list(projected.compute().columns) == ["amount"]
    assert _kmsnb_files_under(scratch) == []  # neither cwd nor tmp nor the workers' space
    assert pending_uploads(s3_client, bucket) == []


def _failing_partition(frame: pd.DataFrame) -> pd.DataFrame:
    if frame["amount"].max() > 150:
        raise RuntimeError("a partition failed halfway through the write")
    return frame


def test_an_overwrite_that_fails_halfway_keeps_the_old_dataset_whole(
    cluster: Any,
    frame: pd.DataFrame,
    store: tuple[str, str],
    bucket: str,
    s3_endpoint: str,
    s3_client: Any,
) -> None:
    kms, key_id = store
    options = {"endpoint_url": s3_endpoint}
    url = f"s3://{bucket}/sales.kmsds"
    old = kmsnb.dask.to_parquet(
        dd.from_pandas(frame, npartitions=2), url, key_id, kms=kms, storage_options=options
    )
    before = object_keys(s3_client, bucket)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        kmsnb.dask.to_parquet(
            dd.from_pandas(frame, npartitions=3), url, key_id, kms=kms, storage_options=options
        )
    failing = dd.from_pandas(frame, npartitions=4).map_partitions(_failing_partition)
    with pytest.raises(RuntimeError, match="halfway"):
        kmsnb.dask.to_parquet(
            failing, url, key_id, kms=kms, storage_options=options, overwrite=True
        )
    read = kmsnb.dask.read_parquet(url, kms=kms, storage_options=options).compute()
    pd.testing.assert_frame_equal(dd.from_pandas(frame, npartitions=2).compute(), read)
    assert [key for key in object_keys(s3_client, bucket) if old.generation in key] == [
        key for key in before if old.generation in key
    ]
    # A successful overwrite switches, then deletes the old generation.
    new = kmsnb.dask.to_parquet(
        dd.from_pandas(frame, npartitions=3),
        url,
        key_id,
        kms=kms,
        storage_options=options,
        overwrite=True,
    )
    remaining = object_keys(s3_client, bucket)
    assert not any(old.generation in key for key in remaining)
    assert sum(new.generation in key for key in remaining) == 4  # 3 parts and the meta


@pytest.mark.parametrize("secret", ["key", "secret", "token"])
def test_credentials_in_storage_options_are_refused(
    frame: pd.DataFrame, store: tuple[str, str], bucket: str, secret: str, s3_client: Any
) -> None:
    kms, key_id = store
    ddf = dd.from_pandas(frame, npartitions=2)
    url = f"s3://{bucket}/sales.kmsds"
    with pytest.raises(ValueError, match="task graph") as raised:
        kmsnb.dask.to_parquet(ddf, url, key_id, kms=kms, storage_options={secret: "hunter2"})
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ValueError, match="task graph"):
        kmsnb.dask.read_parquet(url, kms=kms, storage_options={secret: "hunter2"})
    assert object_keys(s3_client, bucket) == []


def test_an_unwritable_url_is_refused_not_written_locally(
    scratch: Path, frame: pd.DataFrame, store: tuple[str, str]
) -> None:
    kms, key_id = store
    ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(UnsupportedStorageError, match="cannot write"):
        kmsnb.dask.to_parquet(ddf, "ftp://127.0.0.1:9/sales.kmsds", key_id, kms=kms)
    assert _kmsnb_files_under(scratch) == []
    assert os.listdir(".") == []
