"""The dataset manifest (``_kmsnb_manifest.json``) and the binding of files to a dataset.

The wire structure is specified in ``docs/dask-dataset.md``: a JSON object naming the
format, its version, a random dataset id, the generation folder, the master key, the
caller's encryption context and each file's name, size and SHA-256. It holds no secret and
no column name. Each file's encryption context binds it to its dataset and position
(:func:`binding`), so the manifest itself need not be signed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kmsnb._context import check_encryption_context
from kmsnb.errors import FormatError

#: The manifest's name; a directory without one is not a dataset (yet).
MANIFEST_NAME: Final = "_kmsnb_manifest.json"
#: The encrypted Dask meta (column names and dtypes).
META_NAME: Final = "_meta.parquet.kms"
MANIFEST_FORMAT: Final = "kmsnb-dask-parquet"
MANIFEST_VERSION: Final = 2
#: kmsnb 0.1's manifests: no generation, the files beside the manifest.
FLAT_MANIFEST_VERSION: Final = 1

#: Encryption-context keys kmsnb sets itself; callers may not use this prefix.
RESERVED_CONTEXT_PREFIX: Final = "kmsnb."
_DATASET_KEY: Final = "kmsnb.dataset"
_PART_COUNT_KEY: Final = "kmsnb.parts"
_PART_KEY: Final = "kmsnb.part"
#: The ``kmsnb.part`` value of the meta file (parts have their index).
META_LABEL: Final = "meta"

PART_NAME = re.compile(r"part\.(\d+)\.parquet\.kms")
GENERATION = re.compile(r"gen-[0-9a-f]{32}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DATASET_ID = re.compile(r"[0-9a-f]{32}")

StrPath = str | os.PathLike[str]
ContextItems = tuple[tuple[str, str], ...]


def part_name(index: int) -> str:
    """The file name of partition ``index``: fixed by position."""
    return f"part.{index:05d}.parquet.kms"


def generation_name(dataset_id: str) -> str:
    """The folder of the files of the write that made dataset ``dataset_id``."""
    return f"gen-{dataset_id}"


@dataclass(frozen=True)
class PartInfo:
    """One encrypted file of a dataset, as the manifest records it.

    Attributes:
        name: the file's name in the dataset directory.
        size: the file's size in bytes (ciphertext).
        sha256: the SHA-256 of the whole file, in lowercase hex.
    """

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What ``_kmsnb_manifest.json`` says: only facts that are not secret.

    Attributes:
        dataset_id: a random id, bound into every file's encryption context.
        key_id: the master key the caller named when writing.
        encryption_context: the caller's encryption context (without kmsnb's own keys).
        meta: the encrypted Dask meta (``_meta.parquet.kms``).
        parts: the partitions' files, in order.
        generation: the folder, beside the manifest, that holds the files; ``None`` for
            a kmsnb 0.1 dataset, whose files lie beside the manifest.
    """

    dataset_id: str
    key_id: str
    encryption_context: Mapping[str, str]
    meta: PartInfo
    parts: tuple[PartInfo, ...]
    generation: str | None = None

    @property
    def part_count(self) -> int:
        return len(self.parts)

    def files_directory(self, dataset: StrPath) -> Path:
        """Where the files of the dataset at ``dataset`` are."""
        directory = Path(dataset)
        return directory if self.generation is None else directory / self.generation

    def to_json(self) -> str:
        if self.generation is None:
            raise AssertionError("kmsnb: internal error: kmsnb writes only generations")
        document = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "generation": self.generation,
            "dataset_id": self.dataset_id,
            "key_id": self.key_id,
            "encryption_context": dict(self.encryption_context),
            "part_count": self.part_count,
            "meta": _part_document(self.meta),
            "parts": [_part_document(part) for part in self.parts],
        }
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _part_document(part: PartInfo) -> dict[str, Any]:
    return {"name": part.name, "size": part.size, "sha256": part.sha256}


def read_manifest(path: StrPath) -> Manifest:
    """Read and check the manifest of the dataset at ``path`` (no KMS call).

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        FormatError: no manifest (not a kmsnb dataset, or its writing never finished), or
            a malformed one.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    try:
        text = (directory / MANIFEST_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(
            f"{directory} has no {MANIFEST_NAME}: it is not a kmsnb.dask dataset, or "
            "writing it did not finish; write it again"
        ) from None
    return parse_manifest(text, str(directory / MANIFEST_NAME))


def parse_manifest(text: str, location: str) -> Manifest:
    """Check and parse a manifest's text; ``location`` (a path or a URL) names it in
    messages.

    Raises:
        FormatError: a malformed manifest.
    """
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    return _parse_manifest(document, location)


def _parse_manifest(document: object, location: str) -> Manifest:
    def malformed(what: str) -> FormatError:
        return FormatError(
            f"{location} is malformed ({what}); the dataset was not "
            "written by kmsnb.dask or was altered"
        )

    if not isinstance(document, dict):
        raise malformed("not a JSON object")
    if document.get("format") != MANIFEST_FORMAT:
        raise malformed(f"format is not {MANIFEST_FORMAT!r}")
    version = document.get("format_version")
    if version not in (MANIFEST_VERSION, FLAT_MANIFEST_VERSION) or type(version) is not int:
        raise malformed(f"unsupported format_version {version!r}")
    dataset_id = document.get("dataset_id")
    if not isinstance(dataset_id, str) or not _DATASET_ID.fullmatch(dataset_id):
        raise malformed("bad dataset_id")
    generation = document.get("generation")
    if version == FLAT_MANIFEST_VERSION:
        if generation is not None:
            raise malformed("a generation in a format_version 1 manifest")
    elif not isinstance(generation, str) or not GENERATION.fullmatch(generation):
        # Checked, not merely read: the manifest must not point a reader elsewhere.
        raise malformed("bad generation")
    key_id = document.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise malformed("bad key_id")
    context = document.get("encryption_context")
    if not isinstance(context, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and not is_reserved(key)
        for key, value in context.items()
    ):
        raise malformed("bad encryption_context")
    raw_parts = document.get("parts")
    part_count = document.get("part_count")
    if not isinstance(raw_parts, list) or not raw_parts or part_count != len(raw_parts):
        raise malformed("part_count and parts disagree")
    if type(part_count) is not int:  # JSON true would equal 1
        raise malformed("part_count is not an integer")

    def part(entry: object, expected_name: str) -> PartInfo:
        # Names are checked against the expected ones, not merely validated: a manifest
        # must not be able to point a reader outside the directory or at another part.
        if not isinstance(entry, dict) or entry.get("name") != expected_name:
            raise malformed(f"expected an entry for {expected_name}")
        size, digest = entry.get("size"), entry.get("sha256")
        if type(size) is not int or size < 0:
            raise malformed(f"bad size for {expected_name}")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise malformed(f"bad sha256 for {expected_name}")
        return PartInfo(expected_name, size, digest)

    return Manifest(
        dataset_id=dataset_id,
        key_id=key_id,
        encryption_context=dict(context),
        meta=part(document.get("meta"), META_NAME),
        parts=tuple(part(entry, part_name(i)) for i, entry in enumerate(raw_parts)),
        generation=generation,
    )


# -- encryption contexts -----------------------------------------------------------------


def is_reserved(key: str) -> bool:
    """Whether an encryption-context key is one kmsnb sets itself."""
    return key.startswith(RESERVED_CONTEXT_PREFIX)


def user_context(encryption_context: Mapping[str, str] | None) -> ContextItems:
    """The caller's encryption context, checked and sorted; reserved keys are refused."""
    context = check_encryption_context(encryption_context) or {}
    reserved = sorted(key for key in context if is_reserved(key))
    if reserved:
        raise ValueError(
            f"encryption context keys starting with {RESERVED_CONTEXT_PREFIX!r} are kmsnb's "
            f"own ({', '.join(map(repr, reserved))}); rename them"
        )
    return tuple(sorted(context.items()))


def binding(dataset_id: str, part_count: int, label: str) -> dict[str, str]:
    """The reserved context keys that tie a file to its dataset and position."""
    return {_DATASET_KEY: dataset_id, _PART_COUNT_KEY: str(part_count), _PART_KEY: label}
