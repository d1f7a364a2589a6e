"""AES-EAX (Bellare, Rogaway, Wagner, "The EAX Mode of Operation", FSE 2004) over pyca.

Only for reading the files of Alibaba's envelope-encryption tutorial, which used
pycryptodome's ``AES.MODE_EAX``; kmsnb's own format never uses EAX. Built from the two
primitives the paper is made of, both from ``cryptography``::

    OMAC^t(M) = CMAC_K([t]_16 ‖ M)           [t]_16: fifteen zero bytes, then t
    N' = OMAC^0(nonce)   H' = OMAC^1(associated data)
    C  = AES-CTR_K(initial counter N', M)     a full 128-bit big-endian counter
    tag = (N' ⊕ H' ⊕ OMAC^2(C))[:tag size]

Decryption checks the tag over the ciphertext before it decrypts a single byte, so no
plaintext exists unless the message is authentic.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = ["BLOCK_SIZE", "TAG_SIZE", "InvalidTag", "eax_decrypt", "eax_encrypt"]

BLOCK_SIZE = 16
#: pycryptodome's default, and what the tutorial's files carry.
TAG_SIZE = 16


def _omac(key: bytes | bytearray, tweak: int, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(bytes(key)))
    mac.update(bytes(BLOCK_SIZE - 1) + bytes([tweak]))
    mac.update(data)
    return mac.finalize()


def _ctr(key: bytes | bytearray, counter: bytes, data: bytes) -> bytes:
    # OpenSSL's CTR increments the whole 16-byte block as one big-endian integer, which is
    # what EAX specifies (and what pycryptodome does).
    transform = Cipher(algorithms.AES(bytes(key)), modes.CTR(counter)).encryptor()
    output = transform.update(data)  # no concatenation: this may be gigabytes
    transform.finalize()  # CTR keeps no partial block back, so this adds nothing
    return output


def _check(key: bytes | bytearray, nonce: bytes, tag_size: int) -> None:
    if len(key) not in (16, 24, 32):
        raise ValueError("an AES key is 16, 24 or 32 bytes")
    if not nonce:
        raise ValueError("the EAX nonce must not be empty")
    if not 1 <= tag_size <= BLOCK_SIZE:
        raise ValueError(f"the EAX tag is 1 to {BLOCK_SIZE} bytes")


def _tag(
    key: bytes | bytearray, nonce_mac: bytes, associated_data: bytes, ciphertext: bytes
) -> bytes:
    header_mac = _omac(key, 1, associated_data)
    ciphertext_mac = _omac(key, 2, ciphertext)
    return bytes(n ^ h ^ c for n, h, c in zip(nonce_mac, header_mac, ciphertext_mac, strict=True))


def eax_encrypt(
    key: bytes | bytearray,
    nonce: bytes,
    plaintext: bytes,
    associated_data: bytes = b"",
    *,
    tag_size: int = TAG_SIZE,
) -> tuple[bytes, bytes]:
    """Return ``(ciphertext, tag)``, as pycryptodome's ``encrypt_and_digest`` does."""
    _check(key, nonce, tag_size)
    nonce_mac = _omac(key, 0, nonce)
    ciphertext = _ctr(key, nonce_mac, plaintext)
    return ciphertext, _tag(key, nonce_mac, associated_data, ciphertext)[:tag_size]


def eax_decrypt(
    key: bytes | bytearray,
    nonce: bytes,
    ciphertext: bytes,
    tag: bytes,
    associated_data: bytes = b"",
) -> bytes:
    """Verify ``tag``, then return the plaintext (``decrypt_and_verify``).

    Raises:
        cryptography.exceptions.InvalidTag: the tag does not match; nothing was decrypted.
    """
    _check(key, nonce, len(tag))
    nonce_mac = _omac(key, 0, nonce)
    expected = _tag(key, nonce_mac, associated_data, ciphertext)[: len(tag)]
    if not hmac.compare_digest(expected, tag):
        raise InvalidTag()
    return _ctr(key, nonce_mac, ciphertext)
