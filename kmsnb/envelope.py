"""Envelope encryption of files, bytes and streams with a KMS.

For each message the KMS's GenerateDataKey returns a fresh data key in plaintext and
wrapped by the master key. The plaintext key encrypts the data locally (Cobblestone-256,
see ``docs/FORMAT.md``) and is wiped; the wrapped key travels in the header. To decrypt,
the KMS's Decrypt unwraps it, and its answer names the master key that did: a reader
checks it is the one the header names (and one of ``allowed_keys``, when given) before
releasing anything (:mod:`kmsnb._key_check`). The KMS is any object with the two methods of
:class:`kmsnb.kms.Kms`; this module never imports a concrete backend.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from kmsnb._context import check_context_matches, check_encryption_context
from kmsnb._format.header import (
    CONTENT_TYPE_BYTES,
    BoundSection,
    Header,
    VerifiedKeySlot,
    read_header,
    seal_header,
)
from kmsnb._format.payload import DEFAULT_CACHE_SIZE
from kmsnb._format.stream import (
    DEFAULT_BUFFER_SIZE,
    DecryptReader,
    EncryptWriter,
)
from kmsnb._hints import naming_key_and_kms
from kmsnb._key_check import AllowedKeys, resolve_allowed_keys, unwrap_data_key
from kmsnb._keynames import resolve_key_name
from kmsnb.kms._base import Kms, UnwrappedKey, for_message, is_kms

__all__ = [
    "DecryptReader",
    "EncryptWriter",
    "FileInfo",
    "SeekableDecryptReader",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_decrypt",
    "open_decrypt_seekable",
    "open_encrypt",
]

StrPath = str | os.PathLike[str]

if TYPE_CHECKING:
    from kmsnb._file_info import FileInfo
    from kmsnb._file_ops import decrypt_file, encrypt_file, inspect
    from kmsnb._format.seekable import SeekableDecryptReader

# Loaded on first use, as name -> module: the file operations (and inspect) live in
# kmsnb._file_ops, which builds on the streams here, so that module can import this one;
# FileInfo (a dataclass with its displays) in kmsnb._file_info, and the seekable reader
# (with its AES-GCM and the standard hmac), which a stream's reader or writer (kmsnb
# encrypt, kmsnb decrypt) never needs.
_LAZY = {
    "FileInfo": "kmsnb._file_info",
    "SeekableDecryptReader": "kmsnb._format.seekable",
    "decrypt_file": "kmsnb._file_ops",
    "encrypt_file": "kmsnb._file_ops",
    "inspect": "kmsnb._file_ops",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'kmsnb.envelope' has no attribute {name!r}")


def _check_kms(kms: object) -> Kms:
    if not is_kms(kms):
        raise TypeError(
            "kms must be a KMS client (kmsnb.connect(), or any object with "
            "generate_data_key and decrypt_data_key)"
        )
    return kms


def _unwrap(
    kms: Kms, header: Header, allowed: AllowedKeys | None
) -> tuple[UnwrappedKey, VerifiedKeySlot]:
    """The header's data key, once it has verified the key slot and the KMS has unwrapped
    it with the key the header names (and one of ``allowed``); see :mod:`kmsnb._key_check`.

    With the proof of the slot's check, so that the reader does not make it again.
    """
    proofs: list[VerifiedKeySlot] = []
    with naming_key_and_kms(header.key_id, kms):
        key = unwrap_data_key(
            kms,
            header.wrapped_key,
            header.encryption_context,
            claimed_key_id=header.key_id,
            allowed=allowed,
            authenticate=lambda data_key: proofs.append(header.verify_key_slot(data_key)),
        )
    if len(proofs) != 1:
        key.wipe()
        raise AssertionError("kmsnb: internal error: the key slot was not verified once")
    return key, proofs[0]


def _check_expected_context(header: Header, expected: Mapping[str, str] | None) -> None:
    """Refuse a file whose encryption context is not exactly the one the caller named."""
    check_context_matches(check_encryption_context(expected), header.encryption_context)


def open_encrypt(
    fileobj: BinaryIO,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    content_type: str = CONTENT_TYPE_BYTES,
    plaintext_size: int | None = None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> EncryptWriter:
    """Return a writable binary file that encrypts into ``fileobj``.

    Call ``close()`` (or leave a ``with`` block normally) to write the final chunk; the
    given ``fileobj`` is left open. Leaving the ``with`` block on an exception leaves an
    unreadable, truncated stream instead of a shorter valid one.

    Args:
        fileobj: a binary file open for writing.
        key_id: the master key: an id, ``alias/NAME``, a bare ``NAME`` (meaning
            ``alias/NAME``) or an ARN; see :func:`kmsnb._keynames.resolve_key_name`.
        kms: the KMS client.
        encryption_context: strings bound to the data key and stored in the header.
        content_type: what the plaintext is, recorded in the header.
        plaintext_size: the exact number of bytes that will be written, if known.
        buffer_size: plaintext bytes encrypted per step.

    Raises:
        KmsError: the KMS refused or failed to make a data key.
    """
    key_id = resolve_key_name(key_id)
    kms = _check_kms(kms)
    if not callable(getattr(fileobj, "write", None)):
        raise TypeError("fileobj must be a binary file open for writing")
    context = check_encryption_context(encryption_context) or {}
    # The fields are checked (and encoded) first, so a bad argument costs no KMS call.
    bound = BoundSection(
        content_type=content_type, encryption_context=context, plaintext_size=plaintext_size
    )
    with naming_key_and_kms(key_id, kms):
        data_key = for_message(kms, plaintext_size).generate_data_key(key_id, context)
    try:
        header = seal_header(
            bound,
            data_key=data_key.plaintext,
            key_id=data_key.key_id,
            key_version_id=data_key.key_version_id,
            wrapped_key=data_key.ciphertext_blob,
        )
        return EncryptWriter(fileobj, header, data_key.plaintext, buffer_size=buffer_size)
    finally:
        data_key.wipe()


def open_decrypt(
    fileobj: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | AllowedKeys | None = None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> DecryptReader:
    """Return a readable binary file of the verified plaintext of ``fileobj``.

    The header is read and the data key unwrapped right away; the KMS's answer must name
    the master key the header names, and one of ``allowed_keys`` when given. Reads return
    plaintext only from chunks whose authentication succeeded; the last bytes come only
    once the final chunk has verified. ``fileobj`` is left open.

    Args:
        fileobj: a binary file open for reading, at the start of a kmsnb message.
        kms: the KMS client.
        encryption_context: the context the file must carry; ``None`` accepts its own.
        allowed_keys: the master keys (ids, aliases or ARNs, resolved through the KMS
            now, or already resolved: an ``AllowedKeys``, as Dask's tasks carry) the file
            may be under; ``None`` accepts the key the header names.
        buffer_size: ciphertext read per step, in plaintext bytes.

    Raises:
        FormatError: not a kmsnb file, or a malformed header.
        ContextMismatchError: ``encryption_context`` differs from the file's.
        WrongKeyError: the KMS would not unwrap the data key, or unwrapped it with
            another master key than the header names or one outside ``allowed_keys``.
        KmsError: the KMS failed, or an ``allowed_keys`` entry names no key.
        IntegrityError: (on read) the file was corrupted, truncated or tampered with.
    """
    fileobj, kms = _check_readable(fileobj, kms)
    header, key, verified = _unwrap_data_key(
        fileobj,
        kms=kms,
        encryption_context=encryption_context,
        allowed=resolve_allowed_keys(kms, allowed_keys),
    )
    with key:
        return DecryptReader(
            fileobj, header, key.plaintext, buffer_size=buffer_size, verified_slot=verified
        )


def _open_decrypt(
    fileobj: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed: AllowedKeys | None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> DecryptReader:
    """:func:`open_decrypt` with ``allowed_keys`` already resolved (Dask's tasks)."""
    fileobj, kms = _check_readable(fileobj, kms)
    header, key, verified = _unwrap_data_key(
        fileobj, kms=kms, encryption_context=encryption_context, allowed=allowed
    )
    with key:
        return DecryptReader(
            fileobj, header, key.plaintext, buffer_size=buffer_size, verified_slot=verified
        )


def open_decrypt_seekable(
    fileobj: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> SeekableDecryptReader:
    """Return a seekable, readable binary file of the verified plaintext of ``fileobj``.

    For readers that jump around, such as a Parquet reader that reads the footer and then
    only the columns it needs. ``fileobj`` must be seekable; the message runs from its
    current position to its end. Opening unwraps the data key and verifies the header, the
    key commitment, the payload's size and the final chunk; each read then decrypts and
    verifies only the chunks it touches (damage in chunks never read goes unnoticed, see
    ``docs/FORMAT.md``, "Random access"). Files written as a stream, of unknown size, are
    read too: the final-chunk rule gives their size. ``fileobj`` is left open.

    Args:
        cache_size: bytes of decrypted chunks kept for re-reads.
        Others: as for :func:`open_decrypt`.

    Raises:
        io.UnsupportedOperation: ``fileobj`` cannot seek (use :func:`open_decrypt`).
        FormatError, ContextMismatchError, WrongKeyError, KmsError: as for
            :func:`open_decrypt`.
        IntegrityError: the header, commitment, size or final chunk (on open), or a chunk
            that a read touches, failed authentication; ``TruncatedError`` for a payload
            shorter or longer than its header says.
    """
    seekable = getattr(fileobj, "seekable", None)
    if not (callable(seekable) and seekable()):
        raise io.UnsupportedOperation(
            "fileobj cannot seek; read it sequentially with open_decrypt instead"
        )
    fileobj, kms = _check_readable(fileobj, kms)
    # Imported here (start-up, see _LAZY), and before the data key is unwrapped.
    from kmsnb._format.seekable import SeekableDecryptReader

    header, key, verified = _unwrap_data_key(
        fileobj,
        kms=kms,
        encryption_context=encryption_context,
        allowed=resolve_allowed_keys(kms, allowed_keys),
    )
    with key:
        return SeekableDecryptReader(
            fileobj, header, key.plaintext, cache_size=cache_size, verified_slot=verified
        )


def _check_readable(fileobj: BinaryIO, kms: object) -> tuple[BinaryIO, Kms]:
    checked = _check_kms(kms)
    if not callable(getattr(fileobj, "read", None)):
        raise TypeError("fileobj must be a binary file open for reading")
    return fileobj, checked


def _unwrap_data_key(
    fileobj: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed: AllowedKeys | None,
) -> tuple[Header, UnwrappedKey, VerifiedKeySlot]:
    """Read the header and have the KMS unwrap the data key: the one path every reader
    takes, so each check made here (context, key slot, the key the KMS names, the allowed
    keys) applies to sequential and seekable reads alike."""
    header = read_header(fileobj)
    _check_expected_context(header, encryption_context)
    key, verified = _unwrap(kms, header, allowed)
    return header, key, verified


def encrypt_bytes(
    data: bytes | bytearray | memoryview,
    key_id: str,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    content_type: str = CONTENT_TYPE_BYTES,
) -> bytes:
    """Encrypt ``data`` into a kmsnb message (see :func:`open_encrypt`)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    view = memoryview(data).cast("B")
    sink = io.BytesIO()
    with open_encrypt(
        sink,
        key_id,
        kms=kms,
        encryption_context=encryption_context,
        content_type=content_type,
        plaintext_size=len(view),
    ) as writer:
        writer.write(view)
    return sink.getvalue()


def decrypt_bytes(
    data: bytes | bytearray | memoryview,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
) -> bytes:
    """Decrypt a whole kmsnb message held in memory (see :func:`open_decrypt`)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    with open_decrypt(
        io.BytesIO(data), kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    ) as reader:
        return reader.readall()
