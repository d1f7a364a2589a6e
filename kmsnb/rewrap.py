"""Move an encrypted file to another master key without re-encrypting its data.

The payload of a kmsnb file is bound to the header's bound section only (content type,
plaintext size, encryption context); the key slot (master key id, version, wrapped data
key) is authenticated separately, by an HMAC under a key derived from the data key (see
``kmsnb/_format/header.py``). Rewrapping therefore replaces the key slot and nothing else:

1. the KMS unwraps the data key (Decrypt), which proves the caller may use the old master
   key and the encryption context is right; its answer must name the master key the header
   names (and one of ``allowed_keys``, when given), as on every read; the old key slot is
   verified with the data key;
2. the KMS rewraps the same data key under the new master key (ReEncrypt);
3. a new key slot is authenticated with the data key, which is then wiped;
4. the new header and the old payload bytes, unchanged, are written to a new file (with
   the old one's owner, group and mode) that replaces the original. The payload is
   copied, not decrypted: no plaintext exists at any point, and the cost is a byte copy
   rather than a decryption and an encryption.

The data key stays the same, so rewrapping does not recover from a compromise of the data
key (or of a master key that may already have unwrapped it): whoever holds it still
decrypts the file. Only re-encryption, under a fresh data key, does.

A file with more than one hard link is refused rather than rewritten in place: replacing
it would leave the other links on the old key (unreadable once that key is deleted), and
an in-place rewrite cannot be atomic (the header may change size, which shifts the whole
payload), so a crash halfway would lose the file under every name.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from kmsnb._context import check_context_matches, check_encryption_context
from kmsnb._files import atomic_output
from kmsnb._format.header import read_header
from kmsnb._key_check import resolve_allowed_keys, unwrap_data_key
from kmsnb._keynames import resolve_key_name
from kmsnb._progress import progress_bar
from kmsnb.envelope import FileInfo
from kmsnb.kms._base import KmsClient

__all__ = ["rewrap_file"]

_COPY_SIZE = 1024 * 1024


def rewrap_file(
    path: str | os.PathLike[str],
    new_key_id: str,
    *,
    kms: KmsClient,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
) -> FileInfo:
    """Rewrap the data key of the kmsnb file at ``path`` under ``new_key_id``, in place.

    Only the header's key slot changes; the encrypted payload is copied byte for byte, so
    the data is never decrypted and nothing but ciphertext touches the disk. The new file
    replaces the old one once complete and fsynced; after any error the old file is
    untouched. Rewrapping under the same key moves the file to the key's current primary
    version (after a rotation). The payload itself is not read for verification: that
    happens, as always, when the file is decrypted.

    Args:
        path: the kmsnb file (a symbolic link is followed; its target is rewritten).
            It keeps its owner, group and mode.
        new_key_id: the master key to move to: an id, ``alias/NAME``, a bare ``NAME``
            (meaning ``alias/NAME``) or an ARN.
        kms: a KMS client allowed to Decrypt under the old key and ReEncrypt to the new.
        encryption_context: if given, the context the file must have (checked before the
            KMS is asked anything). The file keeps its own context either way.
        allowed_keys: the master keys (ids, aliases or ARNs) the file may be under now;
            ``None`` accepts the key its header names.

    Returns:
        what the new header says (see :func:`kmsnb.inspect`).

    Raises:
        FormatError: not a kmsnb file, or a malformed header.
        ContextMismatchError: ``encryption_context`` differs from the file's.
        WrongKeyError, KmsError: the KMS would not unwrap the data key (or unwrapped it
            with another key than the header names, or one outside ``allowed_keys``), or
            would not rewrap it under ``new_key_id``.
        IntegrityError: the old key slot failed authentication (the header was altered).
        ValueError: ``path`` is not a regular file, or has more than one hard link.
        PermissionError: the new file could not keep the old one's owner or group
            (rewrap as the owner or as root).
    """
    new_key_id = resolve_key_name(new_key_id)
    expected = check_encryption_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)
    target = Path(path).resolve(strict=True)
    _check_replaceable(target, target.stat())  # before open(), which a FIFO would block
    with open(target, "rb") as source:
        status = os.fstat(source.fileno())
        _check_replaceable(target, status)
        old = read_header(source)
        check_context_matches(expected, old.encryption_context)
        context = dict(old.encryption_context)
        with unwrap_data_key(  # the old key slot verified, too
            kms,
            old.wrapped_key,
            old.encryption_context,
            claimed_key_id=old.key_id,
            allowed=allowed,
            authenticate=old.verify_key_slot,
        ) as data_key:
            wrapped = kms.re_encrypt(
                old.wrapped_key,
                new_key_id,
                source_encryption_context=context,
                destination_encryption_context=context,
            )
            new = old.with_key_slot(
                data_key.plaintext,
                key_id=wrapped.key_id,
                key_version_id=wrapped.key_version_id,
                wrapped_key=wrapped.ciphertext_blob,
            )
        payload_size = os.fstat(source.fileno()).st_size - old.size
        with (
            atomic_output(target, overwrite=True) as output,
            progress_bar(payload_size, f"rewrap {target.name}") as advance,
        ):
            # atomic_output creates its file 0600, owned by us: keep what the file had.
            _keep_owner_and_mode(output.fileno(), status, target)
            output.write(new.raw)
            _copy(source, output, advance)
            file_size = output.tell()
    return FileInfo.from_header(new, file_size=file_size)


def _check_replaceable(target: Path, status: os.stat_result) -> None:
    """Refuse, before any KMS call, a file that replacing would not rewrap faithfully."""
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{target} is not a regular file; kmsnb rewraps files only")
    if status.st_nlink > 1:
        raise ValueError(
            f"{target} has {status.st_nlink} hard links; rewrapping replaces the file, which "
            "would leave the other links under the old master key. Rewrap a copy "
            "(cp -p FILE NEW), or remove the other links first"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        groups = {os.getegid(), *os.getgroups()}
        if status.st_uid != os.geteuid() or status.st_gid not in groups:
            raise PermissionError(
                f"rewrapping {target} would change its owner or group (uid {status.st_uid}, "
                f"gid {status.st_gid}); rewrap it as its owner or as root"
            )


def _keep_owner_and_mode(fd: int, status: os.stat_result, target: Path) -> None:
    new = os.fstat(fd)
    try:
        if (new.st_uid, new.st_gid) != (status.st_uid, status.st_gid):
            os.fchown(fd, status.st_uid, status.st_gid)
        os.fchmod(fd, stat.S_IMODE(status.st_mode))  # after fchown, which clears set-id bits
    except PermissionError:
        raise PermissionError(
            f"cannot keep the owner, group or mode of {target}; it was left unchanged"
        ) from None


def _copy(source: io.BufferedReader, output: BinaryIO, advance: Callable[[int], None]) -> None:
    view = memoryview(bytearray(_COPY_SIZE))
    while count := source.readinto(view):
        output.write(view[:count])
        advance(count)
