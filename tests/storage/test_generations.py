"""Generation helpers: parts under a fresh prefix, the manifest written last and read
first, old generations removed after the switch, young unreferenced ones kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsnb.storage import (
    join,
    list_generations,
    new_generation,
    open_input,
    open_output,
    read_manifest_bytes,
    remove_generation,
    remove_unreferenced_generations,
    start_generation,
    write_manifest,
)

from .fake_oss import serve_fake_oss

pytestmark = pytest.mark.integration

MANIFEST = "_kmsnb_manifest.json"


@pytest.fixture(params=["local", "s3", "memory", "oss"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(dataset root, storage_options) on each kind of store."""
    if request.param == "local":
        yield str(tmp_path / "ds"), None
    elif request.param == "memory":
        yield f"memory://kmsnb-gen/{os.urandom(6).hex()}", None
    elif request.param == "s3":
        bucket = request.getfixturevalue("bucket")
        yield f"s3://{bucket}/ds", request.getfixturevalue("s3_options")
    else:
        with serve_fake_oss() as oss:
            options = {
                "endpoint": oss.endpoint,
                "region": "cn-hangzhou",
                "key": "AK",
                "secret": "s",
            }
            yield "oss://bucket/ds", options


def _write_generation(root: str, options: Any, parts: int) -> str:
    generation = start_generation(root, storage_options=options)
    for index in range(parts):
        url = join(root, generation, f"part.{index:05d}.parquet.kms")
        with open_output(url, storage_options=options) as output:
            output.write(f"{generation}-{index}".encode())
    return generation


def test_a_dataset_switches_when_its_manifest_is_written(store: tuple[str, Any]) -> None:
    root, options = store
    assert read_manifest_bytes(root, MANIFEST, storage_options=options) is None
    old = _write_generation(root, options, parts=2)
    write_manifest(root, MANIFEST, old.encode(), replace=False, storage_options=options)
    assert read_manifest_bytes(root, MANIFEST, storage_options=options) == old.encode()

    new = _write_generation(root, options, parts=3)
    # Until the manifest moves, readers follow it to the old generation, whole.
    named = read_manifest_bytes(root, MANIFEST, storage_options=options)
    assert named == old.encode()
    assert set(list_generations(root, storage_options=options)) == {old, new}
    write_manifest(root, MANIFEST, new.encode(), replace=True, storage_options=options)
    remove_generation(root, old, storage_options=options)
    assert set(list_generations(root, storage_options=options)) == {new}
    part = join(root, new, "part.00002.parquet.kms")
    with open_input(part, storage_options=options) as source:
        assert source.read() == f"{new}-2".encode()


def test_a_second_creator_of_a_dataset_is_refused(store: tuple[str, Any]) -> None:
    root, options = store
    write_manifest(root, MANIFEST, b"first", replace=False, storage_options=options)
    with pytest.raises(FileExistsError):
        write_manifest(root, MANIFEST, b"second", replace=False, storage_options=options)
    assert read_manifest_bytes(root, MANIFEST, storage_options=options) == b"first"


def test_only_old_unreferenced_generations_are_swept(store: tuple[str, Any]) -> None:
    """A young generation may be another writer's in flight: it is kept."""
    root, options = store
    kept = _write_generation(root, options, parts=1)
    young = _write_generation(root, options, parts=1)
    assert remove_unreferenced_generations(root, keep=kept, storage_options=options) == []
    generations = list_generations(root, storage_options=options)
    assert set(generations) == {kept, young}
    assert generations[young] is not None
    # "older than" is relative: a bound below any generation's age (which is never
    # negative) sweeps it, with no reading of the clock in the test.
    removed = remove_unreferenced_generations(
        root, keep=kept, older_than_s=-1.0, storage_options=options
    )
    assert removed == [young]
    assert set(list_generations(root, storage_options=options)) == {kept}


@pytest.mark.unit
def test_names_are_single_components() -> None:
    assert new_generation() != new_generation()
    with pytest.raises(ValueError, match="single path component"):
        join("s3://b/ds", "../x")
    assert join("s3://b/ds/", "gen-1", "p") == "s3://b/ds/gen-1/p"
    with pytest.raises(ValueError, match="not a generation"):
        remove_generation("s3://b/ds", "other")
