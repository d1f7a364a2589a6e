"""Datasets on object stores (``s3://``, ``oss://``): the same layout, without rename or locks.

A store has no rename and no ``flock``, so the switch is the manifest itself
(:mod:`kmsnb.storage._generations`): every worker writes its own parts straight to the
store under the fresh generation's prefix (each part an upload published whole, or not at
all); the client writes the manifest last, in one atomic put (a conditional create for a
new dataset); only then is the old generation deleted. At every instant the path holds
the old dataset whole or the new one whole, and readers follow the manifest, never a
listing. Nothing is written on any local disk.

A failed write deletes its generation. A task Dask left running (it cannot stop them) may
still publish a part after that, under a prefix no manifest names; a later write deletes
such generations once they are older than :data:`kmsnb._files.STALE_AFTER_S` (a younger
one may be another writer's, in flight: a store has no lock to tell).

``storage_options`` travel in the task graph (pickled to every worker, shown by the
dashboard), so credentials are refused there: the workers use the store's own chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from kmsnb.dask._manifest import MANIFEST_NAME, META_NAME, Manifest, PartInfo, parse_manifest
from kmsnb.dask._partitions import WriteConfig, encrypt_meta, write_file
from kmsnb.errors import FormatError
from kmsnb.storage import (
    check_no_credentials,
    join,
    read_manifest_bytes,
    remove_generation,
    remove_unreferenced_generations,
    resolve,
    write_manifest,
)

__all__ = ["check_remote", "files_prefix", "read_remote_manifest", "write_remote"]

StorageOptions = Mapping[str, Any] | None


def check_remote(url: str, storage_options: StorageOptions, *, writing: bool) -> str:
    """Refuse what kmsnb cannot write atomically (or read), and credentials in
    ``storage_options``; return the dataset's root URL.

    Raises:
        UnsupportedStorageError: see :func:`kmsnb.storage.resolve`.
        ValueError: a credential in ``storage_options``.
    """
    resolve(url, storage_options=storage_options, writing=writing)
    check_no_credentials(
        storage_options,
        where="would travel in the Dask task graph to every worker (and show in its dashboard)",
    )
    return url.rstrip("/")


def read_remote_manifest(root: str, storage_options: StorageOptions) -> Manifest:
    """The manifest of the dataset at ``root`` (no KMS call).

    Raises:
        FormatError: no manifest, or a malformed one.
    """
    data = read_manifest_bytes(root, MANIFEST_NAME, storage_options=storage_options)
    if data is None:
        raise FormatError(
            f"{root} has no {MANIFEST_NAME}: it is not a kmsnb.dask dataset, or writing it "
            "did not finish; write it again"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    return parse_manifest(text, join(root, MANIFEST_NAME))


def files_prefix(root: str, manifest: Manifest) -> str:
    """Where the manifest's files are: its generation's prefix."""
    if manifest.generation is None:
        raise FormatError(f"{root}: a manifest without a generation is not kmsnb's on a store")
    return join(root, manifest.generation)


def write_remote(
    ddf: Any,
    config: WriteConfig,
    *,
    overwrite: bool,
    compute_parts: Callable[[], tuple[PartInfo, ...]],
) -> Manifest:
    """Write the dataset whose generation is ``config.directory`` (a URL); see the module.

    Raises:
        FileExistsError: a dataset is there and ``overwrite`` is false, or another writer
            replaced it meanwhile (its dataset is kept).
    """
    root, generation = config.directory.rsplit("/", 1)
    options = config.storage_options
    previous = read_manifest_bytes(root, MANIFEST_NAME, storage_options=options)
    if previous is not None and not overwrite:
        raise FileExistsError(
            f"{root} holds a kmsnb.dask dataset; pass overwrite=True to replace it"
        )
    old_generation = _generation_of(previous, root)
    # The meta first, on the client: a refused key or an unreachable KMS fails here,
    # before anything in the store changes or any task runs.
    encrypted_meta = encrypt_meta(ddf._meta, config)
    try:
        meta = write_file(config.directory, META_NAME, encrypted_meta, options)
        manifest = Manifest(
            dataset_id=config.dataset_id,
            key_id=config.key_id,
            encryption_context=dict(config.encryption_context),
            meta=meta,
            parts=compute_parts(),
            generation=generation,
        )
        # A best effort against a writer that finished meanwhile: a store offers no
        # compare-and-swap on the manifest, but a new dataset's is a conditional create.
        if read_manifest_bytes(root, MANIFEST_NAME, storage_options=options) != previous:
            raise FileExistsError(
                f"{root} was written by another writer meanwhile; its dataset was kept"
            )
        write_manifest(
            root,
            MANIFEST_NAME,
            manifest.to_json().encode("utf-8"),
            replace=previous is not None,
            storage_options=options,
        )
    except BaseException:
        # No manifest names this generation: delete what is there (the error to show is
        # the one that stopped the write).
        with contextlib.suppress(Exception):
            remove_generation(root, generation, storage_options=options)
        raise
    # The dataset is switched; deleting the old one may fail without harm (a later
    # write deletes it then, as a stale generation no manifest names).
    with contextlib.suppress(OSError):
        if old_generation is not None and old_generation != generation:
            remove_generation(root, old_generation, storage_options=options)
        remove_unreferenced_generations(root, keep=generation, storage_options=options)
    return manifest


def _generation_of(manifest: bytes | None, root: str) -> str | None:
    """The generation the manifest there now names, if it parses."""
    if manifest is None:
        return None
    try:
        return parse_manifest(manifest.decode("utf-8"), join(root, MANIFEST_NAME)).generation
    except (FormatError, UnicodeDecodeError):
        return None  # replaced whole; its files are swept once stale
