"""Killing ``df.kms.to_parquet`` and ``kmsnb.dask.to_parquet`` (new and overwrite) with
kill -9 at random moments, and filling the disk under them (RLIMIT_FSIZE).

After every round: the file or dataset is absent (a new write) or whole and readable, an
old one is never lost, and no plaintext is left anywhere. After the last round, one more
write leaves nothing but its own file or dataset."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kmsnb
import kmsnb.dask
from kmsnb.kms.local import LocalKms

from .conftest import ROUNDS, KillDelays, Tally, Zygote, scan, temporary_files

sys.path.insert(0, str(Path(__file__).parent))
from _zygote import make_frame

pytestmark = [pytest.mark.crash, pytest.mark.slow]

ROWS = 60_000  # about 3 MiB of Parquet
NEW_SEED, OLD_SEED = 1, 2
KILLED = -signal.SIGKILL


def _read_frame(path: Path | io.BytesIO, kms: LocalKms) -> pd.DataFrame | None:
    try:
        return kmsnb.read_parquet(path, kms=kms)
    except (kmsnb.KmsnbError, OSError):
        return None


def _read_dataset(path: Path, kms_uri: str) -> pd.DataFrame | None:
    try:
        return kmsnb.dask.read_parquet(path, kms=kms_uri).compute(scheduler="sync")
    except (kmsnb.KmsnbError, OSError):
        return None


def _read_dataset_files(
    path: Path, manifest: bytes, generation: str, kms_uri: str
) -> pd.DataFrame | None:
    """Read the dataset a manifest left under a temporary name describes."""
    if not (path / generation).is_dir():
        return None
    copy = path.parent / f"{path.name}-as-left"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    try:
        (copy / kmsnb.dask.MANIFEST_NAME).write_bytes(manifest)
        shutil.copytree(path / generation, copy / generation)
        return _read_dataset(copy, kms_uri)
    finally:
        shutil.rmtree(copy)


def _same(found: pd.DataFrame | None, seed: int) -> bool:
    """Whether ``found`` holds the rows of the frame made from ``seed`` (Dask may read the
    strings back with another string dtype)."""
    if found is None:
        return False
    expected = make_frame(seed, ROWS)
    return list(found.columns) == list(expected.columns) and all(
        found[name].tolist() == expected[name].tolist() for name in expected.columns
    )


def _request(kind: str, path: Path, kms_uri: str, key_id: str, *, overwrite: bool) -> dict:
    return {
        "kind": kind,
        "path": str(path),
        "key_id": key_id,
        "kms_uri": kms_uri,
        "overwrite": overwrite,
        "seed": NEW_SEED,
        "rows": ROWS,
        "partitions": 4,
    }


def _run_rounds(
    zygote: Zygote,
    request: dict[str, Any],
    delays: KillDelays,
    tally: Tally,
    *,
    reset: Any,
    check: Any,
    folder: Path,
    whole: Callable[[bytes], bool],
) -> None:
    for _ in range(ROUNDS):
        reset()
        reply = zygote.run({**request, "kill_after_s": delays.next()})
        tally.rounds += 1
        if reply["exit"] not in (0, KILLED):
            raise AssertionError(f"the writer failed on its own: {reply}")
        completed = reply["exit"] == 0
        tally.killed += not completed
        tally.completed += completed
        delays.record(completed=completed)
        check(completed)
        scan(folder, tally, allowed=set(), whole=whole)


def _delays(zygote: Zygote, request: dict[str, Any], rng: random.Random, reset: Any) -> KillDelays:
    times = []
    for _ in range(3):
        reset()
        reply = zygote.run(request)
        assert reply["exit"] == 0, reply
        times.append(float(reply["elapsed_s"]))
    return KillDelays(rng, times)


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_kill_9_during_df_to_parquet(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, rng: random.Random, overwrite: bool,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    path = out / "frame.parquet.kms"
    make_frame(OLD_SEED, ROWS).kms.to_parquet(path, key_id, kms=local_kms)
    old = path.read_bytes()
    request = _request("frame", path, kms_uri, key_id, overwrite=overwrite)

    def reset() -> None:
        path.unlink(missing_ok=True)
        if overwrite:
            path.write_bytes(old)

    def check(completed: bool) -> None:
        found = _read_frame(path, local_kms) if path.exists() else None
        if path.exists() and not (_same(found, NEW_SEED) or (overwrite and _same(found, OLD_SEED))):
            tally.outputs_invalid += 1
        if completed and not _same(found, NEW_SEED):
            tally.outputs_invalid += 1
        if overwrite and found is None:
            tally.data_lost += 1

    def whole(data: bytes) -> bool:
        return _same(_read_frame(io.BytesIO(data), local_kms), NEW_SEED)

    delays = _delays(zygote, request, rng, reset)
    _run_rounds(zygote, request, delays, tally, reset=reset, check=check, folder=out, whole=whole)
    reset()
    assert zygote.run(request)["exit"] == 0  # the next write
    assert os.listdir(out) == [path.name]
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_kill_9_during_dask_to_parquet(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, tally: Tally,
    rng: random.Random, overwrite: bool,
) -> None:  # fmt: skip
    """A new dataset is absent (or a folder of leftovers, not a dataset) or whole; an
    overwritten one is the old one or the new one, whole: never lost."""
    path = tmp_path / "dataset"
    old_request = {**_request("dask", path, kms_uri, key_id, overwrite=True), "seed": OLD_SEED}
    request = _request("dask", path, kms_uri, key_id, overwrite=overwrite)

    def reset() -> None:
        if overwrite:  # the old dataset, written whole (over whatever the last round left)
            assert zygote.run(old_request)["exit"] == 0
        elif (path / kmsnb.dask.MANIFEST_NAME).exists():
            (path / kmsnb.dask.MANIFEST_NAME).unlink()  # leftovers stay: not a dataset

    def check(completed: bool) -> None:
        has_manifest = (path / kmsnb.dask.MANIFEST_NAME).exists()
        found = _read_dataset(path, kms_uri) if has_manifest else None
        if has_manifest and not (_same(found, NEW_SEED) or (overwrite and _same(found, OLD_SEED))):
            tally.outputs_invalid += 1
        if completed and not _same(found, NEW_SEED):
            tally.outputs_invalid += 1
        if overwrite and found is None:
            tally.data_lost += 1

    def whole(data: bytes) -> bool:
        """A manifest whose generation is complete (the switch's link-to-rename instant)."""
        try:
            generation = json.loads(data)["generation"]
        except (ValueError, KeyError, TypeError):
            return False
        return _same(_read_dataset_files(path, data, generation, kms_uri), NEW_SEED)

    delays = _delays(zygote, request, rng, reset)
    _run_rounds(zygote, request, delays, tally, reset=reset, check=check, folder=path, whole=whole)
    reset()
    manifest_request = {**request, "overwrite": True}
    assert zygote.run(manifest_request)["exit"] == 0  # the next write
    manifest = kmsnb.dask.read_manifest(path)
    assert sorted(os.listdir(path)) == sorted([kmsnb.dask.MANIFEST_NAME, str(manifest.generation)])
    assert temporary_files(path) == []
    assert _same(_read_dataset(path, kms_uri), NEW_SEED)
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2


@pytest.mark.parametrize("kind", ["frame", "dask"])
def test_a_full_disk_under_dataframe_writes(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, kind: str,
) -> None:  # fmt: skip
    """A write that fills the disk fails with an error; the old file or dataset stays."""
    path = tmp_path / ("frame.parquet.kms" if kind == "frame" else "dataset")
    old = _request(kind, path, kms_uri, key_id, overwrite=True)
    assert zygote.run({**old, "seed": OLD_SEED})["exit"] == 0
    log = tmp_path / "log"
    files = [path] if kind == "frame" else [p for p in path.rglob("*") if p.is_file()]
    largest = max(file.stat().st_size for file in files)
    for limit in (0, largest // 3, largest * 9 // 10):  # fills at once, halfway, near the end
        log.write_bytes(b"")
        reply = zygote.run({**old, "file_size_limit": limit, "log": str(log)})
        tally.rounds += 1
        said = log.read_text()
        assert reply["exit"] == 99, said  # an exception, raised to the caller
        assert "File too large" in said
        tally.failed_cleanly += 1
        found = _read_frame(path, local_kms) if kind == "frame" else _read_dataset(path, kms_uri)
        if not _same(found, OLD_SEED):
            tally.data_lost += 1
        scan(tmp_path, tally, allowed=set())
        if temporary_files(tmp_path):
            tally.temporary_files_left += 1
    if kind == "dask":
        manifest = kmsnb.dask.read_manifest(path)
        assert sorted(os.listdir(path)) == sorted(
            [kmsnb.dask.MANIFEST_NAME, str(manifest.generation)]
        )
    assert tally.problems() == {}
