"""An independent reader of kmsnb.dask datasets, for the test vectors of docs/dask-dataset.md.

Written from ``docs/dask-dataset.md`` (and ``docs/FORMAT.md`` for the files), with the
standard library, ``cryptography``'s AESGCM and pyarrow only: it imports nothing from
kmsnb. Each file is checked and decrypted by ``c2sp_verifier`` (beside it, itself
independent of kmsnb); the data keys are unwrapped here from the master keys a vector
carries, in the Alibaba blob layout the emulator uses. It holds whole datasets in memory:
for tests, not for use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import c2sp_verifier  # beside this file

MANIFEST_NAME = "_kmsnb_manifest.json"
META_NAME = "_meta.parquet.kms"
FORMAT = "kmsnb-dask-parquet"
PARQUET = "application/vnd.apache.parquet"
RESERVED = "kmsnb."
_HEX32 = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"part\.[0-9]+\.parquet\.kms")
_VERSION_ID_SIZE, _IV_SIZE = 36, 12


class Rejected(Exception):
    """Not a valid dataset. ``stage``: manifest, listing, file, binding, context, key,
    payload (the steps of "Decoding" in docs/dask-dataset.md)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage


class Entry(NamedTuple):
    name: str
    size: int
    sha256: str


class Manifest(NamedTuple):
    version: int
    dataset_id: str
    generation: str | None
    entries: tuple[Entry, ...]  # the meta first, then the parts in order


def parse_manifest(text: bytes | None) -> Manifest:
    """Step 1: the manifest, every field checked (docs/dask-dataset.md, "The manifest")."""
    if text is None:
        raise Rejected("manifest", "no manifest")
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Rejected("manifest", "not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise Rejected("manifest", "not a kmsnb-dask-parquet manifest")
    version = document.get("format_version")
    if type(version) is not int or version not in (1, 2):
        raise Rejected("manifest", f"unsupported format_version {version!r}")
    dataset_id = document.get("dataset_id")
    if not isinstance(dataset_id, str) or not _HEX32.fullmatch(dataset_id):
        raise Rejected("manifest", "bad dataset_id")
    generation = document.get("generation")
    if version == 1 and "generation" in document:
        raise Rejected("manifest", "a generation in format_version 1")
    if version == 2 and not (
        isinstance(generation, str)
        and generation.startswith("gen-")
        and _HEX32.fullmatch(generation[4:])
    ):
        raise Rejected("manifest", "bad generation")
    key_id = document.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise Rejected("manifest", "bad key_id")
    context = document.get("encryption_context")
    if not isinstance(context, dict) or any(
        not isinstance(key, str) or not isinstance(value, str) or key.startswith(RESERVED)
        for key, value in context.items()
    ):
        raise Rejected("manifest", "bad encryption_context")
    parts = document.get("parts")
    if not isinstance(parts, list) or not parts or document.get("part_count") != len(parts):
        raise Rejected("manifest", "parts and part_count disagree")
    if type(document.get("part_count")) is not int:
        raise Rejected("manifest", "part_count is not an integer")
    names = [META_NAME] + [f"part.{index:05d}.parquet.kms" for index in range(len(parts))]
    entries = tuple(
        _entry(raw, name) for raw, name in zip([document.get("meta"), *parts], names, strict=True)
    )
    return Manifest(version, dataset_id, generation, entries)


def _entry(raw: object, name: str) -> Entry:
    if not isinstance(raw, dict) or raw.get("name") != name:
        raise Rejected("manifest", f"no entry for {name} in its place")
    size, digest = raw.get("size"), raw.get("sha256")
    if type(size) is not int or size < 0:
        raise Rejected("manifest", f"bad size for {name}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise Rejected("manifest", f"bad sha256 for {name}")
    return Entry(name, size, digest)


def _listing(files: Mapping[str, bytes], manifest: Manifest) -> dict[str, bytes]:
    """Step 2: the files folder holds what the manifest lists, sizes agreeing, no extra part."""
    prefix = "" if manifest.generation is None else manifest.generation + "/"
    present = {
        path[len(prefix) :]: data
        for path, data in files.items()
        if path.startswith(prefix) and "/" not in path[len(prefix) :]
    }
    if prefix and not present:
        raise Rejected("listing", "the generation is missing")
    listed = {entry.name for entry in manifest.entries}
    for entry in manifest.entries:
        if entry.name not in present:
            raise Rejected("listing", f"{entry.name} is missing")
        if len(present[entry.name]) != entry.size:
            raise Rejected("listing", f"{entry.name} has another size")
    if any(_PART.fullmatch(name) and name not in listed for name in present):
        raise Rejected("listing", "a part the manifest does not list")
    return present


class _FileHeader(NamedTuple):
    content_type: str
    context: dict[str, str]
    key_id: str
    wrapped_key: str


def _header_fields(data: bytes) -> _FileHeader:
    """The fields of a header c2sp_verifier.parse_header accepted (docs/FORMAT.md)."""
    position = 14
    (type_size,) = struct.unpack_from(">B", data, position)
    content_type = data[position + 1 : position + 1 + type_size].decode("ascii")
    position += 1 + type_size + 8
    (context_size,) = struct.unpack_from(">I", data, position)
    encoded = data[position + 4 : position + 4 + context_size]
    position += 4 + context_size
    (count,), offset, context = struct.unpack_from(">H", encoded), 2, {}
    for _ in range(count):
        pair = []
        for _ in range(2):
            (size,) = struct.unpack_from(">H", encoded, offset)
            pair.append(encoded[offset + 2 : offset + 2 + size].decode("utf-8"))
            offset += 2 + size
        context[pair[0]] = pair[1]
    slot = []
    for _ in range(3):
        (size,) = struct.unpack_from(">H", data, position)
        slot.append(data[position + 2 : position + 2 + size].decode("utf-8"))
        position += 2 + size
    return _FileHeader(content_type, context, slot[0], slot[2])


def _unwrap(header: _FileHeader, master_keys: Mapping[str, Any]) -> bytes:
    """Step 6: the KMS's Decrypt, done here with the vector's master keys."""
    try:
        blob = base64.b64decode(header.wrapped_key, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("key", "the wrapped key is not base64") from None
    version_id = blob[:_VERSION_ID_SIZE].decode("ascii", errors="replace")
    key = master_keys.get(header.key_id)
    if key is None or version_id not in key["versions"]:
        raise Rejected("key", "the header names a key the blob is not under")
    material = bytes.fromhex(key["versions"][version_id])
    context = header.context
    aad = "&".join(f"{name}={context[name]}" for name in sorted(context)).encode()
    iv, sealed = blob[_VERSION_ID_SIZE : _VERSION_ID_SIZE + _IV_SIZE], blob[48:]
    try:
        return base64.b64decode(AESGCM(material).decrypt(iv, sealed, aad), validate=True)
    except (InvalidTag, binascii.Error, ValueError):
        raise Rejected("key", "the data key does not unwrap under the file's context") from None


def _read_file(
    data: bytes,
    entry: Entry,
    *,
    binding: dict[str, str],
    context: dict[str, str] | None,
    master_keys: Mapping[str, Any],
) -> tuple[pa.Table, dict[str, str]]:
    """Steps 3 to 7 for one file: hash, binding, context, key, payload; then its table."""
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise Rejected("file", f"{entry.name} does not match its SHA-256")
    try:
        c2sp_verifier.parse_header(data)
    except c2sp_verifier.Rejected as error:
        raise Rejected("file", f"{entry.name}: {error}") from None
    header = _header_fields(data)
    if header.content_type != PARQUET:
        raise Rejected("binding", f"{entry.name} holds {header.content_type}, not Parquet")
    own = {key: value for key, value in header.context.items() if key.startswith(RESERVED)}
    if own != binding:
        raise Rejected("binding", f"{entry.name} belongs to another dataset or place")
    users = {key: value for key, value in header.context.items() if not key.startswith(RESERVED)}
    if context is not None and users != context:
        raise Rejected("context", f"{entry.name} has another encryption context")
    data_key = _unwrap(header, master_keys)
    try:
        plaintext = c2sp_verifier.verify(data, data_key)
    except c2sp_verifier.Rejected as error:
        raise Rejected("payload", f"{entry.name}: {error}") from None
    return pq.read_table(pa.BufferReader(plaintext)), users


def read_dataset(
    files: Mapping[str, bytes],
    master_keys: Mapping[str, Any],
    reader_context: Mapping[str, str] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of the dataset whose files (path -> bytes) are ``files``.

    Raises:
        Rejected: at the first step of "Decoding" the dataset fails.
    """
    manifest = parse_manifest(files.get(MANIFEST_NAME))
    present = _listing(files, manifest)
    part_count = str(len(manifest.entries) - 1)
    meta_entry, *part_entries = manifest.entries

    def binding(label: str) -> dict[str, str]:
        return {
            "kmsnb.dataset": manifest.dataset_id,
            "kmsnb.part": label,
            "kmsnb.parts": part_count,
        }

    expected = None if reader_context is None else dict(reader_context)
    meta, context = _read_file(
        present[meta_entry.name], meta_entry, binding=binding("meta"), context=expected,
        master_keys=master_keys,
    )  # fmt: skip
    if meta.num_rows != 0:
        raise Rejected("payload", "the meta holds rows")
    rows: list[dict[str, Any]] = []
    for index, entry in enumerate(part_entries):
        # The parts' context is the meta's, from its authenticated header, not the manifest's.
        table, _ = _read_file(
            present[entry.name], entry, binding=binding(str(index)), context=context,
            master_keys=master_keys,
        )  # fmt: skip
        if not table.schema.equals(meta.schema):
            raise Rejected("payload", f"{entry.name} has another schema than the meta")
        rows += table.to_pylist()
    return meta.schema.names, rows


def read_vector(vector: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """:func:`read_dataset` on a vector of tests/dask/vectors/."""
    files = {path: base64.b64decode(text) for path, text in vector["files"].items()}
    return read_dataset(files, vector["master_keys"], vector["reader_context"])
