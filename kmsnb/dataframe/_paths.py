"""Where the bytes go: a local path, a binary file object or an fsspec URL.

Paths get :func:`kmsnb._files.atomic_output` (an unnamed file in the destination's folder,
fsynced and named only when complete); a caller's file object is written as it is, its
atomicity the caller's; URLs go to :mod:`kmsnb.dataframe._urls`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from kmsnb._files import atomic_output
from kmsnb.dataframe._urls import (
    check_storage_options,
    is_url,
    open_url_input,
    open_url_output,
    url_local_path,
)

PathOrFile = str | os.PathLike[str] | BinaryIO


def _wrong_type(path: object) -> TypeError:
    return TypeError(
        f"path must be a path, a URL or a binary file object, not {type(path).__name__}"
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
    elif is_url(path):
        with open_url_output(
            str(path), overwrite=overwrite, storage_options=storage_options
        ) as output:
            yield output
    elif isinstance(path, str | os.PathLike):
        with atomic_output(path, overwrite=overwrite) as output:
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
    elif is_url(path):
        with open_url_input(str(path), storage_options=storage_options) as source:
            yield source
    elif isinstance(path, str | os.PathLike):
        with open(path, "rb") as source:
            yield source
    else:
        raise _wrong_type(path)


def local_path(path: PathOrFile, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``path``, if it has one."""
    if is_url(path):
        return url_local_path(str(path), storage_options)
    if isinstance(path, str | os.PathLike):
        return os.fspath(path)
    return None
