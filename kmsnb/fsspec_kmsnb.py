"""The ``kmsnb::`` fsspec file system: any fsspec reader reads kmsnb files, writers encrypt.

Registered through the ``fsspec.specs`` entry point, so with kmsnb installed::

    pd.read_parquet("kmsnb::s3://bucket/sales.parquet.kms")
    pl.read_parquet("kmsnb::file:///data/sales.parquet.kms")
    with fsspec.open("kmsnb::file:///data/x.parquet.kms", "wb",
                     kmsnb={"key": "alias/x", "kms": "local:/path/to/keystore"}) as f:
        pq.write_table(table, f)

It is layered over another file system (``target_protocol``, as fsspec's caches are) and
holds whole-file kmsnb files (not column-encrypted Parquet, which engines read with the
keys themselves; :mod:`kmsnb.duckdb`).

**Reading** opens :func:`kmsnb.envelope.open_decrypt_seekable`: the header, the key
commitment and the final chunk verify on open, with the same key checks as every kmsnb
reader (``encryption_context``, ``allowed_keys``); a read decrypts only the chunks it
touches, so a Parquet reader fetches the footer and the columns it needs. ``info`` and
``ls`` report plaintext sizes (from the header, or the payload's length for a stream,
unauthenticated until the file is opened), as readers size their reads by them.

**Writing** (``"wb"``, or ``"xb"`` to refuse an existing file) encrypts to ``key`` (the
session's default key when not given), with the content type the name implies
(``.parquet.kms``, ``.csv.kms``; else bytes) unless ``content_type`` is given. The file
becomes visible only when complete, through :func:`kmsnb.storage.open_output` as for every
kmsnb writer: on a local target an unnamed file named on close, on an object store an
upload published whole (a store kmsnb cannot write atomically is refused).
``close()`` while an exception propagates (a ``with`` block or a ``finally`` that failed;
not one already being handled when the file was opened) discards the file instead, as
does ``discard()``; with ``autocommit=False`` (fsspec transactions) the file appears on
``commit()``.

**Options** (``storage_options={"kmsnb": {...}}`` in pandas, ``kmsnb={...}`` in
``fsspec.open``): ``kms`` (a URI such as ``local:PATH`` or ``aliyun:REGION``, or a client;
else the session's KMS: ``KMSNB_KMS``, else the local emulator), ``key``,
``encryption_context``, ``allowed_keys``, ``content_type``. No secret is ever an option:
credentials come from the KMS's own credential chain.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import fsspec
from fsspec.spec import AbstractFileSystem

from kmsnb import storage
from kmsnb._context import check_encryption_context
from kmsnb._defaults import resolve_key, resolve_kms
from kmsnb._format.payload import CHUNK_SIZE, plaintext_size_for_payload
from kmsnb._whole_file_io import PlaintextSink, content_type_for_name
from kmsnb.envelope import SeekableDecryptReader, inspect, open_decrypt_seekable
from kmsnb.kms._base import Kms

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

try:  # fsspec >= 2025.10 hands a chained file system the inner path
    from fsspec.implementations.chained import ChainedFileSystem as _Layered
except ImportError:  # pragma: no cover - older fsspec: the path arrives empty, use fo
    _Layered = AbstractFileSystem

__all__ = ["DecryptedFile", "EncryptingFile", "KmsnbFileSystem"]

_READ_BUFFER_SIZE = 4 * CHUNK_SIZE


class _Discarded(Exception):
    """Thrown into the output's context to make it leave nothing behind."""


class KmsnbFileSystem(_Layered):  # type: ignore[misc]
    """An fsspec file system over ``target_protocol`` whose files are kmsnb files.

    Args:
        fo: the inner path of a chained URL (``kmsnb::s3://b/k``), given by fsspec.
        target_protocol, target_options: the file system holding the files (``file``
            when not given), and its options.
        fs: that file system itself, instead of the two above.
        kms: a KMS client or URI; ``None`` uses ``kmsnb.session.get_kms()`` on first use.
        key: the master key files are written to; ``None``: the session's default key.
        encryption_context: the context files read must carry, and written ones get.
        allowed_keys: the master keys files read may be under.
        content_type: the content type of files written, instead of the name's.
    """

    protocol: ClassVar[str] = "kmsnb"
    # Instances hold a KMS client: never hand one made for other options to a caller.
    cachable = False

    def __init__(
        self,
        fo: str = "",
        *,
        target_protocol: str | None = None,
        target_options: Mapping[str, Any] | None = None,
        fs: AbstractFileSystem | None = None,
        kms: Kms | str | None = None,
        key: str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        allowed_keys: Iterable[str] | None = None,
        content_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fs is not None and (target_protocol or target_options):
            raise ValueError("give either fs or target_protocol/target_options, not both")
        if fs is None:
            fs = fsspec.filesystem(target_protocol or "file", **dict(target_options or {}))
        self.fs = fs
        self.fo = fo
        self._kms_option = kms
        self._kms: Kms | None = None
        self.key = key
        self.encryption_context = check_encryption_context(encryption_context)
        self.allowed_keys = None if allowed_keys is None else list(allowed_keys)
        self.content_type = content_type

    # -- paths and the KMS ------------------------------------------------------------------

    def _inner(self, path: str) -> str:
        # fsspec before 2025.10 gives a chained file system an empty path; fo holds it.
        path = self._strip_protocol(path)
        return path if path else self._strip_protocol(self.fo)

    @property
    def kms(self) -> Kms:
        """The KMS client: made from the ``kms`` option (or the session's) on first use."""
        if self._kms is None:
            self._kms = resolve_kms(self._kms_option)
        return self._kms

    # -- reading ----------------------------------------------------------------------------

    def _plaintext_size(self, path: str, file_size: int) -> int:
        """The size the header declares, or for a stream the final-chunk rule's; 0 where no
        plaintext has a payload that size (damaged: opening the file says how)."""
        with self.fs.open(path, "rb") as raw:
            found = inspect(raw)
        if found.plaintext_size is not None:
            return found.plaintext_size
        return plaintext_size_for_payload(file_size - found.header_size) or 0

    def _decrypted(self, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("type") != "file":
            return entry
        entry = dict(entry)
        entry["size"] = self._plaintext_size(entry["name"], int(entry["size"]))
        return entry

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The target's ``info``, the size being the plaintext's (from the header).

        Raises:
            FormatError: a file that is not a kmsnb file.
        """
        return self._decrypted(self.fs.info(self._inner(path), **kwargs))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The target's listing; with ``detail``, plaintext sizes (one header read each)."""
        entries = self.fs.ls(self._inner(path), detail=detail, **kwargs)
        return [self._decrypted(entry) for entry in entries] if detail else list(entries)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> DecryptedFile | EncryptingFile:
        inner = self._inner(path)
        if mode == "rb":
            return self._open_read(inner, block_size=block_size, **kwargs)
        if mode in ("wb", "xb"):
            return EncryptingFile(self, inner, exclusive=mode == "xb", autocommit=autocommit)
        raise ValueError(
            f"mode {mode!r} is not supported: kmsnb files are read ('rb') or written whole "
            "('wb', 'xb'), never appended to or updated"
        )

    def _open_read(self, inner: str, **kwargs: Any) -> DecryptedFile:
        raw = self.fs.open(inner, "rb", **{k: v for k, v in kwargs.items() if v is not None})
        try:
            reader = open_decrypt_seekable(
                raw,
                kms=self.kms,
                encryption_context=self.encryption_context,
                allowed_keys=self.allowed_keys,
            )
        except BaseException:
            raw.close()
            raise
        return DecryptedFile(reader, raw, inner)

    # -- the rest goes to the target --------------------------------------------------------

    def exists(self, path: str, **kwargs: Any) -> bool:
        return bool(self.fs.exists(self._inner(path), **kwargs))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.fs.mkdir(self._inner(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.fs.makedirs(self._inner(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.fs.rmdir(self._inner(path))

    def rm_file(self, path: str) -> None:
        self.fs.rm_file(self._inner(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = [self._inner(p) for p in path] if isinstance(path, list) else self._inner(path)
        self.fs.rm(paths, recursive=recursive, maxdepth=maxdepth)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        # A kmsnb file is self-contained: its copy is the same file, still encrypted.
        self.fs.cp_file(self._inner(path1), self._inner(path2), **kwargs)

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.fs.mv(self._inner(path1), self._inner(path2), **kwargs)

    def modified(self, path: str) -> Any:
        return self.fs.modified(self._inner(path))

    def created(self, path: str) -> Any:
        return self.fs.created(self._inner(path))

    def ukey(self, path: str) -> str:
        return str(self.fs.ukey(self._inner(path)))


class DecryptedFile(io.BufferedReader):
    """A kmsnb file's verified plaintext, seekable; closing it closes the target's file."""

    def __init__(self, reader: SeekableDecryptReader, raw: BinaryIO, path: str) -> None:
        super().__init__(reader, _READ_BUFFER_SIZE)
        self._reader = reader
        self._target = raw
        self.path = path

    @property
    def size(self) -> int:
        """The plaintext's size, authenticated by the final chunk."""
        return self._reader.plaintext_size

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._target.close()


class EncryptingFile(io.RawIOBase):
    """A file that encrypts what is written into a kmsnb file, published when complete."""

    def __init__(
        self, fs: KmsnbFileSystem, path: str, *, exclusive: bool, autocommit: bool
    ) -> None:
        super().__init__()
        self.path = path
        self.autocommit = autocommit
        key = resolve_key(fs.key)
        kms = fs.kms
        content_type = fs.content_type or content_type_for_name(path)
        self._output_context = _output(fs.fs, path, overwrite=not exclusive)
        output = self._output_context.__enter__()
        self._state = "open"
        # An exception already being handled when the file was opened (it is written in
        # an ``except`` block) is not one that interrupts it.
        self._ambient = sys.exc_info()[1]
        self._sink = PlaintextSink(
            output,
            key,
            kms=kms,
            encryption_context=fs.encryption_context,
            content_type=content_type,
        )

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._sink.tell()

    def write(self, data: ReadableBuffer) -> int:
        if self._state != "open":
            raise ValueError("write to a closed file")
        return self._sink.write(data)

    def close(self) -> None:
        """Finish the file and publish it (with ``autocommit``); discard it instead if
        an exception is propagating."""
        if self._state != "open":
            super().close()
            return
        propagating = sys.exc_info()[1]
        if propagating is not None and propagating is not self._ambient:
            self.discard()
            return
        try:
            self._sink.finish()
        except BaseException:
            self.discard()
            raise
        self._state = "finished"
        super().close()
        if self.autocommit:
            self.commit()

    def commit(self) -> None:
        """Publish the finished file (fsspec transactions call it)."""
        if self._state == "open":
            self.close()
            if self.autocommit:
                return
        if self._state != "finished":
            return
        self._state = "committed"
        self._output_context.__exit__(None, None, None)

    def discard(self) -> None:
        """Leave nothing behind, an existing file untouched."""
        if self._state in ("committed", "discarded"):
            return
        if self._state == "open":
            self._sink.abort()
        self._state = "discarded"
        super().close()
        error = _Discarded()
        self._output_context.__exit__(_Discarded, error, None)

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # Never closed: not known to be complete, so never published.
        if getattr(self, "_state", None) == "open":
            self.discard()


@contextlib.contextmanager
def _output(fs: Any, path: str, *, overwrite: bool) -> Iterator[BinaryIO]:
    # The target file system's URL and options, so that kmsnb.storage makes the write
    # atomic (and refuses a store it cannot write atomically) as for every kmsnb writer.
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        context = storage.open_output(path, overwrite=overwrite)
    else:
        url, options = fs.unstrip_protocol(path), dict(fs.storage_options)
        context = storage.open_output(url, overwrite=overwrite, storage_options=options)
    with contextlib.suppress(_Discarded), context as output:
        yield output
