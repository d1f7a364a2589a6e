"""How kmsnb.dask names the KMS (kmsnb.dask._kms_ref): ``kms=`` takes a URI or a client, as
kmsnb.connect does; a URI travels to workers, a client object stays in this process; given
none, the session's is followed; ``kms_uri=`` is a deprecated alias."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import dask
import dask.dataframe as dd
import distributed
import pandas as pd
import pytest

import kmsnb.dask
from kmsnb import session
from kmsnb.dask import read_parquet, to_parquet
from kmsnb.dask._kms_ref import KmsRef, kms_reference, pin_kms_uri
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit


def test_a_uri_works_on_a_distributed_client(
    client: distributed.Client, ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    """``kms="local:..."`` is a URI, not a client: it goes to the workers as it is."""
    to_parquet(ddf, tmp_path / "dataset", key_id, kms=kms_uri)

    pd.testing.assert_frame_equal(
        ddf.compute(), read_parquet(tmp_path / "dataset", kms=kms_uri).compute()
    )


def test_a_kms_object_is_refused_on_a_distributed_client(
    client: distributed.Client, ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    """The message names the URI form to pass instead; nothing is written."""
    to_parquet(ddf, tmp_path / "written", key_id, kms=kms_uri)
    kms = InMemoryKms()

    with pytest.raises(ValueError, match=r"client object.*kms='local:/path/to/store'"):
        to_parquet(ddf, tmp_path / "d", kms.create_key(), kms=kms)
    with pytest.raises(ValueError, match=r"kms='aliyun:cn-hangzhou'"):
        read_parquet(tmp_path / "written", kms=kms)
    assert not (tmp_path / "d").exists()


def test_a_kms_object_is_refused_on_the_processes_scheduler(
    ddf: dd.DataFrame, tmp_path: Path
) -> None:
    kms = InMemoryKms()

    with dask.config.set(scheduler="processes"), pytest.raises(ValueError, match="in-process"):
        to_parquet(ddf, tmp_path / "d", kms.create_key(), kms=kms)


def test_a_live_kms_client_refuses_to_be_pickled() -> None:
    reference = KmsRef(None, InMemoryKms())

    with pytest.raises(TypeError, match="as a URI"):
        pickle.dumps(reference)
    assert dask.base.tokenize(reference) == dask.base.tokenize(reference)


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError, match="KMS URI"):
        kms_reference(b"local:keys")  # type: ignore[arg-type]


# -- the session -----------------------------------------------------------------------------


def test_no_kms_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, ddf: dd.DataFrame, tmp_path: Path, store: Path, key_id: str
) -> None:
    """The session's KMS when it connects itself: ``$KMSNB_KMS``."""
    monkeypatch.setenv("KMSNB_KMS", f"local:{store}")

    to_parquet(ddf, tmp_path / "dataset", key_id)

    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(tmp_path / "dataset").compute())


def test_no_kms_follows_the_session_it_already_connected(
    monkeypatch: pytest.MonkeyPatch, store: Path, tmp_path: Path
) -> None:
    """Once the session has connected, its URI is the one it connected from."""
    monkeypatch.setenv("KMSNB_KMS", f"local:{store}")
    session.get_kms()
    monkeypatch.setenv("KMSNB_KMS", f"local:{tmp_path / 'elsewhere'}")

    assert kms_reference(None).uri == f"local:{store}"


def test_no_kms_follows_a_client_given_to_the_session(
    ddf: dd.DataFrame, tmp_path: Path, client: distributed.Client
) -> None:
    """A client set with session.set_kms is used in-process, and refused on workers."""
    kms = InMemoryKms()
    key_id = kms.create_key()
    session.set_kms(kms, cache=False)

    with pytest.raises(ValueError, match=r"session\.set_kms.*kms='local:/path/to/store'"):
        to_parquet(ddf, tmp_path / "d", key_id)
    with dask.config.set(scheduler="threads"):
        to_parquet(ddf, tmp_path / "dataset", key_id)
        back = read_parquet(tmp_path / "dataset").compute()

    pd.testing.assert_frame_equal(ddf.compute(), back)
    assert kms.calls["generate_data_key"] == ddf.npartitions + 1  # the parts and the meta
    assert not (tmp_path / "d").exists()


# -- pinning the URI down on the client ---------------------------------------------------------


def test_the_uri_is_pinned_down_on_the_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Workers need not share the client's working directory or environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default-store"))

    assert f"local:{tmp_path / 'keys'}" == pin_kms_uri("local:keys")
    # A bare local: is the default store, resolved here (kmsnb.connection pins it).
    assert f"local:{tmp_path / 'default-store'}" == pin_kms_uri("local:")
    assert f"local:{tmp_path / 'default-store'}" == kms_reference(None).uri
    assert pin_kms_uri(" aliyun:cn-hangzhou ") == "aliyun:cn-hangzhou"
    with pytest.raises(ValueError, match="credentials") as raised:
        pin_kms_uri("http://LTAIexample:s3cr3t@127.0.0.1:8080")
    assert "s3cr3t" not in str(raised.value)


# -- kms_uri=, deprecated -------------------------------------------------------------------------


def test_kms_uri_is_a_deprecated_alias_of_kms(
    ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    with pytest.warns(DeprecationWarning, match="kms_uri= is deprecated") as written:
        to_parquet(ddf, tmp_path / "dataset", key_id, kms_uri=kms_uri)
    with pytest.warns(DeprecationWarning, match="pass the URI as kms=") as read:
        back = read_parquet(tmp_path / "dataset", kms_uri=kms_uri)

    pd.testing.assert_frame_equal(ddf.compute(), back.compute())
    # The warning points at the caller's line, not at kmsnb.
    assert [Path(w.filename).name for w in (*written, *read)] == [Path(__file__).name] * 2
    with (
        pytest.warns(DeprecationWarning, match="kms_uri="),
        pytest.raises(ValueError, match="once"),
    ):
        read_parquet(tmp_path / "dataset", kms=kms_uri, kms_uri=kms_uri)


# -- worker processes --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_uri_reaches_worker_processes_of_a_local_cluster(
    ddf: dd.DataFrame, tmp_path: Path, store: Path, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kms="local:keys"`` (relative) on a 2-process LocalCluster: pinned on the client,
    so that workers started elsewhere reach the same store; each connects once."""
    monkeypatch.chdir(store.parent)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(os.chdir, "/")  # workers elsewhere: a relative path would miss
        manifest = to_parquet(ddf, "dataset", key_id, kms=f"local:{store.name}")
        result = read_parquet("dataset", kms=f"local:{store.name}").compute()
        connections = client.run(lambda: kmsnb.dask._kms_ref.connect_once.cache_info().currsize)
        worker_pids = set(client.run(os.getpid).values())

    pd.testing.assert_frame_equal(ddf.compute(), result)
    assert manifest.part_count == ddf.npartitions
    assert sorted(connections.values()) == [1, 1]
    assert os.getpid() not in worker_pids
