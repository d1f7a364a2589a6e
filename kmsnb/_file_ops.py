"""Envelope encryption of files: :func:`encrypt_file`, :func:`decrypt_file` and
:func:`inspect`, exported by :mod:`kmsnb.envelope` (and :mod:`kmsnb`).

A file is written through :func:`kmsnb.envelope.open_encrypt` into
:func:`kmsnb._files.atomic_output`, so it appears only once complete (and fsynced), and
read through :func:`kmsnb.envelope.open_decrypt`, so plaintext reaches the destination only
as it verifies and the destination appears only once every chunk has.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from kmsnb._files import atomic_output
from kmsnb._format.header import CONTENT_TYPE_BYTES, read_header
from kmsnb._format.stream import DEFAULT_BUFFER_SIZE, EncryptWriter
from kmsnb._progress import check_progress, progress_bar
from kmsnb.envelope import FileInfo, open_decrypt, open_encrypt
from kmsnb.errors import KmsnbError
from kmsnb.kms._base import Kms

__all__ = ["decrypt_file", "encrypt_file", "inspect", "regular_file_size"]

StrPath = str | os.PathLike[str]


def _check_paths(src: StrPath, dst: StrPath) -> tuple[Path, Path]:
    """Refuse what would fail later anyway, before any KMS call.

    What ``dst`` may be (an existing file only with ``overwrite``, never a directory...)
    is checked by :func:`kmsnb._files.atomic_output`, which callers enter before the KMS.
    """
    source, destination = Path(src), Path(dst)
    if destination.exists() and source.exists() and os.path.samefile(source, destination):
        raise ValueError(f"{source} is both the source and the destination")
    return source, destination


def regular_file_size(fileobj: BinaryIO) -> int | None:
    """The size of a regular file, or ``None`` for pipes and devices."""
    status = os.fstat(fileobj.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


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
) -> FileInfo:
    """Encrypt the file ``src`` into ``dst`` under the master key ``key_id``.

    ``dst`` appears only once complete and fsynced; after an error, or a crash, it does
    not exist (an existing one is untouched). ``src`` is never modified. A symbolic link
    ``dst`` is followed; a character device or FIFO is written through, not replaced.

    Args:
        durable: fsync ``dst`` and its folder before returning (the default). ``False``
            is for scratch outputs: after a power cut or a kernel crash ``dst`` may be
            missing, empty or short (and a replaced file lost); everything else holds.
        progress: a progress bar (``tqdm.auto``): ``None`` shows one from the session's
            threshold (:func:`kmsnb._progress.set_progress_threshold`), ``True`` always,
            ``False`` never.

    Returns:
        what the header of ``dst`` says (see :func:`inspect`).

    Raises:
        FileExistsError: ``dst`` exists and ``overwrite`` is false.
        IsADirectoryError, ValueError: ``dst`` is a directory or something kmsnb never
            writes (a block device, a dangling link), found before any KMS call.
        OSError: ``dst`` cannot be written (missing folder, permissions, a full disk);
            the error names ``dst``.
        KmsError: the KMS refused or failed to make a data key.
    """
    source_path, destination = _check_paths(src, dst)
    show = check_progress(progress)
    # Unbuffered: _copy reads whole steps, and a buffer would only add a copy and a read.
    with open(source_path, "rb", buffering=0) as source:
        size = regular_file_size(source)
        with (
            atomic_output(destination, overwrite=overwrite, durable=durable) as output,
            progress_bar(size, f"encrypt {source_path.name}", show=show) as advance,
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
                _copy(source, writer, size, advance)
                if size is not None and writer.plaintext_size != size:
                    raise _changed_size(source_path)
            header = writer.header
            file_size = output.tell()
    return FileInfo.from_header(header, file_size=file_size)


def _changed_size(path: Path) -> KmsnbError:
    return KmsnbError(f"{path} changed size while it was read; nothing was written")


def _copy(
    source: io.RawIOBase, writer: EncryptWriter, size: int | None, advance: Callable[[int], None]
) -> None:
    buffer = bytearray(writer.step_size)
    view = memoryview(buffer)
    while count := source.readinto(view):
        if size is not None and writer.plaintext_size + count > size:
            raise _changed_size(Path(source.name))  # type: ignore[attr-defined]
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
) -> FileInfo:
    """Decrypt the kmsnb file ``src`` into ``dst``.

    ``dst`` appears only once every chunk has verified, complete and fsynced; after any
    error, or a crash, it does not exist (an existing one is untouched), and no plaintext
    is left on disk. A character device or FIFO ``dst`` (``/dev/null``, a named pipe) is
    written through instead, as the verified plaintext comes, like stdout.

    ``durable=False`` skips the fsyncs, for scratch outputs: see :func:`encrypt_file`.
    It never leaves plaintext on disk after a crash either (the plaintext is written
    to a file without a name until it is complete and verified). ``progress`` is as for
    :func:`encrypt_file`.

    Returns:
        what the header of ``src`` says (see :func:`inspect`).

    Raises:
        FileExistsError: ``dst`` exists and ``overwrite`` is false.
        IsADirectoryError, ValueError, OSError: as for :func:`encrypt_file`; checked
            before any KMS call.
        FormatError, ContextMismatchError, WrongKeyError, KmsError, IntegrityError:
            see :func:`open_decrypt` (``allowed_keys`` too).
    """
    source_path, destination = _check_paths(src, dst)
    show = check_progress(progress)
    with open(source_path, "rb") as source:
        file_size = regular_file_size(source)
        # The destination is checked first, so that a bad one costs no KMS call.
        with atomic_output(destination, overwrite=overwrite, durable=durable) as output:
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
            with reader, progress_bar(total, f"decrypt {source_path.name}", show=show) as advance:
                while block := reader.read_verified():
                    output.write(block)
                    advance(len(block))
    return FileInfo.from_header(reader.header, file_size=file_size)


def inspect(source: StrPath | BinaryIO) -> FileInfo:
    """Read the header of a kmsnb file without calling the KMS.

    What it returns is what the header says, unverified: only a read, which asks the
    KMS, checks the key the header names against the one that really wrapped the data key.

    Args:
        source: a path, or a binary file positioned at the start of a kmsnb message.

    Raises:
        FormatError: not a kmsnb file, or a malformed header.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fileobj:
            header = read_header(fileobj)
            return FileInfo.from_header(header, file_size=regular_file_size(fileobj))
    if not callable(getattr(source, "read", None)):
        raise TypeError("source must be a path or a binary file open for reading")
    return FileInfo.from_header(read_header(source))
