"""kmsnb.dask: encrypted partitioned Parquet on dask.distributed and the default scheduler."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import dask.dataframe as dd
import distributed
import pandas as pd
import pytest

import kmsnb
import kmsnb.dask
from kmsnb._format.header import read_header
from kmsnb.dask import MANIFEST_NAME, META_NAME, read_manifest, read_parquet, to_parquet
from kmsnb.kms.caching import CachingKms
from kmsnb.kms.local import LocalKms
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

PART_NAMES = [f"part.{i:05d}.parquet.kms" for i in range(4)]


def _files(directory: Path) -> Path:
    """The folder of the dataset's files: its generation, named by the manifest."""
    return read_manifest(directory).files_directory(directory)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_manifest(directory: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    manifest = directory / MANIFEST_NAME
    document = json.loads(manifest.read_text())
    edit(document)
    manifest.write_text(json.dumps(document))


def _refresh_manifest_entry(directory: Path, document: dict[str, Any], index: int) -> None:
    """Make the manifest agree with part ``index`` as it now is on disk."""
    import hashlib

    data = (directory / document["generation"] / PART_NAMES[index]).read_bytes()
    document["parts"][index]["size"] = len(data)
    document["parts"][index]["sha256"] = hashlib.sha256(data).hexdigest()


def _headers(directory: Path) -> dict[str, Any]:
    headers = {}
    for name in [*PART_NAMES, META_NAME]:
        with open(_files(directory) / name, "rb") as file:
            headers[name] = read_header(file)
    return headers


@pytest.fixture
def written(ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str) -> Path:
    """A dataset of four parts written on the default (threaded) scheduler."""
    directory = tmp_path / "dataset"
    to_parquet(ddf, directory, key_id, kms=kms_uri, encryption_context={"project": "apollo"})
    return directory


# -- round trips -------------------------------------------------------------------------


def test_round_trip_on_a_distributed_cluster(
    client: distributed.Client, ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    """Workers write and read the parts; the frame comes back equal, dtypes included."""
    directory = tmp_path / "dataset"
    manifest = to_parquet(ddf, directory, key_id, kms=kms_uri)

    result = read_parquet(directory, kms=kms_uri)

    assert sorted([MANIFEST_NAME, f"gen-{manifest.dataset_id}"]) == sorted(os.listdir(directory))
    assert sorted([*PART_NAMES, META_NAME]) == sorted(os.listdir(_files(directory)))
    assert [part.name for part in manifest.parts] == PART_NAMES
    assert ddf.npartitions == result.npartitions
    pd.testing.assert_frame_equal(ddf.compute(), result.compute())
    # Each worker connected to the KMS at most once, whatever its number of tasks.
    connections = client.run(kmsnb.dask._kms_ref.connect_once.cache_info)
    assert all(info.currsize <= 1 for info in connections.values())


def test_round_trip_with_a_kms_object_on_the_default_scheduler(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    """kms= works in-process; a named index survives; one data key per file."""
    kms = InMemoryKms()
    key_id = kms.create_key()
    indexed = dd.from_pandas(frame.set_index("admitted"), npartitions=3)

    to_parquet(indexed, tmp_path / "dataset", key_id, kms=kms)
    result = read_parquet(tmp_path / "dataset", kms=kms)

    pd.testing.assert_frame_equal(indexed.compute(), result.compute())
    assert kms.calls["generate_data_key"] == 3 + 1  # three parts and the meta


def test_columns_are_read_and_projected(written: Path, ddf: dd.DataFrame, kms_uri: str) -> None:
    wanted = ["dose_mg", "patient_ssn"]

    selected = read_parquet(written, kms=kms_uri, columns=wanted)
    projected = read_parquet(written, kms=kms_uri)[["discharged"]]

    pd.testing.assert_frame_equal(ddf[wanted].compute(), selected.compute())
    pd.testing.assert_frame_equal(ddf[["discharged"]].compute(), projected.compute())
    assert read_parquet(written, kms=kms_uri)["dose_mg"].sum().compute() == pytest.approx(
        ddf["dose_mg"].sum().compute()
    )
    assert len(read_parquet(written, kms=kms_uri)) == len(ddf)
    with pytest.raises(ValueError, match="no column"):
        read_parquet(written, kms=kms_uri, columns=["nope"])
    with pytest.raises(ValueError, match="at least one"):
        read_parquet(written, kms=kms_uri, columns=[])


# -- what is on disk ---------------------------------------------------------------------


def test_each_file_has_its_own_data_key(written: Path) -> None:
    headers = _headers(written)

    assert len(headers) == len({header.wrapped_key for header in headers.values()})


def test_a_data_key_cache_never_shares_a_key_between_parts(
    ddf: dd.DataFrame, tmp_path: Path
) -> None:
    """Even a CachingKms (kms=) asks the KMS for every file: contexts differ per part."""
    inner = InMemoryKms()
    key_id = inner.create_key()

    to_parquet(ddf, tmp_path / "dataset", key_id, kms=CachingKms(inner))

    assert inner.calls["generate_data_key"] == 4 + 1
    headers = _headers(tmp_path / "dataset")
    assert len(headers) == len({header.wrapped_key for header in headers.values()})


def test_each_file_is_bound_to_its_dataset_and_position(written: Path) -> None:
    manifest = read_manifest(written)

    contexts = {
        name: dict(kmsnb.inspect(_files(written) / name).encryption_context) for name in PART_NAMES
    }

    for index, name in enumerate(PART_NAMES):
        assert {
            "project": "apollo",
            "kmsnb.dataset": manifest.dataset_id,
            "kmsnb.parts": "4",
            "kmsnb.part": str(index),
        } == contexts[name]
    assert kmsnb.inspect(_files(written) / META_NAME).encryption_context["kmsnb.part"] == "meta"


def test_manifest_holds_no_secret_and_no_column_name(
    written: Path, frame: pd.DataFrame, local_kms: LocalKms
) -> None:
    text = (written / MANIFEST_NAME).read_text()
    document = json.loads(text)
    headers = _headers(written)

    assert {
        "format",
        "format_version",
        "generation",
        "dataset_id",
        "key_id",
        "encryption_context",
        "part_count",
        "meta",
        "parts",
    } == set(document)
    assert document["encryption_context"] == {"project": "apollo"}
    for column in frame.columns:
        assert column not in text
    for header in headers.values():
        assert header.wrapped_key not in text
        data_key = local_kms.decrypt_data_key(
            header.wrapped_key, header.encryption_context
        ).plaintext
        assert base64.b64encode(data_key).decode() not in text
        assert data_key.hex() not in text
    # Nor do column names or values appear in clear anywhere in the directory.
    for path in [path for path in written.rglob("*") if path.is_file()]:
        data = path.read_bytes()
        assert b"patient_ssn" not in data
        assert b"123-45-0001" not in data
        assert b"PAR1" not in data


# -- tampering ---------------------------------------------------------------------------


def test_altered_part_fails_when_computed_on_the_cluster(
    client: distributed.Client, written: Path, kms_uri: str
) -> None:
    """A flipped byte keeps the size, so the worker's SHA-256 check is what catches it."""
    part = _files(written) / PART_NAMES[2]
    _flip_byte(part, part.stat().st_size // 2)
    result = read_parquet(written, kms=kms_uri)

    with pytest.raises(kmsnb.IntegrityError, match=r"part\.00002.*does not match the manifest"):
        result.compute()


def test_altered_part_with_a_matching_manifest_fails_authentication(
    written: Path, kms_uri: str
) -> None:
    part = _files(written) / PART_NAMES[1]
    _flip_byte(part, part.stat().st_size - 40)
    _edit_manifest(written, lambda document: _refresh_manifest_entry(written, document, 1))

    with pytest.raises(kmsnb.IntegrityError):
        read_parquet(written, kms=kms_uri).compute()


def test_swapped_parts_are_refused_even_with_a_matching_manifest(
    written: Path, kms_uri: str
) -> None:
    first, second = _files(written) / PART_NAMES[0], _files(written) / PART_NAMES[1]
    first_data, second_data = first.read_bytes(), second.read_bytes()
    first.write_bytes(second_data)
    second.write_bytes(first_data)

    def swap(document: dict[str, Any]) -> None:
        _refresh_manifest_entry(written, document, 0)
        _refresh_manifest_entry(written, document, 1)

    _edit_manifest(written, swap)

    with pytest.raises(kmsnb.IntegrityError, match="another position"):
        read_parquet(written, kms=kms_uri).compute()


def test_part_from_another_dataset_is_refused(
    written: Path, ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    other = tmp_path / "other"
    to_parquet(ddf, other, key_id, kms=kms_uri, encryption_context={"project": "apollo"})
    (_files(written) / PART_NAMES[3]).write_bytes((_files(other) / PART_NAMES[3]).read_bytes())
    _edit_manifest(written, lambda document: _refresh_manifest_entry(written, document, 3))

    with pytest.raises(kmsnb.IntegrityError, match="another dataset"):
        read_parquet(written, kms=kms_uri).compute()


def test_missing_part_is_refused_when_opening(written: Path, kms_uri: str) -> None:
    (_files(written) / PART_NAMES[2]).unlink()

    with pytest.raises(kmsnb.IntegrityError, match=r"lacks part\.00002"):
        read_parquet(written, kms=kms_uri)


def test_part_removed_after_opening_fails_when_computed(written: Path, kms_uri: str) -> None:
    result = read_parquet(written, kms=kms_uri)
    (_files(written) / PART_NAMES[0]).unlink()

    with pytest.raises(kmsnb.IntegrityError, match="missing"):
        result.compute()


def test_extra_part_is_refused(written: Path, kms_uri: str) -> None:
    files = _files(written)
    (files / "part.00004.parquet.kms").write_bytes((files / PART_NAMES[0]).read_bytes())

    with pytest.raises(kmsnb.IntegrityError, match="not listed"):
        read_parquet(written, kms=kms_uri)


def test_truncated_part_is_refused_when_opening(written: Path, kms_uri: str) -> None:
    part = _files(written) / PART_NAMES[1]
    part.write_bytes(part.read_bytes()[:-1])

    with pytest.raises(kmsnb.IntegrityError, match="the manifest says"):
        read_parquet(written, kms=kms_uri)


def test_dropping_a_part_from_the_manifest_too_is_refused(written: Path, kms_uri: str) -> None:
    (_files(written) / PART_NAMES[3]).unlink()

    def drop_last(document: dict[str, Any]) -> None:
        document["parts"].pop()
        document["part_count"] = 3

    _edit_manifest(written, drop_last)

    with pytest.raises(kmsnb.IntegrityError, match="another dataset"):
        read_parquet(written, kms=kms_uri)


def test_directory_without_manifest_is_not_a_dataset(written: Path, kms_uri: str) -> None:
    (written / MANIFEST_NAME).unlink()

    with pytest.raises(kmsnb.FormatError, match=r"has no _kmsnb_manifest\.json"):
        read_parquet(written, kms=kms_uri)


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda d: d["parts"][0].update(name="../../etc/passwd"), "expected an entry"),
        (lambda d: d.update(format="parquet"), "format"),
        (lambda d: d.update(part_count=5), "part_count"),
        (lambda d: d["parts"][1].update(sha256="00"), "sha256"),
        (lambda d: d["encryption_context"].update({"kmsnb.part": "0"}), "encryption_context"),
    ],
)
def test_malformed_manifest_is_refused(
    written: Path, kms_uri: str, edit: Callable[[dict[str, Any]], None], what: str
) -> None:
    _edit_manifest(written, edit)

    with pytest.raises(kmsnb.FormatError, match=what):
        read_parquet(written, kms=kms_uri)


# -- contexts and keys -------------------------------------------------------------------


def test_wrong_encryption_context_is_refused(written: Path, kms_uri: str) -> None:
    with pytest.raises(kmsnb.ContextMismatchError, match="'project'"):
        read_parquet(written, kms=kms_uri, encryption_context={"project": "gemini"})
    assert (
        read_parquet(written, kms=kms_uri, encryption_context={"project": "apollo"}).npartitions
        == 4
    )


def test_reserved_context_keys_are_refused(
    ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    with pytest.raises(ValueError, match="kmsnb's own"):
        to_parquet(ddf, tmp_path / "d", key_id, kms=kms_uri, encryption_context={"kmsnb.x": ""})
    assert not (tmp_path / "d").exists()


def test_disabled_key_is_refused(
    written: Path, ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str,
    local_kms: LocalKms,
) -> None:  # fmt: skip
    local_kms.disable_key(key_id)

    with pytest.raises(kmsnb.KmsAccessDeniedError):
        read_parquet(written, kms=kms_uri)
    with pytest.raises(kmsnb.KmsAccessDeniedError):
        to_parquet(ddf, tmp_path / "new", key_id, kms=kms_uri)
    assert not (tmp_path / "new").exists()
    # The KMS is asked before an old dataset is removed: a refusal leaves it whole.
    before = sorted(os.listdir(written))
    with pytest.raises(kmsnb.KmsAccessDeniedError):
        to_parquet(ddf, written, key_id, kms=kms_uri, overwrite=True)
    assert sorted(os.listdir(written)) == before


def test_failure_on_a_worker_leaves_no_dataset(
    client: distributed.Client,
    ddf: dd.DataFrame,
    tmp_path: Path,
    kms_uri: str,
    key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_part = kmsnb.dask._partitions.write_part

    def fail_on_third(frame: pd.DataFrame, config: Any, index: int) -> Any:
        if index == 2:
            raise kmsnb.KmsUnavailableError("throttled", code="Throttling")
        return write_part(frame, config, index)

    # The cluster's workers are threads of this process, so they see the patch.
    monkeypatch.setattr(kmsnb.dask._graph, "write_part", fail_on_third)

    with pytest.raises(kmsnb.KmsUnavailableError):
        to_parquet(ddf, tmp_path / "dataset", key_id, kms=kms_uri)
    # Nothing at all: the parts of the tasks still running were waited for and removed.
    assert not (tmp_path / "dataset").exists()


# -- overwriting -------------------------------------------------------------------------


def test_existing_dataset_is_kept_unless_overwrite(
    written: Path, ddf: dd.DataFrame, frame: pd.DataFrame, kms_uri: str, key_id: str
) -> None:
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_parquet(ddf, written, key_id, kms=kms_uri)
    assert read_parquet(written, kms=kms_uri).npartitions == 4

    smaller = dd.from_pandas(frame.head(10), npartitions=2)
    manifest = to_parquet(smaller, written, key_id, kms=kms_uri, overwrite=True)

    # The old generation is gone once the new one is in place.
    assert {MANIFEST_NAME, manifest.generation} == set(os.listdir(written))
    assert {PART_NAMES[0], PART_NAMES[1], META_NAME} == set(os.listdir(_files(written)))
    pd.testing.assert_frame_equal(smaller.compute(), read_parquet(written, kms=kms_uri).compute())


def test_overwrite_never_removes_foreign_files(
    tmp_path: Path, ddf: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")

    with pytest.raises(FileExistsError, match=r"'notes\.txt'"):
        to_parquet(ddf, directory, key_id, kms=kms_uri, overwrite=True)
    assert os.listdir(directory) == ["notes.txt"]


# -- secrets and schedulers --------------------------------------------------------------


def test_task_graphs_hold_no_secret(
    written: Path,
    ddf: dd.DataFrame,
    tmp_path: Path,
    store: Path,
    kms_uri: str,
    key_id: str,
    local_kms: LocalKms,
) -> None:
    """The pickled write and read graphs name the KMS by URI and carry no key material."""
    config = kmsnb.dask._graph.plan_write(
        ddf,
        tmp_path / "planned",
        key_id,
        kms=kms_uri,
        encryption_context={"project": "apollo"},
        compression="snappy",
    )
    write_graph = cloudpickle.dumps(kmsnb.dask._graph.write_tasks(ddf, config))
    read_graph = cloudpickle.dumps(dict(read_parquet(written, kms=kms_uri).__dask_graph__()))
    secrets = [(store / "root.key").read_text().strip().encode()]
    secrets.append(base64.b64decode(secrets[0]))
    for header in _headers(written).values():
        data_key = local_kms.decrypt_data_key(
            header.wrapped_key, header.encryption_context
        ).plaintext
        secrets += [bytes(data_key), base64.b64encode(data_key)]

    assert pickle.loads(pickle.dumps(config)) == config  # noqa: S301 - bytes made here
    assert {
        "kms",
        "key_id",
        "encryption_context",
        "directory",
        "dataset_id",
        "part_count",
        "compression",
        "storage_options",  # never a credential: kmsnb.storage.check_no_credentials
    } == {f.name for f in dataclasses.fields(config)}
    for graph in (write_graph, read_graph):
        assert kms_uri.encode() in graph  # the scan below looks at the right bytes
        for secret in secrets:
            assert secret not in graph


def test_only_dask_dataframes_are_written(
    frame: pd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    with pytest.raises(TypeError, match="dask DataFrame"):
        to_parquet(frame, tmp_path / "d", key_id, kms=kms_uri)


@pytest.mark.slow
def test_round_trip_on_worker_processes(
    ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    """Everything a task needs pickles, and each worker process connects on its own to
    the KMS named by its URI (``kms="local:..."``)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        to_parquet(ddf, tmp_path / "dataset", key_id, kms=kms_uri)
        result = read_parquet(tmp_path / "dataset", kms=kms_uri).compute()
        connections = client.run(lambda: kmsnb.dask._kms_ref.connect_once.cache_info().currsize)
        worker_pids = set(client.run(os.getpid).values())
        # kmsnb's errors cross the process boundary as themselves.
        part = _files(tmp_path / "dataset") / PART_NAMES[1]
        _flip_byte(part, part.stat().st_size // 2)
        with pytest.raises(kmsnb.IntegrityError, match=r"part\.00001"):
            read_parquet(tmp_path / "dataset", kms=kms_uri).compute()

    pd.testing.assert_frame_equal(ddf.compute(), result)
    assert sorted(connections.values()) == [1, 1]
    assert os.getpid() not in worker_pids


def test_a_bare_key_name_means_its_alias(
    ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms
) -> None:
    """The library's one key-naming rule: ``sales`` is ``alias/sales``."""
    local_kms.create_alias("alias/sales", key_id)

    manifest = to_parquet(ddf, tmp_path / "dataset", "sales", kms=kms_uri)

    assert manifest.key_id == "alias/sales"
    assert {header.key_id for header in _headers(tmp_path / "dataset").values()} == {key_id}
    with pytest.raises(ValueError, match="empty"):
        to_parquet(ddf, tmp_path / "other", "", kms=kms_uri)


def test_a_context_mismatch_names_the_file_and_the_keys_not_the_values(
    written: Path, kms_uri: str
) -> None:
    with pytest.raises(kmsnb.ContextMismatchError) as raised:
        read_parquet(written, kms=kms_uri, encryption_context={"project": "gemini", "x": "y"})
    message = str(raised.value)
    assert META_NAME in message
    assert "'project'" in message
    assert "'x'" in message
    assert "gemini" not in message
    assert "apollo" not in message
