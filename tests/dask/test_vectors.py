"""The Dask dataset vectors of docs/dask-dataset.md: kmsnb and tests/dask_verifier.py (an
independent reader) agree with each of them, and tests/dask/vectors/generate.py writes them."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kmsnb.errors
from kmsnb.dask import read_parquet
from kmsnb.testing import InMemoryKms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: dask_verifier
import dask_verifier

pytestmark = pytest.mark.unit

VECTORS = Path(__file__).resolve().parent / "vectors"
NAMES = sorted(path.stem for path in VECTORS.glob("*.json"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("kmsnb_dask_vectors", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


def _materialize(vector: dict[str, Any], directory: Path) -> Path:
    directory.mkdir()
    for path, text in vector["files"].items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(base64.b64decode(text))
    return directory


def _kms(vector: dict[str, Any]) -> InMemoryKms:
    kms = InMemoryKms()
    for key_id, key in vector["master_keys"].items():
        for version_id, material in key["versions"].items():
            kms.add_key(key_id, bytes.fromhex(material), version_id=version_id, alias=key["alias"])
    return kms


def test_there_are_vectors_of_every_kind() -> None:
    expected = {_load(name)["expect"] for name in NAMES}
    assert {
        "success",
        "FormatError",
        "IntegrityError",
        "ContextMismatchError",
        "WrongKeyError",
    } == expected
    assert len(NAMES) >= 30


@pytest.mark.parametrize("name", NAMES)
def test_kmsnb_reads_the_vector_as_it_expects(name: str, tmp_path: Path) -> None:
    vector = _load(name)
    directory = _materialize(vector, tmp_path / "dataset")
    kms = _kms(vector)

    def read() -> pd.DataFrame:
        frame = read_parquet(directory, kms=kms, encryption_context=vector["reader_context"])
        return frame.compute(scheduler="sync").reset_index(drop=True)

    if vector["expect"] == "success":
        frame = read()
        assert vector["columns"] == list(frame.columns)
        assert vector["rows"] == frame.to_dict("records")
    else:
        with pytest.raises(getattr(kmsnb.errors, vector["expect"])):
            read()


@pytest.mark.parametrize("name", NAMES)
def test_the_independent_verifier_agrees(name: str) -> None:
    vector = _load(name)
    if vector["expect"] == "success":
        assert (vector["columns"], vector["rows"]) == dask_verifier.read_vector(vector)
    else:
        with pytest.raises(dask_verifier.Rejected) as rejected:
            dask_verifier.read_vector(vector)
        assert vector["stage"] == rejected.value.stage


def test_the_generator_writes_the_committed_vectors() -> None:
    """Byte for byte with the pyarrow that wrote them; with another, the same verdicts."""
    generator = _generator()
    built = generator.build_vectors()
    assert built == generator.build_vectors()  # deterministic
    assert sorted(built) == [f"{name}.json" for name in NAMES]
    committed = {name: (VECTORS / name).read_text(encoding="utf-8") for name in built}
    writers = {json.loads(text)["parquet_writer"] for text in committed.values()}
    if writers == {generator.PARQUET_WRITER}:
        assert committed == built
    else:
        for name, text in built.items():
            fresh, old = json.loads(text), json.loads(committed[name])
            assert (fresh["expect"], fresh.get("stage"), fresh["rows"]) == (
                old["expect"],
                old.get("stage"),
                old["rows"],
            )
            if fresh["expect"] == "success":
                assert (fresh["columns"], fresh["rows"]) == dask_verifier.read_vector(fresh)
            else:
                with pytest.raises(dask_verifier.Rejected):
                    dask_verifier.read_vector(fresh)
