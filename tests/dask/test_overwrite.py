"""kmsnb.dask overwrites in one step: the path holds the old dataset or the new one, whole,
whatever fails; leftovers of killed writes go with the next write; 0.1 datasets still read."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import distributed
import pandas as pd
import pytest

import kmsnb
import kmsnb.dask
from kmsnb.dask import MANIFEST_NAME, META_NAME, read_manifest, read_parquet, to_parquet

pytestmark = pytest.mark.unit


@pytest.fixture
def old(ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str) -> Path:
    directory = tmp_path / "dataset"
    to_parquet(ddf, directory, key_id, kms=kms_uri)
    return directory


@pytest.fixture
def new(frame: pd.DataFrame) -> dd.DataFrame:
    return dd.from_pandas(frame.head(30).assign(dose_mg=-1.0), npartitions=3)


def _only_the_dataset(directory: Path) -> None:
    manifest = read_manifest(directory)
    assert sorted(os.listdir(directory)) == sorted([MANIFEST_NAME, str(manifest.generation)])
    names = {part.name for part in manifest.parts} | {META_NAME}
    assert set(os.listdir(manifest.files_directory(directory))) == names


def _fail_on_part(monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    write_part = kmsnb.dask._partitions.write_part

    def fail(frame: pd.DataFrame, config: Any, index: int) -> Any:
        if index == failing:
            raise kmsnb.KmsUnavailableError("throttled", code="Throttling")
        return write_part(frame, config, index)

    monkeypatch.setattr(kmsnb.dask._graph, "write_part", fail)


def test_a_failed_overwrite_keeps_the_old_dataset_whole(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A KMS outage after some parts: the old dataset still reads, and nothing else is left."""
    _fail_on_part(monkeypatch, 2)
    with pytest.raises(kmsnb.KmsUnavailableError):
        to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms=kms_uri).compute())
    _only_the_dataset(old)


def test_a_failed_switch_keeps_the_old_dataset_whole(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A full disk when the manifest is written: the old manifest is still in place."""
    replace = os.replace

    def full(source: Any, target: Any, **kwargs: Any) -> None:
        # Only the manifest: the parts, also renamed into place, are all written.
        if Path(target).name != MANIFEST_NAME:
            return replace(source, target, **kwargs)
        raise OSError(28, "No space left on device", str(old / MANIFEST_NAME))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms=kms_uri).compute())
    _only_the_dataset(old)


_PATIENCE_S = 60.0  # only against a hang if the code under test is broken; never reached


def _wait(event: threading.Event) -> None:
    if not event.wait(_PATIENCE_S):
        raise AssertionError("kmsnb tests: the forced interleaving never happened")


class _LateTask:
    """Force the interleaving of a failed write with a task Dask leaves running: part 2
    fails while part 0 is in flight, and part 0 writes its file only once the writer has
    begun removing the generation (and, if the removal does not wait for it, while the
    removal is halfway, after it listed the folder)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.in_flight = threading.Event()
        self.removing = threading.Event()
        self.published = threading.Event()
        encrypt_frame = kmsnb.dask._partitions.encrypt_frame
        atomic_output = kmsnb.dask._partitions.atomic_output
        remove_generation = kmsnb.dask._generations.remove_generation
        is_our_file = kmsnb.dask._generations.is_our_file

        def encrypt(frame: pd.DataFrame, config: Any, label: str, sink: Any) -> None:
            if label == "0":
                self.in_flight.set()
                _wait(self.removing)
            elif label == "2":
                _wait(self.in_flight)
                raise kmsnb.KmsUnavailableError("throttled", code="Throttling")
            encrypt_frame(frame, config, label, sink)

        @contextlib.contextmanager
        def output(path: Path, **kwargs: Any) -> Iterator[Any]:
            with atomic_output(path, **kwargs) as file:
                yield file
            if path.name == "part.00000.parquet.kms":
                self.published.set()

        def remove(folder: Path) -> None:
            self.removing.set()
            remove_generation(folder)

        def ours(entry: Path) -> bool:
            if self.removing.is_set():
                _wait(self.published)
            return is_our_file(entry)

        monkeypatch.setattr(kmsnb.dask._partitions, "encrypt_frame", encrypt)
        monkeypatch.setattr(kmsnb.dask._partitions, "atomic_output", output)
        monkeypatch.setattr(kmsnb.dask._graph, "remove_generation", remove)
        monkeypatch.setattr(kmsnb.dask._generations, "is_our_file", ours)


def _fail_with_a_late_task(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    late = _LateTask(monkeypatch)
    with pytest.raises(kmsnb.KmsUnavailableError):
        to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    # The failed write returned only once the task it could not stop was done.
    assert late.published.is_set()
    monkeypatch.undo()
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms=kms_uri).compute())
    _only_the_dataset(old)


def test_a_failed_overwrite_waits_for_the_tasks_still_running_threads(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Dask's threaded scheduler raises the first error at once and leaves the other
    tasks running: the cleanup must not race them, nor leave what they write."""
    with dask.config.set(scheduler="threads", num_workers=4):
        _fail_with_a_late_task(old, ddf, new, kms_uri, key_id, monkeypatch)


def test_a_failed_overwrite_waits_for_the_tasks_still_running_distributed(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The same on dask.distributed, whose gather raises on the first error too. One
    worker with a thread per part, so that no part queues behind the held one."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=4, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        _fail_with_a_late_task(old, ddf, new, kms_uri, key_id, monkeypatch)


def test_a_task_that_starts_after_the_cleanup_writes_nothing(
    tmp_path: Path, new: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    """A task Dask starts after the failed write removed its generation (a distributed
    worker may pick a queued one up) finds no folder and leaves nothing."""
    config = kmsnb.dask._graph.plan_write(
        new, tmp_path / "dataset", key_id, kms=kms_uri,
        encryption_context=None, compression=None,
    )  # fmt: skip
    generation = Path(config.directory)
    created, lock = kmsnb.dask._generations.new_generation(generation.parent, generation.name)
    os.close(lock)
    kmsnb.dask._generations.remove_generation(generation)
    with pytest.raises(FileNotFoundError):
        kmsnb.dask._partitions.write_part(new.partitions[0].compute(), config, 0)
    assert created
    assert os.listdir(generation.parent) == []


def test_a_sweep_leaves_a_generation_a_task_still_writes_in(
    old: Path, new: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    """A task of a writer that died (its distributed worker still running) holds the
    generation: the next write's sweep must not race it; the write after that sweeps it."""
    leftover = old / f"gen-{'0' * 32}"
    leftover.mkdir()
    with kmsnb.dask._generations.writing_in(leftover):
        to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
        assert leftover.is_dir()
    to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    _only_the_dataset(old)


def test_a_successful_overwrite_switches_to_the_new_dataset(
    old: Path, new: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    before = read_manifest(old).generation
    manifest = to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    assert manifest.generation != before
    assert not (old / str(before)).exists()
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms=kms_uri).compute())
    _only_the_dataset(old)


def _killed_write_leftovers(directory: Path, donor: Path) -> list[Path]:
    """What a writer killed before its switch leaves: a generation no manifest names."""
    generation = read_manifest(donor).files_directory(donor)
    leftover = directory / f"gen-{'0' * 32}"
    shutil.copytree(generation, leftover)
    return [leftover]


def test_after_a_killed_write_the_next_write_leaves_only_its_dataset(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str
) -> None:
    """Into a folder that holds only leftovers, a write needs no overwrite=True (there is
    no dataset to lose); over a dataset, overwrite removes the leftovers with the old one."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _killed_write_leftovers(fresh, old)
    to_parquet(new, fresh, key_id, kms=kms_uri)
    _only_the_dataset(fresh)

    _killed_write_leftovers(old, old)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_parquet(new, old, key_id, kms=kms_uri)
    to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    _only_the_dataset(old)
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms=kms_uri).compute())


def test_another_writer_that_finished_meanwhile_is_not_overwritten(
    old: Path, new: dd.DataFrame, ddf: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    write_part = kmsnb.dask._partitions.write_part
    others: list[kmsnb.dask.Manifest] = []

    def and_another_writer(frame: pd.DataFrame, config: Any, index: int) -> Any:
        if index == 0 and not others:
            monkeypatch.setattr(kmsnb.dask._graph, "write_part", write_part)
            others.append(to_parquet(ddf, old, key_id, kms=kms_uri, overwrite=True))
        return write_part(frame, config, index)

    monkeypatch.setattr(kmsnb.dask._graph, "write_part", and_another_writer)
    with pytest.raises(FileExistsError, match="another writer"):
        to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    assert read_manifest(old) == others[0]
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms=kms_uri).compute())


# -- kmsnb 0.1's datasets --------------------------------------------------------------------


def _as_written_by_0_1(directory: Path) -> None:
    """Rewrite a dataset into 0.1's layout: files beside a format_version 1 manifest."""
    manifest_path = directory / MANIFEST_NAME
    document = json.loads(manifest_path.read_text())
    generation = directory / document.pop("generation")
    for entry in generation.iterdir():
        entry.rename(directory / entry.name)
    generation.rmdir()
    document["format_version"] = 1
    manifest_path.write_text(json.dumps(document, indent=2, sort_keys=True))


def test_datasets_written_by_0_1_are_read_and_overwritten(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    _as_written_by_0_1(old)
    assert read_manifest(old).generation is None
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms=kms_uri).compute())

    to_parquet(new, old, key_id, kms=kms_uri, overwrite=True)
    _only_the_dataset(old)  # 0.1's flat files are gone
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms=kms_uri).compute())


@pytest.mark.parametrize(
    ("generation", "version"),
    [("../elsewhere", 2), ("gen-" + "0" * 31, 2), (None, 2), ("gen-" + "0" * 32, 1)],
)
def test_a_manifest_cannot_point_elsewhere(
    old: Path, kms_uri: str, generation: str | None, version: int
) -> None:
    manifest_path = old / MANIFEST_NAME
    document = json.loads(manifest_path.read_text())
    document.update(generation=generation, format_version=version)
    manifest_path.write_text(json.dumps(document))
    with pytest.raises(kmsnb.FormatError, match="generation"):
        read_parquet(old, kms=kms_uri)
