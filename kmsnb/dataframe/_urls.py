"""fsspec URLs (``s3://``, ``memory://``, ``file://``...) as destinations and sources.

Kept apart from local paths and file objects (:mod:`kmsnb.dataframe._paths`) so that the
storage layer of issue 13 can replace it whole. A local ``file://`` URL gets the same
atomic output as a path; a remote one is assembled in memory and stored in one call.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from kmsnb._files import atomic_output

# A scheme, optionally chained (``simplecache::s3://``), then ``://``.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z0-9+.\-]+)*://")


def is_url(path: object) -> bool:
    """Whether ``path`` is a string naming an fsspec URL."""
    return isinstance(path, str) and _URL.match(path) is not None


def check_storage_options(path: object, storage_options: Mapping[str, Any] | None) -> None:
    """Refuse ``storage_options`` for anything but a URL, where they would be ignored."""
    if storage_options is not None and not is_url(path):
        raise ValueError(
            "storage_options is only for fsspec URLs (s3://..., memory://...), "
            "not for local paths or file objects"
        )


def _url_to_fs(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec.core

    return fsspec.core.url_to_fs(url, **dict(storage_options or {}))  # type: ignore[no-any-return]


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


@contextlib.contextmanager
def open_url_output(
    url: str, *, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> Iterator[BinaryIO]:
    """A binary file for the ciphertext, stored at ``url`` only if the block completes."""
    fs, fs_path = _url_to_fs(url, storage_options)
    if _is_local(fs):
        with atomic_output(fs_path, overwrite=overwrite) as output:
            yield output
    else:
        with _remote_output(fs, fs_path, overwrite=overwrite) as output:
            yield output


@contextlib.contextmanager
def _remote_output(fs: Any, fs_path: str, *, overwrite: bool) -> Iterator[BinaryIO]:
    # Object stores have no rename, and fsspec backends differ on deferring a commit
    # (memory:// and others write through at open), so the ciphertext is assembled in
    # memory and stored in one call once complete: a failure stores nothing.
    if not overwrite and fs.exists(fs_path):
        raise FileExistsError(f"{fs_path} exists; pass overwrite=True to replace it")
    ciphertext = io.BytesIO()
    yield ciphertext
    fs.pipe_file(fs_path, ciphertext.getvalue())


@contextlib.contextmanager
def open_url_input(url: str, *, storage_options: Mapping[str, Any] | None) -> Iterator[BinaryIO]:
    """The object at ``url``, opened for reading."""
    fs, fs_path = _url_to_fs(url, storage_options)
    with fs.open(fs_path, "rb") as source:
        yield source


def url_local_path(url: str, storage_options: Mapping[str, Any] | None) -> str | None:
    """The local file system path behind ``url`` (a ``file://`` URL), else ``None``."""
    fs, fs_path = _url_to_fs(url, storage_options)
    return str(fs_path) if _is_local(fs) else None
