"""kmsnb.dask.read_parquet checks which master key opened each file (issue 9, item 1)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import dask.dataframe as dd
import distributed
import pandas as pd
import pytest
from forgery import ForgingKms, forge_bytes

import kmsnb
from kmsnb._format.header import CONTENT_TYPE_PARQUET, read_header
from kmsnb.dask import MANIFEST_NAME, read_manifest, read_parquet, to_parquet
from kmsnb.errors import WrongKeyError
from kmsnb.kms.local import LocalKms

pytestmark = pytest.mark.unit

PART = "part.00001.parquet.kms"


def test_a_forged_dataset_is_refused_on_opening(
    ddf: dd.DataFrame, tmp_path: Path, local_kms: LocalKms, key_id: str
) -> None:
    scratch = local_kms.create_key("scratch").key_id
    directory = tmp_path / "forged"
    to_parquet(ddf, directory, key_id, kms=ForgingKms(local_kms, scratch, key_id))
    for allowed in (None, [key_id]):
        with pytest.raises(WrongKeyError) as caught:
            read_parquet(directory, kms=local_kms, allowed_keys=allowed)
        assert caught.value.found_key_id == scratch


def test_a_forged_part_is_refused_when_computed(
    ddf: dd.DataFrame, tmp_path: Path, local_kms: LocalKms, key_id: str, kms_uri: str
) -> None:
    """One part replaced by a forgery that carries the part's own (public) binding, and a
    manifest entry to match: the worker's check refuses it."""
    directory = tmp_path / "dataset"
    to_parquet(ddf, directory, key_id, kms=kms_uri)
    part = _part_path(directory)
    with open(part, "rb") as fileobj:
        header = read_header(fileobj)
    scratch = local_kms.create_key("scratch").key_id
    plaintext = io.BytesIO()
    ddf.partitions[1].compute().to_parquet(plaintext)
    forged = forge_bytes(
        local_kms,
        scratch_key_id=scratch,
        claimed_key_id=key_id,
        plaintext=plaintext.getvalue(),
        encryption_context=header.encryption_context,
        content_type=CONTENT_TYPE_PARQUET,
    )
    _replace_part(directory, forged)

    frame = read_parquet(directory, kms=kms_uri)  # the meta is honest
    with pytest.raises(WrongKeyError, match="forged"):
        frame.compute()


def _part_path(directory: Path) -> Path:
    """Where part 1 lives: in the generation folder the manifest names."""
    return read_manifest(directory).files_directory(directory) / PART


def _replace_part(directory: Path, data: bytes) -> None:
    _part_path(directory).write_bytes(data)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    entry = manifest["parts"][1]
    entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_allowed_keys_reach_the_workers(
    client: distributed.Client,
    ddf: dd.DataFrame,
    tmp_path: Path,
    kms_uri: str,
    local_kms: LocalKms,
    key_id: str,
) -> None:
    """A part swapped for an honest file under another key, with the part's binding: only
    allowed_keys, carried to the workers, refuses it."""
    directory = tmp_path / "dataset"
    to_parquet(ddf, directory, key_id, kms=kms_uri)
    local_kms.create_alias("alias/dataset", key_id)
    frame = read_parquet(directory, kms=kms_uri, allowed_keys=["alias/dataset"])
    pd.testing.assert_frame_equal(ddf.compute(), frame.compute())

    with open(_part_path(directory), "rb") as fileobj:
        context = read_header(fileobj).encryption_context
    other = local_kms.create_key("not the dataset's").key_id
    plaintext = io.BytesIO()
    ddf.partitions[1].compute().to_parquet(plaintext)
    swapped = kmsnb.encrypt_bytes(
        plaintext.getvalue(),
        other,
        kms=local_kms,
        encryption_context=context,
        content_type=CONTENT_TYPE_PARQUET,
    )
    _replace_part(directory, swapped)
    assert len(read_parquet(directory, kms=kms_uri).compute()) == len(ddf)  # no pin
    pinned = read_parquet(directory, kms=kms_uri, allowed_keys=["alias/dataset"])
    with pytest.raises(WrongKeyError, match="allowed_keys") as caught:
        pinned.compute()
    assert caught.value.found_key_id == other
    with pytest.raises(kmsnb.KmsAccessDeniedError, match="allowed_keys entry"):
        read_parquet(directory, kms=kms_uri, allowed_keys=["alias/nobody"])
