"""Where the bytes are: a local path or an fsspec URL, resolved and checked up front.

The rule of which stores kmsnb writes lives here, in one table (:data:`WRITABLE`): a store
is writable only where kmsnb can make every write atomic (no partial object after any
failure or interruption, an existing object untouched unless replaced whole) and where
``overwrite=False`` is a conditional create refereed by the store, not a check followed
by a write. Anything else is refused before a byte is produced, with
:class:`~kmsnb.errors.UnsupportedStorageError`. Reading is allowed from any protocol
fsspec has an installed implementation for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from kmsnb._record import FrozenRecord
from kmsnb.errors import UnsupportedStorageError

__all__ = ["WRITABLE", "Location", "StoreKind", "is_url", "resolve"]

#: ``protocol://`` at the start, optionally chained (``simplecache::s3://``); compiled (and
#: cached) by re at its first use.
_URL: Final = r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z0-9+.\-]+)*://"

StoreKind = Literal["local", "s3", "oss", "memory", "fsspec"]

#: The protocols kmsnb writes, and how (see :mod:`kmsnb.storage._open`):
#: ``local``: :func:`kmsnb._files.atomic_output` (O_TMPFILE + linkat);
#: ``s3``: s3fs multipart upload, ``autocommit=False`` then ``commit()`` or ``discard()``,
#: ``"xb"`` (If-None-Match) for a create;
#: ``oss``: OSS SDK v2 multipart upload with ``x-oss-forbid-overwrite`` for a create;
#: ``memory``: the whole object stored in one call once complete (the store is memory).
WRITABLE: Final[Mapping[str, StoreKind]] = {
    "file": "local",
    "local": "local",
    "s3": "s3",
    "s3a": "s3",
    "oss": "oss",
    "memory": "memory",
}

#: What to install for a protocol whose implementation is missing.
_EXTRA_FOR: Final = {"s3": "kmsnb[s3]", "s3a": "kmsnb[s3]", "oss": "kmsnb[oss]"}
#: The oldest s3fs whose ``"xb"`` really is conditional (2024.12 to 2025.5 overwrite).
_S3FS_FLOOR: Final = (2025, 7)


class Location(FrozenRecord):
    """A resolved destination or source.

    Attributes:
        url: what the caller gave, for messages (a local path as a string).
        kind: how kmsnb reaches it (``"fsspec"``: any other fsspec protocol, read only).
        protocol: the URL's protocol (``"file"`` for a local path).
        path: the path inside the store: a local path, ``bucket/key``, ...
        storage_options: the caller's options for the store (empty for local paths).
    """

    # A FrozenRecord, not a dataclass: importing dataclasses cost a CLI call more than its
    # work (start-up). Frozen, compared and shown as the dataclass it was (the options are
    # left out of the repr: they may name a profile or an endpoint).
    __match_args__ = ("url", "kind", "protocol", "path", "storage_options")  # in order
    _FIELDS = _COMPARED = __match_args__
    _SHOWN = _FIELDS[:4]
    __slots__ = __match_args__

    url: str
    kind: StoreKind
    protocol: str
    path: str
    storage_options: Mapping[str, Any]

    def __init__(
        self,
        url: str,
        kind: StoreKind,
        protocol: str,
        path: str,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = {} if storage_options is None else storage_options
        for name, value in zip(self._FIELDS, (url, kind, protocol, path, options), strict=True):
            object.__setattr__(self, name, value)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


def is_url(path: object) -> bool:
    """Whether ``path`` is an fsspec URL (``s3://...``, ``oss://...``, ``memory://...``)."""
    # "://" first: a local path has none, and then the pattern need not even be compiled.
    return isinstance(path, str) and "://" in path and re.match(_URL, path) is not None


def resolve(
    url: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    writing: bool,
) -> Location:
    """Check that kmsnb can read (or, with ``writing``, atomically write) ``url``.

    Args:
        url: a local path or an fsspec URL.
        storage_options: options for the store (only with a URL), as in pandas.
        writing: refuse what cannot be written atomically and exclusively.

    Raises:
        UnsupportedStorageError: no installed implementation for the protocol, a store
            kmsnb does not write atomically, or an s3fs too old for a conditional create.
        TypeError, ValueError: ``url`` is not a path, or ``storage_options`` come with a
            local path.
    """
    if not isinstance(url, str | os.PathLike):
        raise TypeError(f"expected a path or a URL, not {type(url).__name__}")
    if not is_url(url):
        if storage_options:
            raise ValueError(
                "storage_options is only for fsspec URLs (s3://..., oss://...), not for local paths"
            )
        local = os.fspath(url)
        return Location(url=local, kind="local", protocol="file", path=local)
    text = str(url)
    options = dict(storage_options or {})
    protocol = text.split("://", 1)[0].lower()
    if "::" in protocol:
        if writing:
            raise UnsupportedStorageError(
                f"cannot write {text} atomically: chained URLs are not writable; write to "
                f"the store itself ({text.split('::')[-1].split('://')[0]}://...)"
            )
        return Location(text, "fsspec", protocol, text, options)
    kind = WRITABLE.get(protocol)
    if kind == "oss":
        return Location(text, "oss", protocol, text.split("://", 1)[1], options)
    _check_installed(protocol, text)
    if kind is None:
        if writing:
            raise UnsupportedStorageError(
                f"cannot write {text} atomically: kmsnb writes only local paths, file://, "
                f"s3://, oss:// and memory:// (a {protocol}:// write could leave a partial "
                f"object or overwrite by a race); write locally and copy, or use one of these"
            )
        return Location(text, "fsspec", protocol, text, options)
    if kind == "s3" and writing:
        _check_s3fs_version(text)
    path = text if kind != "local" else _local_path(text, options)
    return Location(text, kind, protocol, path, options)


def _check_installed(protocol: str, url: str) -> None:
    """Refuse a protocol fsspec does not know or whose package is missing."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency of kmsnb
        raise UnsupportedStorageError(f"cannot open {url}: fsspec is not installed") from None
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as error:
        extra = _EXTRA_FOR.get(protocol)
        advice = f"install {extra}" if extra else f"install the package fsspec names ({error})"
        raise UnsupportedStorageError(
            f"cannot open {url}: no {protocol}:// implementation is installed; {advice}"
        ) from None
    except ValueError:
        raise UnsupportedStorageError(
            f"cannot open {url}: {protocol}:// is not a protocol fsspec knows; check the URL"
        ) from None


def _check_s3fs_version(url: str) -> None:
    import s3fs

    numbers = re.findall(r"\d+", s3fs.__version__)[:2]
    if tuple(int(number) for number in numbers) < _S3FS_FLOOR:
        raise UnsupportedStorageError(
            f"cannot write {url} safely with s3fs {s3fs.__version__}: before 2025.7 its "
            f"exclusive create silently overwrites; install kmsnb[s3] (s3fs>=2025.7)"
        )


def _local_path(url: str, options: Mapping[str, Any]) -> str:
    """The file system path of a ``file://`` or ``local://`` URL."""
    if options:
        raise ValueError(f"storage_options do not apply to a local file ({url})")
    import fsspec.core

    return str(fsspec.core.url_to_fs(url)[1])
