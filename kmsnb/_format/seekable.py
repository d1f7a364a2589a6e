"""Random access to a kmsnb payload: C2SP chunked encryption read chunk by chunk.

``cryptography.cobblestone`` (50) decrypts as a stream only: its decryptor cannot seek and
takes no chunk index. C2SP chunked encryption is designed for random access, though ("a
plaintext index i can be found at index i % 16384 of chunk i // 16384"), so this module
reads the same construction from the C2SP text (https://c2sp.org/chunked-encryption) with
``cryptography``'s ``HKDFExpand`` and ``AESGCM``, as ``tests/c2sp_verifier.py`` does. Nothing
here is a new primitive: the key derivation, the nonces and the chunk layout are C2SP's,
instantiated as Cobblestone-256 is, and ``tests/format/test_seekable.py`` checks this reader
against Cobblestone on every test vector and on random files.

What is verified, and when (``docs/FORMAT.md``, "Random access"):

- on open, before any plaintext is released: the key slot MAC, the key commitment, the
  payload's size (against ``plaintext_size``, or from the final-chunk rule when the size
  was not known) and the final chunk, which must be short and verify at its index. A
  forged length would need a valid chunk under the final chunk's nonce, so after this a
  truncated or extended file cannot pass for a shorter or longer one;
- on each read: every chunk the read touches, before any of its bytes are copied out.
  Chunks nobody reads are never decrypted, so damage there goes unnoticed.
"""

from __future__ import annotations

import hmac
import io
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from kmsnb._format.header import Header, VerifiedKeySlot
from kmsnb._format.payload import (
    CHUNK_SIZE,
    COMMITMENT_SIZE,
    DEFAULT_CACHE_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    KEY_SIZE,
    PAYLOAD_PREFIX_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    check_data_key,
    encrypted_payload_size,
    plaintext_size_for_payload,
    read_into,
    stream_position,
)
from kmsnb._wipe import wipe
from kmsnb.errors import FormatError, IntegrityError, KmsnbError, TruncatedError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DEFAULT_CACHE_SIZE", "SeekableDecryptReader"]

# C2SP's HKDF-Expand info prefix for Cobblestone-256, and the size of what it derives.
_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"
_NONCE_SIZE = 12
_DERIVED_SIZE = KEY_SIZE + _NONCE_SIZE + COMMITMENT_SIZE
#: C2SP: "the message MUST NOT exceed 2^38 chunks".
_MAX_CHUNK_COUNT = 1 << 38


class SeekableDecryptReader(io.RawIOBase):
    """A seekable, readable binary file of the verified plaintext of the payload in ``source``.

    ``source`` is a seekable binary file positioned just after ``header``; the payload runs
    from there to its end. Opening verifies the key slot, the key commitment, the payload's
    size and the final chunk (see the module docstring); each read then decrypts only the
    chunks it touches, into scratch buffers that are wiped if the tag fails, and copies out
    plaintext only from chunks whose tag verified. An integrity failure is sticky: every
    later read raises it again. Up to ``cache_size`` bytes of verified chunks are kept for
    re-reads. ``close()`` wipes them and the derived key material.

    Each ``read``/``readinto``/``seek`` is atomic, so threads may share a reader; a seek
    and the read after it are not, as with any file (pyarrow holds a lock around both).
    """

    def __init__(
        self,
        source: BinaryIO,
        header: Header,
        key: bytes | bytearray,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        close_source: bool = False,
        verified_slot: VerifiedKeySlot | None = None,
    ) -> None:
        super().__init__()
        # Every attribute first: close() (and so __del__) must work whatever fails below.
        self._source = source
        self._header = header
        self._close_source = close_source
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, bytearray] = OrderedDict()
        self._cache_limit = 1
        self._spare: list[bytearray] = []  # evicted full-chunk buffers, reused
        self._ciphertext = bytearray()  # sized in _open, once the chunk count is known
        self._derived = bytearray(_DERIVED_SIZE)  # key || base nonce || commitment
        self._aead: AESGCM | None = None
        self._base_nonce = 0
        self._error: KmsnbError | None = None
        self._position = 0
        self._plaintext_size = 0
        self._final_index = 0
        self._payload_start = 0
        try:
            check_data_key(key)
            if not isinstance(cache_size, int) or cache_size <= 0:
                raise ValueError("cache_size must be a positive integer")
            payload_start = stream_position(source)
            if payload_start is None:
                raise io.UnsupportedOperation(
                    "seekable decryption needs a seekable source (a regular file, BytesIO or "
                    "an fsspec file); read a pipe or socket with open_decrypt instead"
                )
            self._cache_limit = max(1, cache_size // CHUNK_SIZE)
            self._payload_start = payload_start
            header.require_verified_key_slot(key, verified_slot)
            self._open(key)
        except BaseException:
            self._release()
            raise

    # -- opening ----------------------------------------------------------------------------

    def _open(self, key: bytes | bytearray) -> None:
        """Check the commitment, the size and the final chunk."""
        prefix = bytearray(PAYLOAD_PREFIX_SIZE)
        got = self._read_at(self._payload_start, memoryview(prefix))
        if got < PAYLOAD_PREFIX_SIZE:
            raise TruncatedError(
                "the file ends before its payload begins; it was truncated",
                offset=self._header.size + got,
            )
        salt = bytes(prefix[:SALT_SIZE])
        info = _INFO_PREFIX + salt + self._header.payload_context
        HKDFExpand(hashes.SHA512(), _DERIVED_SIZE, info).derive_into(key, self._derived)
        commitment = memoryview(self._derived)[KEY_SIZE + _NONCE_SIZE :]
        # C2SP: "MUST check the commitment matches the derived value before continuing".
        if not hmac.compare_digest(commitment, prefix[SALT_SIZE:]):
            raise IntegrityError(
                "the header failed authentication (key commitment mismatch); the header or "
                "the start of the payload was altered",
                offset=self._header.size,
            )
        # Imported here: `import kmsnb` needs no AESGCM (issue 16's start-up budget).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(memoryview(self._derived)[:KEY_SIZE])
        self._base_nonce = int.from_bytes(self._derived[KEY_SIZE : KEY_SIZE + _NONCE_SIZE])
        # AESGCM holds its own copy of the key now; ours is no longer needed.
        wipe(self._derived)

        payload_size = self._source.seek(0, io.SEEK_END) - self._payload_start
        plaintext_size = self._plaintext_size_of(payload_size)
        self._final_index = plaintext_size // CHUNK_SIZE
        if self._final_index >= _MAX_CHUNK_COUNT:
            raise FormatError("the payload has more chunks than C2SP allows (2^38)")
        self._plaintext_size = plaintext_size
        run_size = min(self._cache_limit, self._final_index + 1)
        self._ciphertext = bytearray(run_size * ENCRYPTED_CHUNK_SIZE)
        # The final chunk must verify at its index: this authenticates the length.
        self._load(self._final_index, self._final_index)

    def _plaintext_size_of(self, payload_size: int) -> int:
        declared = self._header.plaintext_size
        if declared is not None:
            expected = encrypted_payload_size(declared)
            if payload_size > expected:
                raise TruncatedError(
                    "data follows the final chunk; the file was altered or concatenated",
                    chunk_index=declared // CHUNK_SIZE,
                    offset=self._header.size + expected,
                )
            if payload_size < expected:
                raise TruncatedError(
                    f"the file ends {expected - payload_size} bytes early; it was truncated",
                    chunk_index=(payload_size - PAYLOAD_PREFIX_SIZE) // ENCRYPTED_CHUNK_SIZE,
                    offset=self._header.size + payload_size,
                )
            return declared
        # A stream of unknown size: the final chunk is the one that is short (C2SP).
        plaintext_size = plaintext_size_for_payload(payload_size)
        if plaintext_size is not None:
            return plaintext_size
        # No plaintext has this payload size: name the chunk where it goes wrong.
        full_count, final_size = divmod(payload_size - PAYLOAD_PREFIX_SIZE, ENCRYPTED_CHUNK_SIZE)
        if final_size == 0:
            raise self._boundary_error(full_count, payload_size)
        raise IntegrityError(
            f"the final chunk ({full_count}) failed authentication; "
            "the file was truncated, corrupted or tampered with",
            chunk_index=full_count,
            offset=self._header.size + payload_size - final_size,
        )

    def _boundary_error(self, full_count: int, payload_size: int) -> IntegrityError:
        """A stream that ends at a chunk boundary lacks its final chunk: truncated, if its
        last chunk verifies; else that chunk is the damage (bytes were appended to a
        stream, say), which is what a sequential reader finds too."""
        if full_count:
            self._final_index = full_count  # every chunk before it is a full one
            self._ciphertext = bytearray(ENCRYPTED_CHUNK_SIZE)
            try:
                self._decrypt_run(full_count - 1, full_count - 1)
            except IntegrityError as error:
                return error
        return TruncatedError(
            "the file ends without its final chunk; it was truncated",
            chunk_index=full_count,
            offset=self._header.size + payload_size,
        )

    # -- the file interface -----------------------------------------------------------------

    @property
    def header(self) -> Header:
        return self._header

    @property
    def plaintext_size(self) -> int:
        """The size of the plaintext, authenticated by the final chunk."""
        return self._plaintext_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._lock:
            self._check_open()
            # The end is the plaintext size that the final chunk authenticated on open.
            bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._plaintext_size}
            if whence not in bases:
                raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
            position = bases[whence] + offset
            if position < 0:
                raise ValueError(f"negative seek position {position}")
            self._position = position
            return position

    def readinto(self, buffer: WriteableBuffer) -> int:
        with self._lock:
            return self._readinto(memoryview(buffer).cast("B"))

    def readall(self) -> bytes:
        with self._lock:
            self._check_open()
            result = bytearray(max(0, self._plaintext_size - self._position))
            self._readinto(memoryview(result))
            return bytes(result)

    def _readinto(self, target: memoryview) -> int:
        self._check_open()
        if self._error is not None:
            raise self._error
        start = self._position
        size = min(len(target), self._plaintext_size - start)
        if size <= 0:
            return 0
        last_index = (start + size - 1) // CHUNK_SIZE
        written = 0
        while written < size:
            index, within = divmod(start + written, CHUNK_SIZE)
            plaintext = self._cache.get(index)
            if plaintext is None:
                plaintext = self._load(index, last_index)
            else:
                self._cache.move_to_end(index)
            count = min(len(plaintext) - within, size - written)
            target[written : written + count] = memoryview(plaintext)[within : within + count]
            written += count
        self._position = start + written
        return written

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed kmsnb reader")

    # -- chunks -----------------------------------------------------------------------------

    def _load(self, first: int, last: int) -> bytearray:
        """Decrypt chunks ``first``.. (up to ``last``, the cache's size and the first cached
        chunk) into the cache; return chunk ``first``'s verified plaintext."""
        try:
            return self._decrypt_run(first, last)
        except KmsnbError as error:
            self._fail(error)
            raise

    def _decrypt_run(self, first: int, last: int) -> bytearray:
        aead = self._aead
        if aead is None:
            raise AssertionError("kmsnb: internal error: chunk read before the key was derived")
        last = min(last, first + self._cache_limit - 1, self._final_index)
        for index in range(first + 1, last + 1):
            if index in self._cache:  # read one run of missing chunks at a time
                last = index - 1
                break
        offset = PAYLOAD_PREFIX_SIZE + first * ENCRYPTED_CHUNK_SIZE
        final_size = self._plaintext_size % CHUNK_SIZE + TAG_SIZE
        size = (last - first) * ENCRYPTED_CHUNK_SIZE
        size += final_size if last == self._final_index else ENCRYPTED_CHUNK_SIZE
        ciphertext = memoryview(self._ciphertext)[:size]
        got = self._read_at(self._payload_start + offset, ciphertext)
        if got < size:
            raise TruncatedError(
                "the file became shorter while it was read; it was truncated",
                chunk_index=first + got // ENCRYPTED_CHUNK_SIZE,
                offset=self._header.size + offset + got,
            )
        result = None
        for index in range(first, last + 1):
            piece = ciphertext[(index - first) * ENCRYPTED_CHUNK_SIZE :][:ENCRYPTED_CHUNK_SIZE]
            plaintext = self._scratch(len(piece) - TAG_SIZE)
            nonce = (self._base_nonce ^ index).to_bytes(_NONCE_SIZE, "big")
            try:
                aead.decrypt_into(nonce, piece, b"", plaintext)
            except InvalidTag:
                # decrypt_into has written the unauthenticated plaintext: erase it.
                wipe(plaintext)
                final = "final " if index == self._final_index else ""
                raise IntegrityError(
                    f"{final}chunk {index} failed authentication; the file is corrupted or "
                    "was tampered with",
                    chunk_index=index,
                    offset=self._header.size + PAYLOAD_PREFIX_SIZE + index * ENCRYPTED_CHUNK_SIZE,
                ) from None
            self._remember(index, plaintext)
            if result is None:
                result = plaintext
        if result is None:
            raise AssertionError("kmsnb: internal error: an empty run of chunks")
        return result

    def _scratch(self, size: int) -> bytearray:
        if size == CHUNK_SIZE and self._spare:
            return self._spare.pop()
        return bytearray(size)

    def _remember(self, index: int, plaintext: bytearray) -> None:
        self._cache[index] = plaintext
        while len(self._cache) > self._cache_limit:
            _, evicted = self._cache.popitem(last=False)
            if len(evicted) == CHUNK_SIZE:
                self._spare.append(evicted)

    def _read_at(self, position: int, view: memoryview) -> int:
        """Fill ``view`` from ``position`` of the source; fewer bytes only at its end."""
        self._source.seek(position)
        filled = 0
        while filled < len(view):
            count = read_into(self._source, view[filled:])
            if not count:
                break
            filled += count
        return filled

    def _fail(self, error: KmsnbError) -> None:
        """Errors are sticky: a reader that found the file altered serves nothing more."""
        self._error = error
        self._drop_plaintext()

    def _drop_plaintext(self) -> None:
        for plaintext in (*self._cache.values(), *self._spare):
            wipe(plaintext)
        self._cache.clear()
        self._spare.clear()

    def _release(self) -> None:
        self._drop_plaintext()
        wipe(self._derived)
        self._aead = None
        try:
            if self._close_source:
                self._source.close()
        finally:
            super().close()

    def close(self) -> None:
        if self.closed:
            return
        with self._lock:
            self._release()
