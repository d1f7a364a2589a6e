"""Envelope encryption of files: :func:`encrypt_file`, :func:`decrypt_file` and
:func:`inspect`, exported by :mod:`kmsnb.envelope` (and :mod:`kmsnb`).

A file is written through :func:`kmsnb.envelope.open_encrypt` into
:func:`kmsnb.storage.open_output`, so it appears only once complete (a local file through
:func:`kmsnb._files.atomic_output`, fsynced; an object as one multipart upload committed
at the end), and read through :func:`kmsnb.envelope.open_decrypt`, so plaintext reaches
the destination only as it verifies and the destination appears only once every chunk
has. Sources and destinations are local paths or fsspec URLs (``s3://``, ``oss://``...,
see :func:`kmsnb.storage.resolve`); ``storage_options`` go to the side that is a URL.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO

from kmsnb._format.header import CONTENT_TYPE_BYTES, read_header
from kmsnb._format.payload import encrypted_payload_size
from kmsnb._format.stream import DEFAULT_BUFFER_SIZE, EncryptWriter
from kmsnb._path_text import as_path_text
from kmsnb._progress import check_progress, progress_bar, wants_bar
from kmsnb.envelope import FileInfo, open_decrypt, open_encrypt
from kmsnb.errors import KmsnbError
from kmsnb.kms._base import Kms
from kmsnb.storage import DEFAULT_PART_SIZE, is_url, open_input, open_output

__all__ = ["decrypt_file", "encrypt_file", "inspect", "regular_file_size"]

StrPath = str | os.PathLike[str]
StorageOptions = Mapping[str, Any] | None
#: What :func:`inspect` fetches of an object: a header and then some.
_HEADER_RANGE_SIZE = 64 * 1024
_OPTIONS_NEED_A_URL = (
    "storage_options is only for fsspec URLs (s3://..., oss://...), not for local paths "
    "or file objects"
)


def _check_paths(
    src: StrPath, dst: StrPath, storage_options: StorageOptions
) -> tuple[StorageOptions, StorageOptions]:
    """Refuse what would fail later anyway, before any KMS call; return the storage
    options of the source and of the destination (each ``None`` unless it is a URL).

    What ``dst`` may be (an existing file only with ``overwrite``, never a directory, a
    store kmsnb cannot write atomically...) is checked by
    :func:`kmsnb.storage.open_output`, which callers enter before the KMS.
    """
    src_is_url, dst_is_url = is_url(src), is_url(dst)
    if storage_options and not (src_is_url or dst_is_url):
        raise ValueError(_OPTIONS_NEED_A_URL)
    if src_is_url or dst_is_url:
        if str(src).rstrip("/") == str(dst).rstrip("/"):
            raise ValueError(f"{src} is both the source and the destination")
    elif _same_local_file(src, dst):
        raise ValueError(f"{as_path_text(src)} is both the source and the destination")
    return (
        storage_options if src_is_url else None,
        storage_options if dst_is_url else None,
    )


#: What ``Path.exists`` (Python 3.11) takes for "not there" rather than an error.
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _stat_if_exists(path: str) -> os.stat_result | None:
    """``os.stat(path)``, or ``None`` where ``Path(path).exists()`` is false."""
    try:
        return os.stat(path)
    except OSError as error:
        if error.errno in _MISSING_ERRNOS:
            return None
        raise
    except ValueError:  # an embedded NUL: the open that follows reports it
        return None


def _same_local_file(src: StrPath, dst: StrPath) -> bool:
    """Whether ``src`` and ``dst`` both exist and are one file (``os.path.samefile``).

    The destination is looked at first: a new one (the common case) costs one ``stat``,
    where ``exists`` twice and then ``samefile`` cost four (issue 16).
    """
    source_path, destination_path = as_path_text(src), as_path_text(dst)
    destination = _stat_if_exists(destination_path)
    if destination is None:
        return False
    source = _stat_if_exists(source_path)
    return source is not None and os.path.samestat(source, destination)


def _display_name(path: StrPath) -> str:
    """The last component of a path or URL, for a progress bar."""
    if is_url(path):
        return str(path).rstrip("/").rsplit("/", 1)[-1]
    return os.path.basename(as_path_text(path))


def _bar_label(verb: str, path: StrPath, total: int | None, show: bool | None) -> str:
    """A progress bar's label, ``verb`` and the file's name: only where
    :func:`~kmsnb._progress.progress_bar` will show the bar, which a small file's is not
    (parsing the path cost ~1 % of a 4 KiB file's encryption, issue 16)."""
    return f"{verb} {_display_name(path)}" if wants_bar(total, show) else verb


def regular_file_size(fileobj: BinaryIO) -> int | None:
    """The size of a regular file, or ``None`` for pipes and devices."""
    status = os.fstat(fileobj.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _open_source(
    src: StrPath,
    storage_options: StorageOptions,
    *,
    buffering: int = -1,
    range_size: int = DEFAULT_PART_SIZE,
) -> tuple[BinaryIO, int | None]:
    """``src`` open for reading, for the caller to close, and its size when it is a
    regular file or an object (``None`` for pipes and devices). An object is read by
    ranged requests of ``range_size`` bytes (:func:`kmsnb.storage.open_input`).

    A function, not a generator's context manager: that costs a small file ~1 % (issue 16).
    """
    if not is_url(src):
        local = open(src, "rb", buffering=buffering)  # noqa: SIM115 - the caller closes it
        try:
            return local, regular_file_size(local)
        except BaseException:
            local.close()
            raise
    remote = open_input(src, storage_options=storage_options, block_size=range_size)
    try:
        size = remote.seek(0, io.SEEK_END)
        remote.seek(0)
    except BaseException:
        remote.close()
        raise
    return remote, size


def encrypt_file(
    src: StrPath,
    dst: StrPath,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    content_type: str = CONTENT_TYPE_BYTES,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    durable: bool = True,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> FileInfo:
    """Encrypt the file ``src`` into ``dst`` under the master key ``key_id``.

    ``dst`` appears only once complete and fsynced; after an error, or a crash, it does
    not exist (an existing one is untouched). ``src`` is never modified. A symbolic link
    ``dst`` is followed; a character device or FIFO is written through, not replaced.
    Either may be an fsspec URL (``s3://bucket/key``, ``oss://...``): an object is read by
    ranges, and written as a multipart upload that becomes the object only at its end.

    Args:
        durable: fsync ``dst`` and its folder before returning (the default). ``False``
            is for scratch outputs: after a power cut or a kernel crash ``dst`` may be
            missing, empty or short (and a replaced file lost); everything else holds.
            An object store holds the object durably once it has it, either way.
        progress: a progress bar (``tqdm``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), ``True`` always,
            ``False`` never.
        storage_options: for whichever of ``src`` and ``dst`` is a URL, as in pandas
            (s3fs's options, or :mod:`kmsnb.storage._oss`'s for ``oss://``).

    Returns:
        what the header of ``dst`` says (see :func:`inspect`).

    Raises:
        FileExistsError: ``dst`` exists and ``overwrite`` is false.
        IsADirectoryError, ValueError: ``dst`` is a directory or something kmsnb never
            writes (a block device, a dangling link), found before any KMS call.
        UnsupportedStorageError: ``dst`` is a URL kmsnb cannot write atomically, or
            either is a URL whose store is not installed; before any KMS call.
        OSError: ``dst`` cannot be written (missing folder, permissions, a full disk);
            the error names ``dst``.
        KmsError: the KMS refused or failed to make a data key.
    """
    source_options, destination_options = _check_paths(src, dst, storage_options)
    show = check_progress(progress)
    # Unbuffered: _copy reads whole steps, and a buffer would only add a copy and a read.
    source, size = _open_source(src, source_options, buffering=0)
    with (
        source,
        open_output(
            dst, overwrite=overwrite, durable=durable, storage_options=destination_options
        ) as output,
        progress_bar(size, _bar_label("encrypt", src, size, show), show=show) as advance,
    ):
        writer = open_encrypt(
            output,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            content_type=content_type,
            plaintext_size=size,
            buffer_size=buffer_size,
        )
        with writer:
            _copy(source, writer, size, advance, name=src)
            if size is not None and writer.plaintext_size != size:
                raise _changed_size(src)
        header = writer.header
        # What the format makes of the plaintext: an object store's writer has no tell().
        file_size = header.size + encrypted_payload_size(writer.plaintext_size)
    return FileInfo.from_header(header, file_size=file_size)


def _changed_size(path: StrPath) -> KmsnbError:
    return KmsnbError(f"{path} changed size while it was read; nothing was written")


def _copy(
    source: BinaryIO,
    writer: EncryptWriter,
    size: int | None,
    advance: Callable[[int], None],
    *,
    name: StrPath,
) -> None:
    # A file of known size needs no more than itself and one byte, which shows it grew.
    step = writer.step_size
    buffer = bytearray(step if size is None else min(step, size + 1))
    view = memoryview(buffer)
    while count := source.readinto(view):  # type: ignore[attr-defined]
        if size is not None and writer.plaintext_size + count > size:
            raise _changed_size(name)
        writer.write(view[:count])
        advance(count)


def decrypt_file(
    src: StrPath,
    dst: StrPath,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    allowed_keys: Iterable[str] | None = None,
    durable: bool = True,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> FileInfo:
    """Decrypt the kmsnb file ``src`` into ``dst``.

    ``dst`` appears only once every chunk has verified, complete and fsynced; after any
    error, or a crash, it does not exist (an existing one is untouched), and no plaintext
    is left on disk. A character device or FIFO ``dst`` (``/dev/null``, a named pipe) is
    written through instead, as the verified plaintext comes, like stdout.

    ``durable=False`` skips the fsyncs, for scratch outputs: see :func:`encrypt_file`.
    It never leaves plaintext on disk after a crash either (the plaintext is written
    to a file without a name until it is complete and verified). ``progress`` and
    ``storage_options`` are as for :func:`encrypt_file`: either may be a URL, and an
    object is published only once every chunk has verified.

    Returns:
        what the header of ``src`` says (see :func:`inspect`).

    Raises:
        FileExistsError: ``dst`` exists and ``overwrite`` is false.
        IsADirectoryError, ValueError, OSError, UnsupportedStorageError: as for
            :func:`encrypt_file`; checked before any KMS call.
        FormatError, ContextMismatchError, WrongKeyError, KmsError, IntegrityError:
            see :func:`open_decrypt` (``allowed_keys`` too).
    """
    source_options, destination_options = _check_paths(src, dst, storage_options)
    show = check_progress(progress)
    # The destination is checked first, so that a bad one costs no KMS call.
    source, file_size = _open_source(src, source_options)
    with (
        source,
        open_output(
            dst, overwrite=overwrite, durable=durable, storage_options=destination_options
        ) as output,
    ):
        reader = open_decrypt(
            source,
            kms=kms,
            encryption_context=encryption_context,
            allowed_keys=allowed_keys,
            buffer_size=buffer_size,
        )
        total = reader.header.plaintext_size
        if total is None and file_size is not None:
            total = max(file_size - reader.header.size, 0)  # ciphertext: close enough
        label = _bar_label("decrypt", src, total, show)
        with reader, progress_bar(total, label, show=show) as advance:
            while block := reader.read_verified():
                output.write(block)
                advance(len(block))
    return FileInfo.from_header(reader.header, file_size=file_size)


def inspect(
    source: StrPath | BinaryIO, *, storage_options: Mapping[str, Any] | None = None
) -> FileInfo:
    """Read the header of a kmsnb file without calling the KMS.

    What it returns is what the header says, unverified: only a read, which asks the
    KMS, checks the key the header names against the one that really wrapped the data key.

    Args:
        source: a path, an fsspec URL (only the header is read, by a ranged request), or
            a binary file positioned at the start of a kmsnb message.
        storage_options: for a URL, as in pandas.

    Raises:
        FormatError: not a kmsnb file, or a malformed header.
        FileNotFoundError: no such file or object.
    """
    if isinstance(source, str | os.PathLike):
        if storage_options and not is_url(source):
            raise ValueError(_OPTIONS_NEED_A_URL)
        # Only the header is read: a small first range of an object, not all of it.
        fileobj, size = _open_source(source, storage_options, range_size=_HEADER_RANGE_SIZE)
        with fileobj:
            return FileInfo.from_header(read_header(fileobj), file_size=size)
    if storage_options:
        raise ValueError(_OPTIONS_NEED_A_URL)
    if not callable(getattr(source, "read", None)):
        raise TypeError("source must be a path or a binary file open for reading")
    return FileInfo.from_header(read_header(source))
