"""Per-partition I/O: what a task does on a worker to write or read one encrypted file.

A task carries a small frozen configuration (:class:`WriteConfig`, :class:`ReadConfig`):
the KMS reference (a URI), the key id, the encryption context and the dataset's layout,
never a secret. Each file is Parquet inside a kmsnb file under its own data key, its
encryption context the caller's plus the dataset binding (:func:`~._manifest.binding`).
A generation on an object store (``directory`` a URL) is written and read by each task
directly, through :mod:`kmsnb.storage` (each part an upload published whole, or not at
all); ``storage_options`` never hold a credential (:func:`kmsnb.storage.check_no_credentials`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from kmsnb._context import describe_context_mismatch
from kmsnb._files import atomic_output
from kmsnb._format.header import CONTENT_TYPE_PARQUET
from kmsnb._key_check import AllowedKeys
from kmsnb.dask._generations import writing_in
from kmsnb.dask._kms_ref import KmsRef
from kmsnb.dask._manifest import (
    META_LABEL,
    PART_NAME,
    ContextItems,
    Manifest,
    PartInfo,
    binding,
    is_reserved,
    part_name,
)
from kmsnb.envelope import inspect, open_decrypt, open_encrypt
from kmsnb.errors import ContextMismatchError, FormatError, IntegrityError
from kmsnb.kms._base import Kms
from kmsnb.storage import is_url, join, open_input, open_output

StorageOptions = Mapping[str, Any] | None

# -- writing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteConfig:
    """Everything a write task needs, and no secret: it is pickled into the task graph.

    ``directory`` is the new generation's folder (or URL prefix), where the tasks put
    their parts; ``storage_options`` are its store's (no credential among them).
    """

    kms: KmsRef
    key_id: str
    encryption_context: ContextItems
    directory: str
    dataset_id: str
    part_count: int
    compression: str | None
    storage_options: StorageOptions = None


class _HashingSink:
    """Passes writes through to ``output`` while counting and hashing them, so that the
    manifest describes the bytes actually written without reading the file again."""

    def __init__(self, output: BinaryIO) -> None:
        self._output = output
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._sha256.update(data)
        self.size += memoryview(data).nbytes
        return self._output.write(data)

    def flush(self) -> None:
        self._output.flush()

    def part_info(self, name: str) -> PartInfo:
        return PartInfo(name, self.size, self._sha256.hexdigest())


def encrypt_frame(frame: Any, config: WriteConfig, label: str, sink: BinaryIO) -> None:
    """Write one pandas frame to ``sink`` as encrypted Parquet, under a fresh data key."""
    table = pa.Table.from_pandas(frame, preserve_index=None)
    context = dict(config.encryption_context) | binding(config.dataset_id, config.part_count, label)
    # One data key per file, so that a leaked one exposes one partition only. open_encrypt
    # asks the KMS on every call; even behind a CachingKms no key is reused, since every
    # file's context differs (kmsnb.part) and a stream of unknown size bypasses the cache.
    writer = open_encrypt(
        sink,
        config.key_id,
        kms=config.kms.connect(),
        encryption_context=context,
        content_type=CONTENT_TYPE_PARQUET,
    )
    with writer:
        pq.write_table(table, writer, compression=config.compression)


def write_part(frame: Any, config: WriteConfig, index: int) -> PartInfo:
    """Encrypt one partition into its file, atomically (a task, on a worker)."""
    name = part_name(index)
    # The generation is ours alone; overwrite=True lets a task that Dask reruns after
    # losing a worker replace its own earlier attempt.
    if is_url(config.directory):
        url = join(config.directory, name)
        with open_output(url, overwrite=True, storage_options=config.storage_options) as output:
            sink = _HashingSink(output)
            encrypt_frame(frame, config, str(index), cast(BinaryIO, sink))
        return sink.part_info(name)
    with (
        writing_in(Path(config.directory)),
        atomic_output(Path(config.directory) / name, overwrite=True, sweep=False) as output,
    ):
        sink = _HashingSink(output)
        encrypt_frame(frame, config, str(index), cast(BinaryIO, sink))
    return sink.part_info(name)


def encrypt_meta(meta: Any, config: WriteConfig) -> bytes:
    """The encrypted ``_meta.parquet.kms``: the empty frame that gives Dask the schema."""
    # In memory (an empty frame: a few KiB), before anything on disk is touched.
    sink = io.BytesIO()
    encrypt_frame(meta, config, META_LABEL, sink)
    return sink.getvalue()


def write_file(
    directory: Path | str, name: str, data: bytes, storage_options: StorageOptions = None
) -> PartInfo:
    """Write ``data`` as a new file ``name`` of the generation, atomically."""
    if isinstance(directory, str) and is_url(directory):
        with open_output(
            join(directory, name), overwrite=False, storage_options=storage_options
        ) as output:
            output.write(data)
    else:
        with atomic_output(Path(directory) / name, overwrite=False, sweep=False) as output:
            output.write(data)
    return PartInfo(name, len(data), hashlib.sha256(data).hexdigest())


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadConfig:
    """Everything a read task needs, and no secret: it is pickled into the task graph.

    ``directory`` is where the files are: the generation's folder (the dataset's own for
    a kmsnb 0.1 dataset).

    ``encryption_context`` comes from the authenticated header of ``_meta.parquet.kms``,
    not from the manifest, which anyone with write access could edit. ``allowed`` is the
    reader's ``allowed_keys``, resolved once, on the client.
    """

    kms: KmsRef
    directory: str
    dataset_id: str
    part_count: int
    encryption_context: ContextItems
    allowed: AllowedKeys | None = None
    storage_options: StorageOptions = None


def check_listing(directory: Path, manifest: Manifest) -> None:
    """Fail early, on the client, on parts missing, extra or of the wrong size."""
    listed = {part.name: part for part in (manifest.meta, *manifest.parts)}
    try:
        present = {entry.name: entry for entry in directory.iterdir()}
    except (FileNotFoundError, NotADirectoryError):
        raise IntegrityError(
            f"{directory}, named by the manifest, is missing; the dataset is incomplete or "
            "was altered"
        ) from None
    missing = [name for name in listed if name not in present]
    if missing:
        raise IntegrityError(
            f"{directory} lacks {', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}, listed in its manifest; the dataset is "
            "incomplete or was altered"
        )
    extra = sorted(name for name in present if PART_NAME.fullmatch(name) and name not in listed)
    if extra:
        raise IntegrityError(
            f"{directory} holds {', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}, "
            "not listed in its manifest; the dataset was altered or mixed with another"
        )
    for name, part in listed.items():
        size = present[name].stat().st_size
        if size != part.size:
            raise IntegrityError(
                f"{name} is {size} bytes, the manifest says {part.size}; the dataset was "
                "altered or mixed with another"
            )


def read_checked(
    directory: Path | str, part: PartInfo, storage_options: StorageOptions = None
) -> bytes:
    """The bytes of ``part``, if their size and SHA-256 are what the manifest says."""
    try:
        if isinstance(directory, str) and is_url(directory):
            url = join(directory, part.name)
            with open_input(url, storage_options=storage_options) as source:
                data = source.read()
        else:
            data = (Path(directory) / part.name).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{part.name} is missing from {directory}; the dataset is incomplete or was altered"
        ) from None
    if len(data) != part.size or hashlib.sha256(data).hexdigest() != part.sha256:
        raise IntegrityError(
            f"{part.name} does not match the manifest (size or SHA-256 differs); the part "
            "was corrupted, altered or replaced"
        )
    return data


def decrypt_checked(
    data: bytes,
    name: str,
    *,
    kms: Kms,
    expected_binding: Mapping[str, str],
    expected_context: Mapping[str, str] | None,
    allowed: AllowedKeys | None,
) -> tuple[pa.Buffer, dict[str, str]]:
    """Check a file's header against where it should be, then decrypt it.

    Returns:
        the verified plaintext and the file's own (caller's) encryption context.
    """
    info = inspect(io.BytesIO(data))
    if info.content_type != CONTENT_TYPE_PARQUET:
        raise FormatError(f"{name} holds {info.content_type!r}, not Parquet")
    found = dict(info.encryption_context)
    found_binding = {key: value for key, value in found.items() if is_reserved(key)}
    if found_binding != expected_binding:
        raise IntegrityError(
            f"{name} belongs to another dataset or another position in it; the dataset "
            "was altered or mixed with another"
        )
    user_context = {key: value for key, value in found.items() if not is_reserved(key)}
    if expected_context is not None and user_context != expected_context:
        mismatch = describe_context_mismatch(expected_context, user_context)
        raise ContextMismatchError(f"{name}: {mismatch}")
    sink = pa.BufferOutputStream()
    # allowed_keys resolved once on the client: no KMS call per part to resolve them.
    reader = open_decrypt(io.BytesIO(data), kms=kms, encryption_context=found, allowed_keys=allowed)
    with reader:
        while block := reader.read_verified():
            sink.write(block)
    return sink.getvalue(), user_context


def read_part(part: PartInfo, config: ReadConfig, columns: list[str] | None = None) -> Any:
    """Read, verify and decrypt one partition (a task, on a worker)."""
    index = int(part.name.split(".")[1])
    directory = config.directory if is_url(config.directory) else Path(config.directory)
    data = read_checked(directory, part, config.storage_options)
    plaintext, _ = decrypt_checked(
        data,
        part.name,
        kms=config.kms.connect(),
        expected_binding=binding(config.dataset_id, config.part_count, str(index)),
        expected_context=dict(config.encryption_context),
        allowed=config.allowed,
    )
    table = pq.read_table(pa.BufferReader(plaintext), columns=columns, use_pandas_metadata=True)
    frame = table.to_pandas()
    # Dask expects the projected columns in the order it asked for.
    return frame if columns is None else frame[list(columns)]
