"""Opening a destination for a streaming, atomic write, and a source for a seekable read.

Every store gives the same three guarantees, each in its own way:

* **Streaming.** The bytes leave as they are written, in parts of ``part_size`` (8 MiB by
  default; S3 needs at least 5 MiB): memory stays near one part whatever the size.
* **Atomic.** The object appears whole, in one step, or not at all: after an exception
  (Ctrl-C included), a failed commit or a ``kill -9`` no partial object is visible, and an
  existing one is untouched unless ``overwrite=True`` replaced it whole.
* **Exclusive.** ``overwrite=False`` is a conditional create refereed by the store, so of
  two racing writers exactly one wins and the other gets :class:`FileExistsError`. A
  cheap existence check first only makes the common case fail before the work.

How, per store (:data:`kmsnb.storage.WRITABLE` is the list):

* local paths, ``file://``: :func:`kmsnb._files.atomic_output` (anonymous file, fsync,
  ``linkat``, which refuses an existing name).
* ``s3://``: s3fs, ``open(mode, autocommit=False, block_size=part_size)``: each full part
  is an UploadPart; ``commit()`` is CompleteMultipartUpload (or one PutObject), with
  ``If-None-Match: *`` in ``"xb"`` mode; ``discard()`` aborts the upload on any error. A
  killed writer leaves an incomplete multipart upload that readers never see; the next
  write to the same key aborts those older than :data:`STALE_UPLOAD_AFTER_S` (a younger
  one may be another writer's, in flight), and a bucket lifecycle rule removes the rest.
* ``oss://``: :mod:`kmsnb.storage._oss` (OSS SDK v2, ``x-oss-forbid-overwrite``).
* ``memory://``: fsspec's memory store writes through at open and ignores
  ``autocommit=False``, so the object is stored in one ``pipe_file`` once complete,
  ``mode="create"`` for an exclusive one, under a lock that makes kmsnb's own writers of
  this process take turns (the store is this process's memory: nothing else writes it).
"""

from __future__ import annotations

import _thread
import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Final

from kmsnb._files import STALE_AFTER_S, atomic_output
from kmsnb.storage._location import Location, resolve

__all__ = [
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "STALE_UPLOAD_AFTER_S",
    "open_input",
    "open_output",
]

#: The size of each uploaded part, and so of the memory a write holds.
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
#: S3's (and OSS's) smallest part but the last.
MIN_PART_SIZE: Final = 5 * 1024 * 1024
#: How old an incomplete multipart upload of the key being written must be for the write
#: to abort it: the same bound as for local temporary files.
STALE_UPLOAD_AFTER_S: float = STALE_AFTER_S

# threading.Lock itself, from _thread: a local write need not import threading (start-up).
_MEMORY_WRITES = _thread.allocate_lock()


def _exists_error(url: str) -> FileExistsError:
    return FileExistsError(f"{url} exists; pass overwrite=True to replace it")


@contextlib.contextmanager
def open_output(
    url: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """Yield a binary writer whose bytes become ``url`` only if the block completes.

    Args:
        url: a local path or a ``file://``, ``s3://``, ``oss://`` or ``memory://`` URL.
        overwrite: replace an existing object (whole, in one step); otherwise the write
            is a conditional create.
        storage_options: options for the store (s3fs's, or :mod:`kmsnb.storage._oss`'s).
        part_size: bytes per uploaded part (at least :data:`MIN_PART_SIZE`).
        durable: for a local file, fsync it and its folder (``False``: scratch outputs,
            see :func:`kmsnb._files.atomic_output`); an object store has the object
            durably once it acknowledges the commit, whatever this says.

    Raises:
        FileExistsError: ``url`` exists and ``overwrite`` is false (before the block
            runs when seen then; at the commit when another writer got there first).
        UnsupportedStorageError: a store kmsnb cannot write atomically (see
            :func:`kmsnb.storage.resolve`).
        OSError: the store failed; nothing was published.
    """
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes, not {part_size}")
    location = resolve(url, storage_options=storage_options, writing=True)
    if location.kind == "local":
        with atomic_output(location.path, overwrite=overwrite, durable=durable) as output:
            yield output
    elif location.kind == "oss":
        from kmsnb.storage._oss import open_oss_output  # here: a local file needs no OSS code

        with open_oss_output(
            location.path,
            overwrite=overwrite,
            storage_options=location.storage_options,
            part_size=part_size,
            url=location.url,
        ) as output:
            yield output
    elif location.kind == "s3":
        with _s3_output(location, overwrite=overwrite, part_size=part_size) as output:
            yield output
    elif location.kind == "memory":
        with _memory_output(location, overwrite=overwrite) as output:
            yield output
    else:
        raise AssertionError(f"kmsnb: internal error: no writer for {location.kind}")


def _filesystem(location: Location) -> tuple[Any, str]:
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(location.url, **dict(location.storage_options))
    return fs, str(path)


@contextlib.contextmanager
def _s3_output(location: Location, *, overwrite: bool, part_size: int) -> Iterator[BinaryIO]:
    fs, path = _filesystem(location)
    if not overwrite:
        fs.invalidate_cache(path)
        if fs.exists(path):
            raise _exists_error(location.url)
    _abort_stale_uploads(fs, path)
    mode = "wb" if overwrite else "xb"
    output = fs.open(path, mode, autocommit=False, block_size=part_size)
    try:
        yield output
        empty = output.tell() == 0
        output.close()  # sends the last part; nothing is visible yet
        try:
            if empty:
                # s3fs commits an empty file with an unconditional touch: store it here.
                _discard(output)
                fs.pipe_file(path, b"", mode="overwrite" if overwrite else "create")
            else:
                output.commit()
        except FileExistsError:
            raise _exists_error(location.url) from None
    except BaseException:
        _discard(output)
        raise


def _abort_stale_uploads(fs: Any, path: str) -> None:
    """Abort the incomplete multipart uploads of ``path`` that killed writers left, once
    older than :data:`STALE_UPLOAD_AFTER_S`. Best effort: a store that refuses the listing
    (no ``s3:ListBucketMultipartUploads`` permission) leaves them to a lifecycle rule."""
    bucket, key, _ = fs.split_path(path)
    try:
        listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
    except Exception:  # housekeeping must never stop the write
        return
    import datetime  # here: only an S3 write cleans up uploads

    now = datetime.datetime.now(datetime.UTC)
    for upload in listed.get("Uploads", []):
        started = upload.get("Initiated")
        if upload.get("Key") != key or not isinstance(started, datetime.datetime):
            continue
        if (now - started).total_seconds() < STALE_UPLOAD_AFTER_S:
            continue
        with contextlib.suppress(Exception):
            fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"]
            )


def _discard(output: Any) -> None:
    """Abort an s3fs file's multipart upload; the error that stopped the write is the one
    to show, not one from here."""
    with contextlib.suppress(Exception):
        output.discard()
    # discard() drops the buffer but leaves the file open: its __del__ would then close it,
    # flushing a buffer that is gone. Closed it is (fsspec's own flag), uploading nothing.
    output.closed = True


@contextlib.contextmanager
def _memory_output(location: Location, *, overwrite: bool) -> Iterator[BinaryIO]:
    fs, path = _filesystem(location)
    if not overwrite and fs.exists(path):
        raise _exists_error(location.url)
    buffer = io.BytesIO()
    yield buffer
    with _MEMORY_WRITES:
        try:
            fs.pipe_file(path, buffer.getvalue(), mode="overwrite" if overwrite else "create")
        except FileExistsError:
            raise _exists_error(location.url) from None


def open_input(
    url: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    block_size: int = DEFAULT_PART_SIZE,
) -> BinaryIO:
    """Open ``url`` for reading: a seekable binary file, reading the object by ranges.

    Args:
        url: a local path or any fsspec URL with an installed implementation.
        storage_options: options for the store.
        block_size: bytes fetched per ranged request (and kept in memory).

    Raises:
        FileNotFoundError: no such object.
        UnsupportedStorageError: no installed implementation for the protocol.
    """
    location = resolve(url, storage_options=storage_options, writing=False)
    if location.kind == "local":
        return open(location.path, "rb")
    if location.kind == "oss":
        from kmsnb.storage._oss import open_oss_input

        return open_oss_input(
            location.path,
            storage_options=location.storage_options,
            block_size=block_size,
            url=location.url,
        )
    fs, path = _filesystem(location)
    return fs.open(path, "rb", block_size=block_size)  # type: ignore[no-any-return]
