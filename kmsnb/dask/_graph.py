"""Graph building: :func:`to_parquet` and :func:`read_parquet`, on the client.

Like Dask's own ``io/parquet/core.py``: checks and plans on the client, one task per
partition (:mod:`._partitions` does the work), the manifest and the switch between
generations (:mod:`._generations`) once every task is done. The meta is encrypted and
decrypted here, so that a refused key or an unreachable KMS fails before anything on disk
changes or any task runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pyarrow as pa
import pyarrow.parquet as pq
from dask.base import compute
from dask.delayed import delayed

from kmsnb._key_check import resolve_allowed_keys
from kmsnb._keynames import resolve_key_name
from kmsnb.dask._generations import (
    check_target,
    new_generation,
    remove_generation,
    remove_leftovers,
    switch_manifest,
)
from kmsnb.dask._kms_ref import fold_kms_uri, kms_reference
from kmsnb.dask._manifest import (
    META_LABEL,
    META_NAME,
    Manifest,
    PartInfo,
    StrPath,
    binding,
    generation_name,
    read_manifest,
    user_context,
)
from kmsnb.dask._partitions import (
    ReadConfig,
    WriteConfig,
    check_listing,
    decrypt_checked,
    encrypt_meta,
    read_checked,
    read_part,
    write_file,
    write_part,
)
from kmsnb.dask._remote import check_remote, files_prefix, read_remote_manifest, write_remote
from kmsnb.kms._base import Kms
from kmsnb.storage import is_url, join


def write_tasks(ddf: Any, config: WriteConfig) -> list[Any]:
    """One delayed write per partition (kept apart so tests can inspect the graph)."""
    write = delayed(write_part, pure=False)
    return [
        write(partition, config, index, dask_key_name=f"kmsnb-write-{config.dataset_id}-{index}")
        for index, partition in enumerate(ddf.to_delayed())
    ]


def plan_write(
    ddf: Any,
    path: StrPath,
    key_id: str,
    *,
    kms: Kms | str | None,
    encryption_context: Mapping[str, str] | None,
    compression: str | None,
    storage_options: Mapping[str, Any] | None = None,
) -> WriteConfig:
    """Check the arguments and fix what every task will carry (no secret among it)."""
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(
            f"ddf must be a dask DataFrame, not {type(ddf).__name__} (for a Series, "
            "use .to_frame())"
        )
    dataset_id = uuid.uuid4().hex
    if is_url(path):
        root = check_remote(str(path), storage_options, writing=True)
        directory = join(root, generation_name(dataset_id))
    else:
        if storage_options is not None:
            raise ValueError("storage_options is only for fsspec URLs (s3://..., oss://...)")
        directory = str(Path(path).absolute() / generation_name(dataset_id))
    return WriteConfig(
        kms=kms_reference(kms),
        key_id=resolve_key_name(key_id),
        encryption_context=user_context(encryption_context),
        directory=directory,
        dataset_id=dataset_id,
        part_count=ddf.npartitions,
        compression=compression,
        storage_options=storage_options,
    )


def to_parquet(
    ddf: Any,
    path: StrPath,
    key_id: str,
    *,
    kms: Kms | str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    compression: str | None = "snappy",
    kms_uri: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write ``ddf`` as an encrypted dataset: one file per partition, each its own data key.

    Computes ``ddf`` on the current scheduler (a ``dask.distributed`` client if one is
    active). Each worker connects to the KMS from its URI and encrypts its partitions;
    the manifest is written last, once every part is in place.

    Args:
        ddf: a dask DataFrame.
        path: the dataset directory; created if missing. Or an object store's URL
            (``s3://bucket/sales.kmsds``, ``oss://...``): each worker writes its parts
            straight to the store, nothing touches a local disk (:mod:`._remote`).
        key_id: the master key: an id, ``alias/NAME`` or an ARN; a bare ``NAME`` means
            ``alias/NAME`` (:func:`kmsnb._keynames.resolve_key_name`).
        kms: the KMS, as :func:`kmsnb.connect` takes it. A URI (``local:PATH``,
            ``aliyun:REGION``, ``https://...``) works on every scheduler: it is resolved
            once, here, to one URI that every worker connects to. A client object works
            only with Dask's in-process schedulers (threads, synchronous). ``None``
            follows the session (:func:`kmsnb.session.get_kms_uri`: ``$KMSNB_KMS``, else
            the local emulator, or the client given to ``kmsnb.session.set_kms``).
        encryption_context: strings bound to every file; the same must be given (or
            none) to read. Keys starting with ``kmsnb.`` are reserved.
        overwrite: replace a kmsnb dataset already at ``path``, in one step: until the
            new one is complete the old one stays whole. Files kmsnb did not write are
            never removed.
        compression: the Parquet codec inside the encryption (``None`` for none).
        kms_uri: deprecated: the same as ``kms=`` with a URI.
        storage_options: for a URL, the store's options (``endpoint_url``, ``region``...),
            sent to every worker: credentials (``key``, ``secret``, ``token``) are refused,
            the workers take them from the store's chain (environment, profile, role).

    Returns:
        the manifest written.

    Raises:
        FileExistsError: ``path`` is not empty and ``overwrite`` is false, or holds
            files that are not part of a kmsnb dataset.
        ValueError: a KMS client object with a distributed or multiprocessing scheduler,
            or a credential in ``storage_options``.
        UnsupportedStorageError: a URL kmsnb cannot write atomically, before anything.
        KmsError: the KMS refused or failed to make a data key; the dataset already
            at ``path`` (if any) is kept, and the parts written so far are removed.
    """
    config = plan_write(
        ddf,
        path,
        key_id,
        kms=fold_kms_uri(kms, kms_uri),
        encryption_context=encryption_context,
        compression=compression,
        storage_options=storage_options,
    )
    if is_url(config.directory):
        return write_remote(
            ddf,
            config,
            overwrite=overwrite,
            compute_parts=lambda: tuple(compute(*write_tasks(ddf, config))),  # type: ignore[no-untyped-call]
        )
    generation = Path(config.directory)
    directory = generation.parent
    previous = check_target(directory, overwrite=overwrite)
    # The meta first, on the client: a refused key or an unreachable KMS fails here,
    # before anything on disk changes or any task runs.
    encrypted_meta = encrypt_meta(ddf._meta, config)
    created, lock = new_generation(directory, generation.name)
    try:
        meta = write_file(generation, META_NAME, encrypted_meta)
        parts: tuple[PartInfo, ...] = tuple(
            compute(*write_tasks(ddf, config))  # type: ignore[no-untyped-call]
        )
        manifest = Manifest(
            dataset_id=config.dataset_id,
            key_id=config.key_id,
            encryption_context=dict(config.encryption_context),
            meta=meta,
            parts=parts,
            generation=generation.name,
        )
        switch_manifest(directory, manifest, previous=previous)
    except BaseException:
        os.close(lock)
        # Waits for the tasks still running: they would add parts after the removal.
        # No manifest names this generation; if this process dies meanwhile, the next
        # write removes what remains.
        remove_generation(generation)
        if created and not any(directory.iterdir()):
            directory.rmdir()
        raise
    os.close(lock)
    remove_leftovers(directory, keep=generation.name)
    return manifest


def read_parquet(
    path: StrPath,
    *,
    kms: Kms | str | None = None,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    kms_uri: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Open an encrypted dataset written by :func:`to_parquet` as a lazy dask DataFrame.

    The manifest and the directory listing are checked here, and the encrypted meta is
    decrypted here (one KMS call) to learn the columns. The partitions are read, checked
    against the manifest and decrypted by the workers when the frame is computed. The
    divisions are unknown.

    Args:
        path: the dataset directory, or its URL (each worker reads its parts from the
            store; the manifest, not a listing, names them).
        kms: the KMS: a URI, or a client object for Dask's in-process schedulers only;
            see :func:`to_parquet`.
        columns: read only these columns.
        encryption_context: the context the dataset was written with; if given, a
            dataset with another one is refused.
        allowed_keys: the master keys (ids, aliases or ARNs) every file may be under,
            resolved through the KMS here, once; ``None`` accepts the key each names.
        kms_uri: deprecated: the same as ``kms=`` with a URI.
        storage_options: for a URL, as for :func:`to_parquet` (no credentials).

    Raises:
        FormatError: no manifest, or a malformed one.
        IntegrityError: a part missing, extra, altered or from another dataset (parts
            are hashed and authenticated when computed, so this may also come then).
        ContextMismatchError: ``encryption_context`` differs from the dataset's.
        WrongKeyError, KmsError: the KMS would not unwrap the data keys, or unwrapped one
            with another key than its file names or one outside ``allowed_keys``.
        ValueError: a KMS client object with a distributed or multiprocessing scheduler.
    """
    kms = fold_kms_uri(kms, kms_uri)
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(name, str) for name in columns):
            raise TypeError("columns must be a list of column names")
        if not columns:
            # Dask's from_map reads every column for an empty projection (dask 2026.8).
            raise ValueError("columns must name at least one column; None reads them all")
    directory: Path | str
    if is_url(path):
        root = check_remote(str(path), storage_options, writing=False)
        manifest = read_remote_manifest(root, storage_options)
        directory = files_prefix(root, manifest)  # parts are checked as they are read
        dataset: Path | str = root
    else:
        if storage_options is not None:
            raise ValueError("storage_options is only for fsspec URLs (s3://..., oss://...)")
        dataset = Path(path).absolute()
        manifest = read_manifest(dataset)
        directory = manifest.files_directory(dataset)
        check_listing(directory, manifest)
    kms_ref = kms_reference(kms)
    expected_context = (
        None if encryption_context is None else dict(user_context(encryption_context))
    )
    client = kms_ref.connect()
    allowed = resolve_allowed_keys(client, allowed_keys)
    plaintext, context = decrypt_checked(
        read_checked(directory, manifest.meta, storage_options),
        META_NAME,
        kms=client,
        expected_binding=binding(manifest.dataset_id, manifest.part_count, META_LABEL),
        expected_context=expected_context,
        allowed=allowed,
    )
    meta = pq.read_table(pa.BufferReader(plaintext), use_pandas_metadata=True).to_pandas()
    if columns is not None:
        unknown = [name for name in columns if name not in meta.columns]
        if unknown:
            raise ValueError(f"no column(s) {unknown!r} in {dataset}")
    config = ReadConfig(
        kms=kms_ref,
        directory=str(directory),
        dataset_id=manifest.dataset_id,
        part_count=manifest.part_count,
        encryption_context=tuple(sorted(context.items())),
        allowed=allowed,
        storage_options=storage_options,
    )
    frame = dd.from_map(  # type: ignore[no-untyped-call]
        read_part,
        list(manifest.parts),
        args=[config],
        meta=meta,
        label="kmsnb-read-parquet",
        enforce_metadata=False,
    )
    # A plain selection: Dask's optimizer pushes it down into read_part's columns=.
    return frame if columns is None else frame[list(columns)]
