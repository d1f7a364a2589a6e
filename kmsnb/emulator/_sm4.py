"""SM4-GCM and SM3 for the OSCCA specs: ``KeySpec=Aliyun_SM4`` keys and ACS3-HMAC-SM3.

Both come from ``cryptography``'s primitives, nothing written by hand: SM4-GCM is
``Cipher(algorithms.SM4(key), modes.GCM(iv))`` (OpenSSL's SM4 in GCM mode, the mode
Alibaba uses for symmetric keys), SM3 is ``hashes.SM3`` and its HMAC ``hmac.HMAC``.
:class:`SM4GCM` has the interface of ``AESGCM`` that the blob code uses, so an SM4 key
version seals and opens CiphertextBlobs exactly as an AES one, in the same layout.

``AESGCM`` keeps its key inside OpenSSL; this class keeps its own as ``bytes``, which
cannot be wiped. A development emulator accepts that.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "SM4GCM",
    "SM4_KEY_SIZE",
    "hmac_sm3_hex",
    "sm3_hex",
    "sm3_signature",
    "sm3_string_to_sign",
]

SM4_KEY_SIZE: Final = 16
_TAG_SIZE: Final = 16


class SM4GCM:
    """SM4 in GCM mode with ``AESGCM``'s ``encrypt``/``decrypt`` (tag appended)."""

    def __init__(self, key: bytes | bytearray) -> None:
        if len(key) != SM4_KEY_SIZE:
            raise ValueError(f"an SM4 key is {SM4_KEY_SIZE} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "SM4GCM(<key hidden>)"

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            encryptor.authenticate_additional_data(associated_data)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """Raises ``InvalidTag`` when authentication fails, as ``AESGCM`` does."""
        if len(data) < _TAG_SIZE:
            raise InvalidTag()
        ciphertext, tag = data[:-_TAG_SIZE], data[-_TAG_SIZE:]
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(ciphertext) + decryptor.finalize()


def sm3_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def hmac_sm3_hex(key: bytes, message: bytes) -> str:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize().hex()


def sm3_string_to_sign(algorithm: str, canonical_request: str) -> str:
    """ACS3-HMAC-SM3's string to sign: the algorithm, then the SM3 of the canonical request.

    (The SDK sends the body's SM3 in ``x-acs-content-sha256``, the ACS3 header's name.)
    """
    return f"{algorithm}\n{sm3_hex(canonical_request.encode('utf-8'))}"


def sm3_signature(secret: str, string_to_sign: str) -> str:
    """Lower-case hex HMAC-SM3 keyed with the AccessKey secret, as ACS3 does with SHA-256."""
    return hmac_sm3_hex(secret.encode("utf-8"), string_to_sign.encode("utf-8"))
