"""kmsnb.dask overwrites in one step: the path holds the old dataset or the new one, whole,
whatever fails; leftovers of killed writes go with the next write; 0.1 datasets still read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pytest

import kmsnb
import kmsnb.dask
from kmsnb.dask import MANIFEST_NAME, META_NAME, read_manifest, read_parquet, to_parquet

pytestmark = pytest.mark.unit


@pytest.fixture
def old(ddf: dd.DataFrame, tmp_path: Path, kms_uri: str, key_id: str) -> Path:
    directory = tmp_path / "dataset"
    to_parquet(ddf, directory, key_id, kms_uri=kms_uri)
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
    write_part = kmsnb.dask._write_part

    def fail(frame: pd.DataFrame, config: Any, index: int) -> Any:
        if index == failing:
            raise kmsnb.KmsUnavailableError("throttled", code="Throttling")
        return write_part(frame, config, index)

    monkeypatch.setattr(kmsnb.dask, "_write_part", fail)


def test_a_failed_overwrite_keeps_the_old_dataset_whole(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A KMS outage after some parts: the old dataset still reads, and nothing else is left."""
    _fail_on_part(monkeypatch, 2)
    with pytest.raises(kmsnb.KmsUnavailableError):
        to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms_uri=kms_uri).compute())
    _only_the_dataset(old)


def test_a_failed_switch_keeps_the_old_dataset_whole(
    old: Path, ddf: dd.DataFrame, new: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A full disk when the manifest is written: the old manifest is still in place."""

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device", str(old / MANIFEST_NAME))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms_uri=kms_uri).compute())
    _only_the_dataset(old)


def test_a_successful_overwrite_switches_to_the_new_dataset(
    old: Path, new: dd.DataFrame, kms_uri: str, key_id: str
) -> None:
    before = read_manifest(old).generation
    manifest = to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    assert manifest.generation != before
    assert not (old / str(before)).exists()
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms_uri=kms_uri).compute())
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
    to_parquet(new, fresh, key_id, kms_uri=kms_uri)
    _only_the_dataset(fresh)

    _killed_write_leftovers(old, old)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_parquet(new, old, key_id, kms_uri=kms_uri)
    to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    _only_the_dataset(old)
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms_uri=kms_uri).compute())


def test_another_writer_that_finished_meanwhile_is_not_overwritten(
    old: Path, new: dd.DataFrame, ddf: dd.DataFrame, kms_uri: str, key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    write_part = kmsnb.dask._write_part
    others: list[kmsnb.dask.Manifest] = []

    def and_another_writer(frame: pd.DataFrame, config: Any, index: int) -> Any:
        if index == 0 and not others:
            monkeypatch.setattr(kmsnb.dask, "_write_part", write_part)
            others.append(to_parquet(ddf, old, key_id, kms_uri=kms_uri, overwrite=True))
        return write_part(frame, config, index)

    monkeypatch.setattr(kmsnb.dask, "_write_part", and_another_writer)
    with pytest.raises(FileExistsError, match="another writer"):
        to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    assert read_manifest(old) == others[0]
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms_uri=kms_uri).compute())


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
    pd.testing.assert_frame_equal(ddf.compute(), read_parquet(old, kms_uri=kms_uri).compute())

    to_parquet(new, old, key_id, kms_uri=kms_uri, overwrite=True)
    _only_the_dataset(old)  # 0.1's flat files are gone
    pd.testing.assert_frame_equal(new.compute(), read_parquet(old, kms_uri=kms_uri).compute())


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
        read_parquet(old, kms_uri=kms_uri)
