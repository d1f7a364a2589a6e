"""Encrypted Parquet datasets for Dask: one envelope-encrypted file per partition.

::

    import kmsnb.dask
    kmsnb.dask.to_parquet(ddf, "sales.kmsds", "alias/Apollo/WorkKey", kms_uri="aliyun:cn-hangzhou")
    ddf = kmsnb.dask.read_parquet("sales.kmsds", kms_uri="aliyun:cn-hangzhou")

Works on ``dask.distributed`` and on Dask's default (threaded) scheduler. A dataset is a
directory holding one *generation* of files and a manifest that names it::

    _kmsnb_manifest.json           written last: names the generation, lists its files
    gen-<dataset id>/              the generation (one per write)
        part.00000.parquet.kms     one partition: Parquet, envelope-encrypted (kmsnb format)
        part.00001.parquet.kms     ... each under its own data key
        _meta.parquet.kms          the Dask meta (an empty frame: column names and dtypes),
                                   encrypted with the same master key

The manifest (``format_version`` 2) is a JSON object: ``format``
(``"kmsnb-dask-parquet"``), ``format_version``, ``dataset_id`` (32 hex digits),
``generation`` (``gen-`` and 32 hex digits: the folder of the files, beside the manifest),
``key_id``, ``encryption_context`` (the caller's), ``part_count``, ``meta`` and ``parts``
(each ``{"name", "size", "sha256"}``, names fixed by position). Datasets written by kmsnb
0.1 (``format_version`` 1, no ``generation``) keep their files beside the manifest and are
still read; the next overwrite moves them to the new layout.

**The manifest holds no secret and no column name.** Column names can say a lot about the
data (``hiv_status``), so the schema lives in the encrypted ``_meta.parquet.kms`` and the
manifest keeps only facts an observer of the directory could learn anyway or that are
public by the KMS's rules: the format, a random dataset id, the master key id, the
encryption context (which the KMS logs in clear), and each file's name, size and SHA-256.

**Binding.** Every file's encryption context is the caller's plus three reserved keys,
``kmsnb.dataset`` (the dataset id), ``kmsnb.parts`` (the number of parts) and
``kmsnb.part`` (the part's index, or ``meta``). The context is authenticated in each
file's header and by the KMS, so a part swapped with another, taken from another dataset,
or dropped together with a rewritten manifest is refused even though the manifest itself
is not signed. The SHA-256 in the manifest is a cheaper first check with a clearer message.

**Secrets stay out of the task graph.** Tasks carry a small frozen configuration: the KMS
URI, the key id, the encryption context and the dataset's layout. Each worker process
connects to the KMS itself from the URI (once, see :func:`_connect`), asks it for a fresh
data key per partition, and wipes it after use. The URI is resolved once on the client,
so every worker talks to the same KMS. A live client (``kms=``) cannot be shipped to other
processes: it is accepted only with Dask's in-process schedulers.

**Atomicity.** Each write makes a new generation folder beside whatever is there, and
each of its files appears only once complete (see :mod:`kmsnb._files`). The manifest is
written last and switches the dataset in one step: it is replaced by a rename, so at
every instant the path holds the old dataset whole or the new one whole, whatever
happens (``kill -9``, a full disk, a KMS outage halfway). Only then is the old generation
removed, with any leftovers of writes that were killed (generations no manifest names).
A writer holds a lock (``flock``) on its generation until it is done, so another
writer's sweep never takes it for a leftover, and so does each task while it writes its
part, so that a failed write removes its generation only after the tasks Dask left
running (it cannot stop them) are done. Without a manifest a directory is not a
dataset; one that holds only such leftovers is written again without ``overwrite``. A
reader already reading the old dataset when it was replaced fails with
:class:`~kmsnb.errors.IntegrityError`; it never mixes parts.
Only files and folders kmsnb wrote are ever removed. The scheme needs no rename but the
manifest's, so object stores can keep it (generation prefixes, the manifest put last).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, cast

try:
    import dask.dataframe as dd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.base import compute, get_scheduler
    from dask.delayed import delayed
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "kmsnb.dask needs dask[dataframe] and pyarrow; did you forget to install kmsnb[dask]?"
    ) from error

from kmsnb._files import atomic_output, fsync_directory, is_temporary_name
from kmsnb._format.header import CONTENT_TYPE_PARQUET
from kmsnb._key_check import AllowedKeys, resolve_allowed_keys
from kmsnb.envelope import _open_decrypt, inspect, open_encrypt
from kmsnb.errors import ContextMismatchError, FormatError, IntegrityError
from kmsnb.kms._base import Kms, canonical_context

__all__ = ["Manifest", "PartInfo", "read_manifest", "read_parquet", "to_parquet"]

#: The manifest's name; a directory without one is not a dataset (yet).
MANIFEST_NAME: Final = "_kmsnb_manifest.json"
#: The encrypted Dask meta (column names and dtypes).
META_NAME: Final = "_meta.parquet.kms"
MANIFEST_FORMAT: Final = "kmsnb-dask-parquet"
MANIFEST_VERSION: Final = 2
#: kmsnb 0.1's manifests: no generation, the files beside the manifest.
_FLAT_MANIFEST_VERSION: Final = 1

#: Encryption-context keys kmsnb sets itself; callers may not use this prefix.
RESERVED_CONTEXT_PREFIX: Final = "kmsnb."
_DATASET_KEY: Final = "kmsnb.dataset"
_PART_COUNT_KEY: Final = "kmsnb.parts"
_PART_KEY: Final = "kmsnb.part"
_META_LABEL: Final = "meta"

_PART_NAME = re.compile(r"part\.(\d+)\.parquet\.kms")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DATASET_ID = re.compile(r"[0-9a-f]{32}")
_GENERATION = re.compile(r"gen-[0-9a-f]{32}")

StrPath = str | os.PathLike[str]
ContextItems = tuple[tuple[str, str], ...]


def _part_name(index: int) -> str:
    return f"part.{index:05d}.parquet.kms"


def _generation_name(dataset_id: str) -> str:
    return f"gen-{dataset_id}"


# -- the manifest ----------------------------------------------------------------------


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
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    return _parse_manifest(document, directory)


def _parse_manifest(document: object, directory: Path) -> Manifest:
    def malformed(what: str) -> FormatError:
        return FormatError(
            f"{directory / MANIFEST_NAME} is malformed ({what}); the dataset was not "
            "written by kmsnb.dask or was altered"
        )

    if not isinstance(document, dict):
        raise malformed("not a JSON object")
    if document.get("format") != MANIFEST_FORMAT:
        raise malformed(f"format is not {MANIFEST_FORMAT!r}")
    version = document.get("format_version")
    if version not in (MANIFEST_VERSION, _FLAT_MANIFEST_VERSION) or type(version) is not int:
        raise malformed(f"unsupported format_version {version!r}")
    dataset_id = document.get("dataset_id")
    if not isinstance(dataset_id, str) or not _DATASET_ID.fullmatch(dataset_id):
        raise malformed("bad dataset_id")
    generation = document.get("generation")
    if version == _FLAT_MANIFEST_VERSION:
        if generation is not None:
            raise malformed("a generation in a format_version 1 manifest")
    elif not isinstance(generation, str) or not _GENERATION.fullmatch(generation):
        # Checked, not merely read: the manifest must not point a reader elsewhere.
        raise malformed("bad generation")
    key_id = document.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise malformed("bad key_id")
    context = document.get("encryption_context")
    if not isinstance(context, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and not _is_reserved(key)
        for key, value in context.items()
    ):
        raise malformed("bad encryption_context")
    raw_parts = document.get("parts")
    part_count = document.get("part_count")
    if not isinstance(raw_parts, list) or not raw_parts or part_count != len(raw_parts):
        raise malformed("part_count and parts disagree")

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
        parts=tuple(part(entry, _part_name(i)) for i, entry in enumerate(raw_parts)),
        generation=generation,
    )


# -- how tasks find the KMS --------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _connect(kms_uri: str) -> Kms:
    """The KMS client of this process for ``kms_uri``: one per worker, not one per task.

    Workers resolve their own credentials (the Alibaba Cloud default chain: environment,
    profile, RAM role) when they connect, so no AccessKey ever travels in a task. Two
    threads of one worker may race to connect first; the spare client is dropped.
    """
    from kmsnb.connection import connect

    return connect(kms_uri)


def _resolve_kms_uri(kms_uri: str | None) -> str:
    """Pin ``kms_uri`` down on the client so that every worker uses the same KMS.

    ``None`` becomes ``$KMSNB_KMS`` or the local emulator's default store (what
    :func:`kmsnb.connect` does), and a ``local:`` path becomes absolute, since
    worker processes need not share the client's working directory or environment.
    """
    from kmsnb.connection import KMS_URI_ENV

    if kms_uri is None:
        kms_uri = os.environ.get(KMS_URI_ENV) or "local:"
    if not isinstance(kms_uri, str):
        raise TypeError(f"kms_uri must be str, not {type(kms_uri).__name__}")
    kms_uri = kms_uri.strip()
    scheme, _, rest = kms_uri.partition(":")
    if scheme.lower() == "local":
        if rest:
            store = Path(rest).expanduser()
        else:
            from kmsnb.emulator import default_store_dir

            store = default_store_dir()
        return f"local:{store.absolute()}"
    if "@" in kms_uri.partition("://")[2].partition("/")[0]:
        # user:password@host would put a credential into every task of the graph.
        raise ValueError(
            "kms_uri must not carry credentials (user:password@); workers find their "
            "own through the Alibaba Cloud credentials chain"
        )
    return kms_uri


@dataclass(frozen=True)
class _KmsRef:
    """How a task reaches the KMS: a URI each process connects to, or a live client.

    A live client is allowed only with in-process schedulers. It refuses to be pickled,
    so that it can never reach another process, where it would carry its credentials
    (or, for a test KMS, its master keys).
    """

    uri: str | None
    client: Kms | None = field(default=None, compare=False, repr=False)

    def connect(self) -> Kms:
        if self.client is not None:
            return self.client
        if self.uri is None:
            raise AssertionError("kmsnb: internal error: a KMS reference with neither")
        return _connect(self.uri)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.client is not None:
            raise TypeError(
                "a kms= client cannot be sent to other processes; with dask.distributed "
                "or the processes scheduler, pass kms_uri= so that each worker connects"
            )
        return (_KmsRef, (self.uri,))

    def __dask_tokenize__(self) -> object:
        # Without this, Dask would try to pickle the live client to hash it.
        return ("kmsnb.dask._KmsRef", self.uri, None if self.client is None else id(self.client))


def _kms_ref(kms_uri: str | None, kms: Kms | None) -> _KmsRef:
    if kms is None:
        return _KmsRef(_resolve_kms_uri(kms_uri))
    if kms_uri is not None:
        raise ValueError("pass either kms_uri= or kms=, not both")
    if not isinstance(kms, Kms):
        raise TypeError("kms must be a KMS client (kmsnb.connect() or kmsnb.testing.InMemoryKms)")
    _check_in_process_scheduler()
    return _KmsRef(None, kms)


def _check_in_process_scheduler() -> None:
    import dask.local
    import dask.threaded

    # dask's own annotations are partial: these calls are untyped.
    scheduler = get_scheduler()  # type: ignore[no-untyped-call]
    if scheduler is None or scheduler in (dask.threaded.get, dask.local.get_sync):
        return
    raise ValueError(
        "kms= works only with Dask's in-process schedulers (threads or synchronous): a "
        "live KMS client cannot be sent to workers; pass kms_uri= (for example "
        "'local:/path/to/store' or 'aliyun:cn-hangzhou') so that each worker connects"
    )


# -- encryption contexts -----------------------------------------------------------------


def _is_reserved(key: str) -> bool:
    return key.startswith(RESERVED_CONTEXT_PREFIX)


def _user_context(encryption_context: Mapping[str, str] | None) -> ContextItems:
    context = canonical_context(encryption_context)
    reserved = sorted(key for key in context if _is_reserved(key))
    if reserved:
        raise ValueError(
            f"encryption context keys starting with {RESERVED_CONTEXT_PREFIX!r} are kmsnb's "
            f"own ({', '.join(map(repr, reserved))}); rename them"
        )
    return tuple(sorted(context.items()))


def _binding(dataset_id: str, part_count: int, label: str) -> dict[str, str]:
    return {_DATASET_KEY: dataset_id, _PART_COUNT_KEY: str(part_count), _PART_KEY: label}


# -- writing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _WriteConfig:
    """Everything a write task needs, and no secret: it is pickled into the task graph.

    ``directory`` is the new generation's folder, where the tasks put their parts.
    """

    kms: _KmsRef
    key_id: str
    encryption_context: ContextItems
    directory: str
    dataset_id: str
    part_count: int
    compression: str | None


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


def _encrypt_frame(frame: Any, config: _WriteConfig, label: str, sink: BinaryIO) -> None:
    """Write one pandas frame to ``sink`` as encrypted Parquet, under a fresh data key."""
    table = pa.Table.from_pandas(frame, preserve_index=None)
    context = dict(config.encryption_context) | _binding(
        config.dataset_id, config.part_count, label
    )
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


def _write_part(frame: Any, config: _WriteConfig, index: int) -> PartInfo:
    """Encrypt one partition into its file, atomically (a task, on a worker)."""
    name = _part_name(index)
    # The generation is ours alone; overwrite=True lets a task that Dask reruns after
    # losing a worker replace its own earlier attempt.
    with (
        _writing_in(Path(config.directory)),
        atomic_output(Path(config.directory) / name, overwrite=True, sweep=False) as output,
    ):
        sink = _HashingSink(output)
        _encrypt_frame(frame, config, str(index), cast(BinaryIO, sink))
    return sink.part_info(name)


@contextlib.contextmanager
def _writing_in(generation: Path) -> Iterator[None]:
    """Hold a shared lock on ``generation`` while a task writes in it.

    When a task fails, Dask raises at once, but the other tasks already running go on
    (neither threads nor distributed workers can be stopped) and may add their parts
    later. :func:`_remove_generation` takes the lock exclusively, so it waits for them;
    a task that starts after the removal finds no folder and writes nothing.
    """
    fd = os.open(generation, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _encrypt_meta(meta: Any, config: _WriteConfig) -> bytes:
    # In memory (an empty frame: a few KiB), before anything on disk is touched.
    sink = io.BytesIO()
    _encrypt_frame(meta, config, _META_LABEL, sink)
    return sink.getvalue()


def _write_file(directory: Path, name: str, data: bytes) -> PartInfo:
    with atomic_output(directory / name, overwrite=False, sweep=False) as output:
        output.write(data)
    return PartInfo(name, len(data), hashlib.sha256(data).hexdigest())


def _is_our_file(entry: Path) -> bool:
    name = entry.name
    if entry.is_symlink() or not entry.is_file():
        return False
    return (
        name in (MANIFEST_NAME, META_NAME)
        or _PART_NAME.fullmatch(name) is not None
        or is_temporary_name(name)
    )


def _is_ours(entry: Path) -> bool:
    """A file kmsnb.dask writes, or a generation folder holding nothing else."""
    if _GENERATION.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
        return all(_is_our_file(inner) for inner in entry.iterdir())
    return _is_our_file(entry)


def _check_target(directory: Path, *, overwrite: bool) -> bytes | None:
    """Refuse a target that is not ours to fill, before any KMS call or change on disk.

    Returns:
        the manifest there now (``None`` if none), so that the switch can tell whether
        another writer replaced it meanwhile.
    """
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    entries = list(directory.iterdir()) if directory.exists() else []
    foreign = sorted(entry.name for entry in entries if not _is_ours(entry))
    manifest = _read_manifest_bytes(directory)
    # Leftovers of a write that never finished (no manifest) are not a dataset to keep.
    if not overwrite and (foreign or manifest is not None):
        raise FileExistsError(
            f"{directory} is not empty; pass overwrite=True to replace a dataset there"
        )
    if foreign:
        shown = ", ".join(map(repr, foreign[:3])) + (", ..." if len(foreign) > 3 else "")
        raise FileExistsError(
            f"{directory} holds files kmsnb.dask did not write ({shown}); even with "
            "overwrite=True they are kept: remove them or choose another path"
        )
    return manifest


def _read_manifest_bytes(directory: Path) -> bytes | None:
    try:
        return (directory / MANIFEST_NAME).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _new_generation(directory: Path, generation: str) -> tuple[bool, int]:
    """Create ``directory`` if needed and the new generation in it, locked while it is
    written; return whether ``directory`` was created, and the lock's descriptor."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / generation
    folder.mkdir()  # a fresh random name: never an existing folder
    fsync_directory(directory)  # the folder exists on disk before a manifest names it
    # The lock tells a concurrent writer's sweep that this generation is not a leftover;
    # the kernel drops it when this process dies, kill -9 included. Shared, as the tasks'
    # (see _writing_in): a sweep needs it exclusive, and flock locks of two descriptors
    # conflict even within one process.
    lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(lock, fcntl.LOCK_SH)
    return created, lock


def _is_abandoned(folder: Path) -> bool:
    """Whether no live writer or task holds ``folder`` (see :func:`_new_generation`)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _switch_manifest(directory: Path, manifest: Manifest, *, previous: bytes | None) -> None:
    """Publish ``manifest`` in one step: a rename over the old one, if it is still there.

    A manifest that changed since :func:`_check_target` means another writer finished
    meanwhile; replacing it would publish over a dataset it may still be reading.
    """
    if _read_manifest_bytes(directory) != previous:
        raise FileExistsError(
            f"{directory} was written by another writer meanwhile; its dataset was kept"
        )
    data = manifest.to_json().encode("utf-8")
    with atomic_output(directory / MANIFEST_NAME, overwrite=previous is not None) as output:
        output.write(data)


def _remove_generation(folder: Path) -> None:
    """Remove a generation once no task writes in it any more (see :func:`_writing_in`).

    The caller must not hold the generation's lock itself: this would wait for it.
    """
    try:
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            for entry in folder.iterdir():
                if _is_our_file(entry):
                    entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # kept if something foreign appeared in it
    finally:
        os.close(lock)


def _remove_leftovers(directory: Path, *, keep: str) -> None:
    """After the switch: remove older generations, 0.1's flat files and killed writes'
    generations. Temporary files are left to atomic_output's sweep: a live one may
    belong to another writer."""
    for entry in directory.iterdir():
        name = entry.name
        if name in (MANIFEST_NAME, keep) or is_temporary_name(name):
            continue
        if _GENERATION.fullmatch(name) and entry.is_dir() and not entry.is_symlink():
            if _is_abandoned(entry):
                _remove_generation(entry)
        elif _is_our_file(entry):
            entry.unlink(missing_ok=True)
    fsync_directory(directory)


def _write_tasks(ddf: Any, config: _WriteConfig) -> list[Any]:
    """One delayed write per partition (kept apart so tests can inspect the graph)."""
    write = delayed(_write_part, pure=False)
    return [
        write(partition, config, index, dask_key_name=f"kmsnb-write-{config.dataset_id}-{index}")
        for index, partition in enumerate(ddf.to_delayed())
    ]


def _plan_write(
    ddf: Any,
    path: StrPath,
    key_id: str,
    *,
    kms_uri: str | None,
    kms: Kms | None,
    encryption_context: Mapping[str, str] | None,
    compression: str | None,
) -> _WriteConfig:
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(
            f"ddf must be a dask DataFrame, not {type(ddf).__name__} (for a Series, "
            "use .to_frame())"
        )
    if not isinstance(key_id, str) or not key_id:
        raise ValueError("key_id must be a non-empty str")
    dataset_id = uuid.uuid4().hex
    return _WriteConfig(
        kms=_kms_ref(kms_uri, kms),
        key_id=key_id,
        encryption_context=_user_context(encryption_context),
        directory=str(Path(path).absolute() / _generation_name(dataset_id)),
        dataset_id=dataset_id,
        part_count=ddf.npartitions,
        compression=compression,
    )


def to_parquet(
    ddf: Any,
    path: StrPath,
    key_id: str,
    *,
    kms_uri: str | None = None,
    kms: Kms | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    compression: str | None = "snappy",
) -> Manifest:
    """Write ``ddf`` as an encrypted dataset: one file per partition, each its own data key.

    Computes ``ddf`` on the current scheduler (a ``dask.distributed`` client if one is
    active). Each worker connects to the KMS from ``kms_uri`` and encrypts its partitions;
    the manifest is written last, once every part is in place.

    Args:
        ddf: a dask DataFrame.
        path: the dataset directory; created if missing.
        key_id: the master key: an id, ``alias/...`` or ARN.
        kms_uri: where the KMS is (see :func:`kmsnb.connect`); by default
            ``$KMSNB_KMS``, else the local emulator. Resolved once, here, to one URI
            that every worker uses.
        kms: a live KMS client instead of ``kms_uri``, for Dask's in-process
            schedulers only (threads, synchronous).
        encryption_context: strings bound to every file; the same must be given (or
            none) to read. Keys starting with ``kmsnb.`` are reserved.
        overwrite: replace a kmsnb dataset already at ``path``, in one step: until the
            new one is complete the old one stays whole. Files kmsnb did not write are
            never removed.
        compression: the Parquet codec inside the encryption (``None`` for none).

    Returns:
        the manifest written.

    Raises:
        FileExistsError: ``path`` is not empty and ``overwrite`` is false, or holds
            files that are not part of a kmsnb dataset.
        ValueError: ``kms=`` with a distributed or multiprocessing scheduler.
        KmsError: the KMS refused or failed to make a data key; the dataset already
            at ``path`` (if any) is kept, and the parts written so far are removed.
    """
    config = _plan_write(
        ddf,
        path,
        key_id,
        kms_uri=kms_uri,
        kms=kms,
        encryption_context=encryption_context,
        compression=compression,
    )
    generation = Path(config.directory)
    directory = generation.parent
    previous = _check_target(directory, overwrite=overwrite)
    # The meta first, on the client: a refused key or an unreachable KMS fails here,
    # before anything on disk changes or any task runs.
    encrypted_meta = _encrypt_meta(ddf._meta, config)
    created, lock = _new_generation(directory, generation.name)
    try:
        meta = _write_file(generation, META_NAME, encrypted_meta)
        parts: tuple[PartInfo, ...] = tuple(
            compute(*_write_tasks(ddf, config))  # type: ignore[no-untyped-call]
        )
        manifest = Manifest(
            dataset_id=config.dataset_id,
            key_id=config.key_id,
            encryption_context=dict(config.encryption_context),
            meta=meta,
            parts=parts,
            generation=generation.name,
        )
        _switch_manifest(directory, manifest, previous=previous)
    except BaseException:
        os.close(lock)
        # Waits for the tasks still running: they would add parts after the removal.
        # No manifest names this generation; if this process dies meanwhile, the next
        # write removes what remains.
        _remove_generation(generation)
        if created and not any(directory.iterdir()):
            directory.rmdir()
        raise
    os.close(lock)
    _remove_leftovers(directory, keep=generation.name)
    return manifest


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReadConfig:
    """Everything a read task needs, and no secret: it is pickled into the task graph.

    ``directory`` is where the files are: the generation's folder (the dataset's own for
    a kmsnb 0.1 dataset).

    ``encryption_context`` comes from the authenticated header of ``_meta.parquet.kms``,
    not from the manifest, which anyone with write access could edit. ``allowed`` is the
    reader's ``allowed_keys``, resolved once, on the client.
    """

    kms: _KmsRef
    directory: str
    dataset_id: str
    part_count: int
    encryption_context: ContextItems
    allowed: AllowedKeys | None = None


def _check_listing(directory: Path, manifest: Manifest) -> None:
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
    extra = sorted(name for name in present if _PART_NAME.fullmatch(name) and name not in listed)
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


def _read_checked(directory: Path, part: PartInfo) -> bytes:
    try:
        data = (directory / part.name).read_bytes()
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


def _decrypt_checked(
    data: bytes,
    name: str,
    *,
    kms: Kms,
    binding: Mapping[str, str],
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
    found_binding = {key: value for key, value in found.items() if _is_reserved(key)}
    if found_binding != binding:
        raise IntegrityError(
            f"{name} belongs to another dataset or another position in it; the dataset "
            "was altered or mixed with another"
        )
    user_context = {key: value for key, value in found.items() if not _is_reserved(key)}
    if expected_context is not None and user_context != expected_context:
        differing = sorted(
            key
            for key in expected_context.keys() | user_context.keys()
            if expected_context.get(key) != user_context.get(key)
        )
        raise ContextMismatchError(
            f"the encryption context of {name} differs from the one given, at key(s) "
            f"{', '.join(map(repr, differing))}; check which dataset this is"
        )
    sink = pa.BufferOutputStream()
    reader = _open_decrypt(io.BytesIO(data), kms=kms, encryption_context=found, allowed=allowed)
    with reader:
        while block := reader.read_verified():
            sink.write(block)
    return sink.getvalue(), user_context


def _read_part(part: PartInfo, config: _ReadConfig, columns: list[str] | None = None) -> Any:
    """Read, verify and decrypt one partition (a task, on a worker)."""
    index = int(part.name.split(".")[1])
    data = _read_checked(Path(config.directory), part)
    plaintext, _ = _decrypt_checked(
        data,
        part.name,
        kms=config.kms.connect(),
        binding=_binding(config.dataset_id, config.part_count, str(index)),
        expected_context=dict(config.encryption_context),
        allowed=config.allowed,
    )
    table = pq.read_table(pa.BufferReader(plaintext), columns=columns, use_pandas_metadata=True)
    frame = table.to_pandas()
    # Dask expects the projected columns in the order it asked for.
    return frame if columns is None else frame[list(columns)]


def read_parquet(
    path: StrPath,
    *,
    kms_uri: str | None = None,
    kms: Kms | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
) -> Any:
    """Open an encrypted dataset written by :func:`to_parquet` as a lazy dask DataFrame.

    The manifest and the directory listing are checked here, and the encrypted meta is
    decrypted here (one KMS call) to learn the columns. The partitions are read, checked
    against the manifest and decrypted by the workers when the frame is computed. The
    divisions are unknown.

    Args:
        path: the dataset directory.
        kms_uri: where the KMS is; see :func:`to_parquet`.
        kms: a live KMS client, for Dask's in-process schedulers only.
        columns: read only these columns.
        encryption_context: the context the dataset was written with; if given, a
            dataset with another one is refused.
        allowed_keys: the master keys (ids, aliases or ARNs) every file may be under,
            resolved through the KMS here, once; ``None`` accepts the key each names.

    Raises:
        FormatError: no manifest, or a malformed one.
        IntegrityError: a part missing, extra, altered or from another dataset (parts
            are hashed and authenticated when computed, so this may also come then).
        ContextMismatchError: ``encryption_context`` differs from the dataset's.
        WrongKeyError, KmsError: the KMS would not unwrap the data keys, or unwrapped one
            with another key than its file names or one outside ``allowed_keys``.
        ValueError: ``kms=`` with a distributed or multiprocessing scheduler.
    """
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(name, str) for name in columns):
            raise TypeError("columns must be a list of column names")
        if not columns:
            # Dask's from_map reads every column for an empty projection (dask 2026.8).
            raise ValueError("columns must name at least one column; None reads them all")
    dataset = Path(path).absolute()
    manifest = read_manifest(dataset)
    directory = manifest.files_directory(dataset)
    _check_listing(directory, manifest)
    kms_ref = _kms_ref(kms_uri, kms)
    expected_context = (
        None if encryption_context is None else dict(_user_context(encryption_context))
    )
    client = kms_ref.connect()
    allowed = resolve_allowed_keys(client, allowed_keys)
    plaintext, context = _decrypt_checked(
        _read_checked(directory, manifest.meta),
        META_NAME,
        kms=client,
        binding=_binding(manifest.dataset_id, manifest.part_count, _META_LABEL),
        expected_context=expected_context,
        allowed=allowed,
    )
    meta = pq.read_table(pa.BufferReader(plaintext), use_pandas_metadata=True).to_pandas()
    if columns is not None:
        unknown = [name for name in columns if name not in meta.columns]
        if unknown:
            raise ValueError(f"no column(s) {unknown!r} in {dataset}")
    config = _ReadConfig(
        kms=kms_ref,
        directory=str(directory),
        dataset_id=manifest.dataset_id,
        part_count=manifest.part_count,
        encryption_context=tuple(sorted(context.items())),
        allowed=allowed,
    )
    frame = dd.from_map(  # type: ignore[no-untyped-call]
        _read_part,
        list(manifest.parts),
        args=[config],
        meta=meta,
        label="kmsnb-read-parquet",
        enforce_metadata=False,
    )
    # A plain selection: Dask's optimizer pushes it down into _read_part's columns=.
    return frame if columns is None else frame[list(columns)]
