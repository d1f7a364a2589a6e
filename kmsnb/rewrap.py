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
4. the new key slot is written **in place** when it fits in the old one's room (the slot
   and the reserved field kmsnb's writers leave after it, docs/FORMAT.md "Header"): one
   ``pwrite`` of a few hundred bytes, then ``fdatasync``. Otherwise the new header and the
   old payload bytes, unchanged, go to a new file (with the old one's owner, group and
   mode, and a reserved field, so the next rewrap is in place) that replaces the original.
   Either way no plaintext exists at any point.

**Why the in-place write is crash-safe.** It is done only when the whole region it
rewrites (from the key slot to the end of the header; the header's size and bound section
stay as they are) lies inside one 4096-byte-aligned block of the file, and it is a single
``pwrite`` of the complete region:

* a process killed at any moment (``kill -9``, the OOM killer, an exception) leaves the old
  slot or the new one, never a mix: Linux copies a write into the page cache a page at a
  time, checking for a fatal signal only between pages, and a region inside one aligned
  4096-byte block is inside one page; the page cache then reaches the disk whether or not
  the process lives. Both slots open the file: the same data key is wrapped in each.
* a power cut or kernel crash before ``fdatasync`` returns leaves, on a device that writes a
  4096-byte block atomically (NVMe drives with 4 KiB atomic writes, 4Kn disks), the old
  block or the new one. On a device that may tear a block (512-byte sectors written one
  by one), a torn slot fails its MAC: the reader gets an ``IntegrityError`` before any
  plaintext, never a wrong answer. That is the one case the copy, whose rename is atomic
  on every device, still covers better.
* nothing else in the file changes, so a file with several hard links is rewrapped under
  every name, and keeps its inode, owner, group and mode.

The data key stays the same, so rewrapping does not recover from a compromise of the data
key (or of a master key that may already have unwrapped it): whoever holds it still
decrypts the file. Only re-encryption, under a fresh data key, does.

When the new slot does not fit, a file with more than one hard link is refused rather
than copied: replacing it would leave the other links on the old key (unreadable once that
key is deleted).

**An object** (``s3://``, ``oss://``) cannot be written in place: the new header and the old
payload bytes, read by ranges, are streamed into a new upload of the same key, which
replaces the object whole when it completes (:func:`kmsnb.storage.open_output`); after any
error the old object is untouched. A store offers no compare-and-swap to kmsnb, so a writer
that replaces the object between the read and the commit loses to this rewrap.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from kmsnb._context import check_context_matches, check_encryption_context
from kmsnb._files import atomic_output
from kmsnb._format.header import Header, read_header
from kmsnb._key_check import AllowedKeys, resolve_allowed_keys, unwrap_data_key
from kmsnb._keynames import resolve_key_name
from kmsnb._progress import progress_bar
from kmsnb.envelope import FileInfo
from kmsnb.kms._base import KmsClient
from kmsnb.storage import is_url, open_input, open_output

__all__ = ["rewrap_file"]

_Source = io.BufferedReader | io.BufferedRandom  # the file, open "rb" or "r+b"
_COPY_SIZE = 1024 * 1024
# The in-place write stays inside one block of this size, aligned: inside one page of the
# page cache (pages are 4 KiB or a multiple), and one block of a 4 KiB-atomic device.
_BLOCK_SIZE = 4096


def rewrap_file(
    path: str | os.PathLike[str],
    new_key_id: str,
    *,
    kms: KmsClient,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> FileInfo:
    """Rewrap the data key of the kmsnb file at ``path`` under ``new_key_id``, in place.

    Only the header's key slot changes, and the data is never decrypted. When the new slot
    fits in the old one's room (files kmsnb writes keep room for a longer one) it is
    written over the old slot, in one write inside one disk block, then synced: the file
    keeps its inode and every payload byte stays where it is. Otherwise the encrypted
    payload is copied byte for byte into a new file, which replaces the old one once
    complete and fsynced. After any error the old file is untouched; a crash leaves the
    old key slot or the new one (see the module docstring for why). Rewrapping under the
    same key moves the file to the key's current primary version (after a rotation). The
    payload itself is not read for verification: that happens, as always, when the file
    is decrypted.

    Args:
        path: the kmsnb file (a symbolic link is followed; its target is rewritten).
            It keeps its owner, group and mode. Or an object's URL (``s3://``,
            ``oss://``): replaced whole by a copy with the new header, streamed.
        new_key_id: the master key to move to: an id, ``alias/NAME``, a bare ``NAME``
            (meaning ``alias/NAME``) or an ARN.
        kms: a KMS client allowed to Decrypt under the old key and ReEncrypt to the new.
        encryption_context: if given, the context the file must have (checked before the
            KMS is asked anything). The file keeps its own context either way.
        allowed_keys: the master keys (ids, aliases or ARNs) the file may be under now;
            ``None`` accepts the key its header names.
        storage_options: for a URL, as in pandas.

    Returns:
        what the new header says (see :func:`kmsnb.inspect`).

    Raises:
        FormatError: not a kmsnb file, or a malformed header.
        ContextMismatchError: ``encryption_context`` differs from the file's.
        WrongKeyError, KmsError: the KMS would not unwrap the data key (or unwrapped it
            with another key than the header names, or one outside ``allowed_keys``), or
            would not rewrap it under ``new_key_id``.
        IntegrityError: the old key slot failed authentication (the header was altered).
        ValueError: ``path`` is not a regular file, or the new slot does not fit in
            place and the file has more than one hard link.
        PermissionError: the new slot does not fit in place and a new file could not
            keep the old one's owner or group (rewrap as the owner or as root).
    """
    new_key_id = resolve_key_name(new_key_id)
    expected = check_encryption_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)
    if is_url(path):
        return _rewrap_object(str(path), new_key_id, kms, expected, allowed, storage_options)
    if storage_options:
        raise ValueError("storage_options is only for fsspec URLs (s3://..., oss://...)")
    target = Path(path).resolve(strict=True)
    _check_regular(target, target.stat())  # before open(), which a FIFO would block
    with _open_source(target) as (source, writable):
        status = os.fstat(source.fileno())
        _check_regular(target, status)
        if not writable:  # it can only be copied: refuse what a copy cannot do first
            _check_replaceable(target, status)
        old = read_header(source)
        new, in_place = _new_headers(
            old, new_key_id, kms, expected, allowed, in_place=writable and _in_one_block(old)
        )
        if in_place is not None:
            _rewrite_key_slot(source.fileno(), old, in_place, target)
            return FileInfo.from_header(in_place, file_size=os.fstat(source.fileno()).st_size)
        _check_replaceable(target, status)
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


def _new_headers(
    old: Header,
    new_key_id: str,
    kms: KmsClient,
    expected: Mapping[str, str] | None,
    allowed: AllowedKeys | None,
    *,
    in_place: bool,
) -> tuple[Header, Header | None]:
    """The file's header under ``new_key_id``: the one a copy writes, and (when
    ``in_place`` is asked and the new slot fits) the same-size one an in-place rewrite
    writes, else ``None``. The old key slot is checked first, as every read checks it."""
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
        slot = {
            "key_id": wrapped.key_id,
            "key_version_id": wrapped.key_version_id,
            "wrapped_key": wrapped.ciphertext_blob,
        }
        same_size = old.with_key_slot_in_place(data_key.plaintext, **slot) if in_place else None
        return same_size or old.with_key_slot(data_key.plaintext, **slot), same_size


@contextlib.contextmanager
def _open_source(target: Path) -> Iterator[tuple[_Source, bool]]:
    """The file, open for reading and, when the caller may write it, for writing too."""
    try:
        source: _Source = open(target, "r+b")  # noqa: SIM115 -- closed by the with below
        writable = True
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY):
            raise
        source, writable = open(target, "rb"), False  # noqa: SIM115 -- as above
    with source:
        yield source, writable


def _in_one_block(header: Header) -> bool:
    """Whether the region an in-place rewrap writes lies inside one aligned block (and
    this system has the positioned write that writes it in one call)."""
    same_block = header.key_slot_offset // _BLOCK_SIZE == (header.size - 1) // _BLOCK_SIZE
    return same_block and hasattr(os, "pwrite")


def _rewrite_key_slot(fd: int, old: Header, new: Header, target: Path) -> None:
    """Write ``new``'s key slot over ``old``'s: one pwrite inside one block, then a sync.

    The bound section on disk is checked first: in-place rewraps only ever change the key
    slot, and kmsnb's other writers replace the file (a new inode), so the bound section
    changes only if something else rewrote the file since it was read. Another rewrap that
    raced this one wrote a slot for the same data key: whichever lands last is valid.
    """
    offset = old.key_slot_offset
    if os.pread(fd, offset, 0) != old.raw[:offset]:
        raise ValueError(f"{target} changed while it was being rewrapped; it was left as it was")
    region = new.raw[offset:]
    written = os.pwrite(fd, region, offset)
    if written != len(region):  # not seen within one page; never leave a torn slot behind
        os.pwrite(fd, old.raw[offset:], offset)
        os.fsync(fd)
        raise OSError(errno.EIO, f"a short write rewrapping {target}; its old key slot was kept")
    # The file's size and blocks are unchanged: syncing its data is enough.
    getattr(os, "fdatasync", os.fsync)(fd)


def _check_regular(target: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{target} is not a regular file; kmsnb rewraps files only")


def _check_replaceable(target: Path, status: os.stat_result) -> None:
    """Refuse a file that replacing (the copy, when the new slot does not fit in place)
    would not rewrap faithfully."""
    if status.st_nlink > 1:
        raise ValueError(
            f"{target} has {status.st_nlink} hard links and its new key slot does not fit "
            "in place; replacing the file would leave the other links under the old master "
            "key. Rewrap a copy (cp -p FILE NEW), or remove the other links first"
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


def _copy(source: _Source, output: BinaryIO, advance: Callable[[int], None]) -> None:
    view = memoryview(bytearray(_COPY_SIZE))
    while count := source.readinto(view):
        output.write(view[:count])
        advance(count)


def _rewrap_object(
    url: str,
    new_key_id: str,
    kms: KmsClient,
    expected: Mapping[str, str] | None,
    allowed: AllowedKeys | None,
    storage_options: Mapping[str, Any] | None,
) -> FileInfo:
    """Rewrap an object: a new upload of the new header and the old payload bytes."""
    with open_input(url, storage_options=storage_options) as source:
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        old = read_header(source)
        new, _ = _new_headers(old, new_key_id, kms, expected, allowed, in_place=False)
        source.seek(old.size)
        name = url.rstrip("/").rsplit("/", 1)[-1]
        with (
            open_output(url, overwrite=True, storage_options=storage_options) as output,
            progress_bar(size - old.size, f"rewrap {name}") as advance,
        ):
            output.write(new.raw)
            _copy(source, output, advance)  # type: ignore[arg-type]
    return FileInfo.from_header(new, file_size=len(new.raw) + size - old.size)
