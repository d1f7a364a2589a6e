"""The emulator's CiphertextBlob, the layout the real KMS uses (``docs/kms-api.md``,
"CiphertextBlob")::

    CiphertextBlob = base64( KeyVersionId (36 ASCII) || IV (12) || AES-GCM ciphertext || tag (16) )

The key version id in front lets Decrypt find the key without a KeyId. The AES-GCM
associated data is the canonical encryption context: the pairs sorted by key, each written
``k=v``, joined with ``&``, in UTF-8; no context gives empty associated data. So a context
is compared by content, whatever JSON spacing or escapes the client used.

The form mirrors Alibaba's transfer SDK. It is not injective (``{"a": "b&c=d"}`` and
``{"a": "b", "c": "d"}`` give the same bytes), which a development emulator tolerates.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb.emulator._errors import invalid

if TYPE_CHECKING:  # an SM4 key's cipher comes from the store, which imports it
    from kmsnb.emulator._sm4 import SM4GCM

__all__ = ["VERSION_ID_SIZE", "associated_data", "open_blob", "seal", "split_blob"]

VERSION_ID_SIZE: Final = 36
IV_SIZE: Final = 12
TAG_SIZE: Final = 16
# The real service's bound: a blob this short cannot hold a version id and an IV.
_MIN_BLOB_SIZE: Final = VERSION_ID_SIZE + IV_SIZE + 1


def associated_data(encryption_context: Mapping[str, str]) -> bytes:
    return "&".join(f"{k}={encryption_context[k]}" for k in sorted(encryption_context)).encode()


def seal(version_id: str, aead: AESGCM | SM4GCM, plaintext: bytes, aad: bytes) -> str:
    iv = os.urandom(IV_SIZE)
    sealed = aead.encrypt(iv, plaintext, aad)
    return base64.b64encode(version_id.encode("ascii") + iv + sealed).decode("ascii")


def split_blob(ciphertext_blob: str) -> tuple[str, bytes]:
    """Decode a blob leniently; return its key version id and the unverified rest.

    Whitespace anywhere is ignored (a blob read back from a text file keeps its newline)
    and missing ``=`` padding is tolerated.

    Raises:
        ServiceError: InvalidParameter if it is not base64 or too short to be a blob.
    """
    compact = "".join(ciphertext_blob.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("CiphertextBlob") from None
    if len(raw) < _MIN_BLOB_SIZE:
        raise invalid("CiphertextBlob")
    # A version id that is not ASCII cannot name a version: it is looked up and not found.
    version_id = raw[:VERSION_ID_SIZE].decode("ascii", errors="replace")
    return version_id, raw[VERSION_ID_SIZE:]


def open_blob(aead: AESGCM | SM4GCM, unverified: bytes, aad: bytes) -> bytes:
    """Verify and decrypt the part after the version id.

    Raises:
        ServiceError: InvalidParameter "CiphertextBlob" if authentication fails, which is
            how a wrong encryption context or a tampered blob shows.
    """
    iv, sealed = unverified[:IV_SIZE], unverified[IV_SIZE:]
    if len(sealed) < TAG_SIZE:
        raise invalid("CiphertextBlob")
    try:
        return aead.decrypt(iv, sealed, aad)
    except InvalidTag:
        raise invalid("CiphertextBlob") from None
