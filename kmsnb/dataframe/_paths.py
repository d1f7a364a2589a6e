"""Where the bytes go: a local path, a binary file object or an fsspec URL.

Paths and URLs go through :mod:`kmsnb.storage`: a path gets
:func:`kmsnb._files.atomic_output` (an unnamed file in the destination's folder, fsynced
and named only when complete), an object a multipart upload that streams part by part
and is published whole at the end (``overwrite=False`` a conditional create), and a URL
kmsnb cannot write atomically is refused (:class:`~kmsnb.errors.UnsupportedStorageError`).
A caller's file object is written as it is, its atomicity the caller's.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from kmsnb import storage
from kmsnb.storage import is_url

PathOrFile = str | os.PathLike[str] | BinaryIO


def _wrong_type(path: object) -> TypeError:
    return TypeError(
        f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
    )


def check_storage_options(path: object, storage_options: Mapping[str, Any] | None) -> None:
    """Refuse ``storage_options`` for anything but a URL, where they would be ignored."""
    if storage_options is not None and not is_url(path):
        raise ValueError(
            "storage_options is only for fsspec URLs (s3://..., oss://...), "
            "not for local paths or file objects"
        )


def check_binary(fileobj: object) -> None:
    """Refuse a text file where bytes are read or written."""
    if isinstance(fileobj, io.TextIOBase):
        raise TypeError(
            f"path must be a binary file (open it with 'rb' or 'wb', or use io.BytesIO), "
            f"not a text file ({type(fileobj).__name__})"
        )


@contextlib.contextmanager
def open_output(
    path: PathOrFile, *, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A binary file for the ciphertext, that becomes ``path`` only if the block completes."""
    check_storage_options(path, storage_options)
    if callable(getattr(path, "write", None)):
        check_binary(path)
        yield path  # type: ignore[misc]  # the caller's file: atomicity is theirs
    elif isinstance(path, str | os.PathLike):
        with storage.open_output(
            path, overwrite=overwrite, storage_options=storage_options
        ) as output:
            yield output
    else:
        raise _wrong_type(path)


@contextlib.contextmanager
def open_input(
    path: PathOrFile, *, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """``path`` opened for reading (a caller's file object as it is)."""
    check_storage_options(path, storage_options)
    if callable(getattr(path, "read", None)):
        check_binary(path)
        yield path  # type: ignore[misc]
    elif isinstance(path, str | os.PathLike):
        with storage.open_input(path, storage_options=storage_options) as source:
            yield source
    else:
        raise _wrong_type(path)


def local_path(path: PathOrFile, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``path``, if it has one."""
    if isinstance(path, str | os.PathLike):
        location = storage.resolve(path, storage_options=storage_options, writing=False)
        return location.path if location.is_local else None
    return None
