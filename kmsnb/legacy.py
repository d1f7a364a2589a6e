"""Files made by Alibaba Cloud's envelope-encryption tutorial: read, decrypt, convert.

The tutorial ("Use envelope encryption to encrypt and decrypt local data") calls
GenerateDataKey (``NumberOfBytes=32``), encrypts the whole file in memory with
pycryptodome's ``AES.new(base64.b64decode(Plaintext), AES.MODE_EAX)`` and writes a text
file of four lines, each ending in ``\\n``::

    line 1  the wrapped data key: the KMS's CiphertextBlob, as it was sent
    line 2  base64 of the EAX nonce (pycryptodome's default, 16 bytes)
    line 3  base64 of the ciphertext of the whole file
    line 4  base64 of the EAX tag (16 bytes)

There is no associated data and no encryption context. The AES key is the 32-byte data
key itself, which is what :meth:`kmsnb.kms.Kms.decrypt_data_key` returns. Such a file is
read whole, by design, so its size is bounded (:data:`MAX_LEGACY_FILE_SIZE`), and at most
that many bytes (plus one, to see the end) are ever read, whatever ``fstat`` says. The file
names no master key; readers may pin the keys it can be under with ``allowed_keys``.
"""

from __future__ import annotations

import binascii
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from kmsnb._eax import TAG_SIZE, InvalidTag, eax_decrypt
from kmsnb._files import atomic_output
from kmsnb._format.header import MAX_WRAPPED_KEY_SIZE
from kmsnb._key_check import resolve_allowed_keys, unwrap_data_key
from kmsnb._keynames import resolve_key_name
from kmsnb._legacy_sniff import looks_like_legacy
from kmsnb.envelope import FileInfo, open_encrypt
from kmsnb.errors import FormatError, IntegrityError
from kmsnb.kms._base import Kms, KmsClient

__all__ = [
    "MAX_LEGACY_FILE_SIZE",
    "LegacyEnvelope",
    "convert_legacy_file",
    "decrypt_legacy",
    "decrypt_legacy_file",
    "looks_like_legacy",
    "master_key_of",
    "parse_legacy",
    "read_legacy",
]

StrPath = str | os.PathLike[str]

#: Legacy files are read whole into memory (plus their decoded ciphertext and plaintext).
MAX_LEGACY_FILE_SIZE = 2 * 1024**3
MAX_NONCE_SIZE = 1024
_LINE_NAMES = ("the wrapped data key", "the nonce", "the ciphertext", "the tag")
# An Alibaba CiphertextBlob starts with the id of the key version that made it (a UUID).
_KEY_VERSION_ID_SIZE = 36


@dataclass(frozen=True)
class LegacyEnvelope:
    """The four parts of a tutorial ``.cipher`` file, parsed but not yet authenticated."""

    wrapped_key: str
    nonce: bytes
    ciphertext: bytes = field(repr=False)
    tag: bytes

    def describe(self) -> dict[str, object]:
        """What can be said without the KMS, for ``kmsnb inspect``: sizes and algorithm."""
        return {
            "format": "alibaba-tutorial-eax",
            "algorithm": "AES-EAX (pycryptodome, whole file)",
            "wrapped_key_size": len(self.wrapped_key),
            "nonce_size": len(self.nonce),
            "ciphertext_size": len(self.ciphertext),
            "tag_size": len(self.tag),
        }


def parse_legacy(data: bytes) -> LegacyEnvelope:
    """Split and decode the four lines of a tutorial file held in memory.

    Raises:
        FormatError: not four lines, a line that is not base64, or a field out of bounds.
    """
    lines = _split_lines(data)
    if len(lines) != len(_LINE_NAMES):
        raise FormatError(
            f"not a kmsnb file, nor a tutorial .cipher file: found {len(lines)} line(s) where "
            "a .cipher file has 4 (wrapped data key, nonce, ciphertext, tag)"
        )
    decoded = [_decode_line(index, line) for index, line in enumerate(lines)]
    wrapped_key = bytes(lines[0]).decode("ascii")
    nonce, ciphertext, tag = decoded[1], decoded[2], decoded[3]
    if not decoded[0] or len(wrapped_key) > MAX_WRAPPED_KEY_SIZE:
        raise FormatError(
            f"line 1 (the wrapped data key) has {len(wrapped_key)} characters, outside "
            f"1..{MAX_WRAPPED_KEY_SIZE}"
        )
    if not 1 <= len(nonce) <= MAX_NONCE_SIZE:
        raise FormatError(f"line 2 (the nonce) is {len(nonce)} bytes, outside 1..{MAX_NONCE_SIZE}")
    if len(tag) != TAG_SIZE:
        raise FormatError(
            f"line 4 (the tag) is {len(tag)} bytes; the tutorial's EAX tags are {TAG_SIZE}"
        )
    return LegacyEnvelope(wrapped_key, nonce, ciphertext, tag)


def _split_lines(raw: bytes) -> list[memoryview]:
    """The lines as views (no copies of a file that may be gigabytes), ends trimmed."""
    if not isinstance(raw, bytes):
        raise TypeError(f"data must be bytes, not {type(raw).__name__}")
    view = memoryview(raw)
    lines = []
    start = 0
    while start <= len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        line_start, line_end = start, end
        # Text-mode writers on Windows leave "\r"; editors may add spaces.
        while line_start < line_end and raw[line_start] in b" \t\r":
            line_start += 1
        while line_end > line_start and raw[line_end - 1] in b" \t\r":
            line_end -= 1
        lines.append(view[line_start:line_end])
        start = end + 1
    while lines and not lines[-1]:  # the final "\n", and any blank lines after it
        lines.pop()
    return lines


def _decode_line(index: int, line: memoryview) -> bytes:
    try:
        return binascii.a2b_base64(line, strict_mode=True)
    except (binascii.Error, ValueError):
        raise FormatError(
            f"line {index + 1} ({_LINE_NAMES[index]}) is not valid base64; the file is "
            "damaged, or not a tutorial .cipher file"
        ) from None


def read_legacy(
    source: StrPath | BinaryIO, *, max_size: int = MAX_LEGACY_FILE_SIZE
) -> LegacyEnvelope:
    """Read and parse a whole tutorial file from a path or a binary stream.

    Raises:
        FormatError: the file exceeds ``max_size`` or does not parse (see :func:`parse_legacy`).
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fileobj:
            status = os.fstat(fileobj.fileno())
            if not stat.S_ISREG(status.st_mode):
                return parse_legacy(_read_bounded(fileobj, max_size))  # a FIFO, a device
            _check_size(status.st_size, max_size)
            # One allocation, sized from fstat; the bound still holds if the file grew.
            return parse_legacy(_read_bounded(fileobj, max_size, first_read=status.st_size + 1))
    return parse_legacy(_read_bounded(source, max_size))


def _check_size(size: int, max_size: int) -> None:
    if size > max_size:
        raise FormatError(
            f"the .cipher file is {size} bytes; tutorial files are decrypted whole in memory "
            f"and kmsnb refuses those over {max_size} bytes"
        )


def _read_bounded(fileobj: BinaryIO, max_size: int, *, first_read: int | None = None) -> bytes:
    """At most ``max_size + 1`` bytes of ``fileobj`` (one more than allowed is an error)."""
    # In steps: read(max_size + 1) on a pipe would allocate max_size bytes up front.
    parts = []
    total = 0
    step = first_read or 64 * 1024 * 1024
    while block := fileobj.read(min(step, max_size + 1 - total)):
        parts.append(block)
        total += len(block)
        _check_size(total, max_size)
        step = 64 * 1024 * 1024
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decrypt_legacy(
    envelope: LegacyEnvelope,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
) -> bytes:
    """Unwrap the data key with the KMS, verify the EAX tag, return the plaintext.

    Args:
        allowed_keys: the master keys (ids, aliases or ARNs) the file may be under;
            ``None`` accepts whichever the KMS unwraps it with (the file names none).

    Raises:
        WrongKeyError, KmsError: the KMS would not unwrap the data key, or unwrapped it
            with a key outside ``allowed_keys``.
        FormatError: the KMS returned a key that is no AES key.
        IntegrityError: the tag does not match; nothing was decrypted.
    """
    plaintext, _ = _decrypt(envelope, kms, encryption_context, allowed_keys)
    return plaintext


def _decrypt(
    envelope: LegacyEnvelope,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
) -> tuple[bytes, str]:
    """The plaintext, and the master key the KMS says unwrapped the data key."""
    allowed = resolve_allowed_keys(kms, allowed_keys)
    with unwrap_data_key(
        kms,
        envelope.wrapped_key,
        encryption_context,
        claimed_key_id=None,  # the file names no key
        allowed=allowed,
        key_sizes=None,
    ) as key:
        if len(key.plaintext) not in (16, 24, 32):
            raise FormatError(
                f"the unwrapped data key is {len(key.plaintext)} bytes, not an AES key"
            )
        try:
            plaintext = eax_decrypt(
                key.plaintext, envelope.nonce, envelope.ciphertext, envelope.tag
            )
        except InvalidTag:
            raise IntegrityError(
                "the .cipher file failed authentication (EAX tag); it was corrupted or "
                "tampered with",
                offset=0,
            ) from None
        return plaintext, key.key_id


def decrypt_legacy_file(
    src: StrPath,
    dst: StrPath,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allowed_keys: Iterable[str] | None = None,
) -> int:
    """Decrypt the tutorial file ``src`` into ``dst``; return the plaintext size.

    ``dst`` appears only once the tag has verified (see :func:`kmsnb.decrypt_file`).
    """
    envelope = read_legacy(src)
    with atomic_output(dst, overwrite=overwrite) as output:  # checks dst before the KMS
        plaintext = decrypt_legacy(
            envelope, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
        )
        output.write(plaintext)
    return len(plaintext)


def convert_legacy_file(
    src: StrPath,
    dst: StrPath,
    *,
    kms: Kms,
    key_id: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allowed_keys: Iterable[str] | None = None,
) -> FileInfo:
    """Rewrite the tutorial file ``src`` as the kmsnb file ``dst``.

    Args:
        key_id: the master key for ``dst``; by default the one that the KMS's Decrypt
            answer says unwrapped the data key of ``src``.
        encryption_context: the context of the new file. The tutorial's data keys have
            none, so the old key is unwrapped without one.
        allowed_keys: the master keys ``src`` may be under (see :func:`decrypt_legacy`).

    Raises:
        FormatError, IntegrityError, WrongKeyError, KmsError: see :func:`decrypt_legacy`.
    """
    if key_id is not None:
        key_id = resolve_key_name(key_id)  # a bare NAME is alias/NAME; checked before the KMS
    envelope = read_legacy(src)
    with atomic_output(dst, overwrite=overwrite) as output:  # checks dst before the KMS
        plaintext, unwrapped_by = _decrypt(envelope, kms, None, allowed_keys)
        target = key_id or unwrapped_by
        writer = open_encrypt(
            output,
            target,
            kms=kms,
            encryption_context=encryption_context,
            plaintext_size=len(plaintext),
        )
        with writer:
            writer.write(plaintext)
        file_size = output.tell()
    return FileInfo.from_header(writer.header, file_size=file_size)


def master_key_of(kms: Kms, wrapped_key: str) -> str | None:
    """The id of the master key that wrapped ``wrapped_key``, or ``None`` if unknown.

    Without unwrapping it (the KMS's Decrypt answer names the key too, but that releases
    the data key): an Alibaba CiphertextBlob starts with the id of the key version that
    made it, so a client that can list keys finds its owner.
    """
    version_id = _key_version_id(wrapped_key)
    if version_id is None or not isinstance(kms, KmsClient):
        return None
    keys = kms.list_keys()
    for key in keys:  # most files were made by a key's current version: no more calls
        if key.primary_key_version == version_id:
            return key.key_id
    for key in keys:
        if any(v.key_version_id == version_id for v in kms.list_key_versions(key.key_id)):
            return key.key_id
    return None


def _key_version_id(wrapped_key: str) -> str | None:
    compact = "".join(wrapped_key.split())
    try:
        raw = binascii.a2b_base64(compact + "=" * (-len(compact) % 4))
        return raw[:_KEY_VERSION_ID_SIZE].decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
