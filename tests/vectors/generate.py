"""Write the kmsnb v1 test vectors in this folder, one JSON file per scenario.

Run ``python tests/vectors/generate.py`` to rewrite them, ``--check`` to compare.

Every vector is deterministic: the data key, salt, wrapped key and plaintext of each are
derived from its name with SHAKE-128, and this script seals the payload itself (C2SP chunked
encryption from ``cryptography``'s HKDFExpand and AESGCM, as Cobblestone-256 does) because
``cryptography.cobblestone`` draws its salt from the operating system and takes none. A real
encoder MUST use a random salt; a fixed one is only for vectors. Headers are built here too,
field by field, so that malformed ones can be written. It imports nothing from kmsnb.

``tests/format/test_vectors.py`` checks that the committed files are byte for byte what this
script writes, that kmsnb (so ``cryptography.cobblestone``) and ``tests/c2sp_verifier.py``
both decrypt every success vector to its digest, that both reject every failure vector (kmsnb
with the named class), and that headers written here equal kmsnb's own.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

FOLDER = Path(__file__).resolve().parent

MAGIC = b"\x89KMSNB\r\n"
CHUNK_SIZE = 16384
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
PAYLOAD_PREFIX_SIZE = 24 + 32  # salt, commitment
UNKNOWN_SIZE = 2**64 - 1
MAX_HEADER_SIZE = 13 + 52 + 255 + 2048 + 256 + 4096 + 65536
MIN_HEADER_SIZE = 13 + 52 + 1
# The key slot from key_id's length to the end of the header, reserved field included.
MAX_KEY_SLOT_SIZE = 6 + 2048 + 256 + 4096 + 32

KEY_ID = "5f1c3a9e-2b7d-4e80-9a61-7c2f0d4b8e13"
KEY_VERSION_ID = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
CONTEXT = {"purpose": "kmsnb test vector"}
# Sorted by UTF-8 bytes (C3 A9 < EF BD A1 < F0 9F 98 80); UTF-16 order would put U+1F600
# before U+FF61, a trap for implementations in languages whose strings are UTF-16.
UNICODE_CONTEXT = {"é": "Grüße", "\uff61": "日本語", "\U0001f600": ""}


def shake(label: str, name: str, size: int) -> bytes:
    return hashlib.shake_128(f"kmsnb test vector {label}: {name}".encode()).digest(size)


def encode_context(pairs: list[tuple[str, str]]) -> bytes:
    """The context encoding, in the order given (the canonical one is sorted)."""
    parts = [struct.pack(">H", len(pairs))]
    for key, value in pairs:
        for text in (key.encode(), value.encode()):
            parts.append(struct.pack(">H", len(text)) + text)
    return b"".join(parts)


@dataclasses.dataclass
class Header:
    """Every header field as bytes, so that any of them can be made wrong."""

    plaintext_size: int | None
    context: bytes
    wrapped_key: bytes
    content_type: bytes = b"application/octet-stream"
    key_id: bytes = KEY_ID.encode()
    key_version_id: bytes = KEY_VERSION_ID.encode()
    version: int = 1
    algorithm: int = 1
    header_size: int | None = None  # None: the true size
    reserved: bytes | None = None  # the reserved field's bytes (zeros); None: no field
    reserved_length: int | None = None  # None: the true length
    mac_covers_reserved: bool = True  # the slot MAC takes the reserved field's length
    trailing: bytes = b""  # bytes between the slot MAC and the payload, counted in the size

    def bound(self) -> bytes:
        size = UNKNOWN_SIZE if self.plaintext_size is None else self.plaintext_size
        return b"".join(
            [
                MAGIC,
                bytes([self.version, self.algorithm, len(self.content_type)]),
                self.content_type,
                struct.pack(">QI", size, len(self.context)),
                self.context,
            ]
        )

    def slot(self) -> bytes:
        fields = (self.key_id, self.key_version_id, self.wrapped_key)
        return b"".join(struct.pack(">H", len(field)) + field for field in fields)

    def slot_mac(self, data_key: bytes) -> bytes:
        info = b"kmsnb/v1 key slot"
        slot_key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(data_key)
        covered = hashlib.sha256(self.bound()).digest() + self.slot()
        if self.reserved is not None and self.mac_covers_reserved:
            covered += struct.pack(">H", len(self.reserved))
        return hmac.digest(slot_key, covered, "sha256")

    def reserved_field(self) -> bytes:
        if self.reserved is None:
            return b""
        length = len(self.reserved) if self.reserved_length is None else self.reserved_length
        return struct.pack(">H", length) + self.reserved

    def encode(self, data_key: bytes) -> bytes:
        bound = self.bound()
        tail = self.slot() + self.slot_mac(data_key) + self.reserved_field() + self.trailing
        size = 13 + len(bound) - 9 + len(tail) if self.header_size is None else self.header_size
        return bound[:9] + struct.pack(">I", size) + bound[9:] + tail


def seal(data_key: bytes, salt: bytes, context: bytes, plaintext: bytes) -> bytes:
    """C2SP chunked encryption, instantiated as Cobblestone-256, with the given salt."""
    info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00" + salt + context
    derived = HKDFExpand(hashes.SHA512(), 32 + 12 + 32, info).derive(data_key)
    aead, base_nonce = AESGCM(derived[:32]), int.from_bytes(derived[32:44], "big")
    parts = [salt, derived[44:]]
    # Full chunks, then one final chunk that is always shorter than CHUNK_SIZE (maybe empty).
    for index in range(len(plaintext) // CHUNK_SIZE + 1):
        chunk = plaintext[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        parts.append(aead.encrypt((base_nonce ^ index).to_bytes(12, "big"), chunk, b""))
    return b"".join(parts)


@dataclasses.dataclass
class Message:
    """A valid file, and what it was made from; failure vectors edit its bytes."""

    name: str
    data_key: bytes
    plaintext: bytes
    header: bytes
    payload: bytes

    @property
    def file(self) -> bytes:
        return self.header + self.payload

    def chunk_offset(self, index: int) -> int:
        return len(self.header) + PAYLOAD_PREFIX_SIZE + index * ENCRYPTED_CHUNK_SIZE


def message(
    name: str,
    plaintext_size: int,
    *,
    known_size: bool = True,
    encryption_context: dict[str, str] | None = None,
    **fields: Any,
) -> Message:
    """A valid file (unless ``fields`` break its header) of ``plaintext_size`` bytes."""
    data_key = shake("data key", name, 32)
    chosen = CONTEXT if encryption_context is None else encryption_context
    pairs = sorted(chosen.items(), key=_utf8_key)
    header = Header(
        plaintext_size=plaintext_size if known_size else None,
        context=encode_context(pairs),
        wrapped_key=base64.b64encode(shake("wrapped key", name, 108)),
    )
    header = dataclasses.replace(header, **fields)
    plaintext = shake("plaintext", name, plaintext_size)
    context_digest = hashlib.sha256(header.bound()).digest()
    payload = seal(data_key, shake("salt", name, 24), context_digest, plaintext)
    return Message(name, data_key, plaintext, header.encode(data_key), payload)


def _utf8_key(pair: tuple[str, str]) -> bytes:
    return pair[0].encode()


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def success(description: str, source: Message) -> dict[str, object]:
    return {
        "description": description,
        "expect": "success",
        "data_key": source.data_key.hex(),
        "plaintext_size": len(source.plaintext),
        "plaintext_sha256": hashlib.sha256(source.plaintext).hexdigest(),
        "file": base64.b64encode(source.file).decode("ascii"),
    }


def failure(description: str, expect: str, data: bytes, data_key: bytes) -> dict[str, object]:
    return {
        "description": description,
        "expect": expect,
        "data_key": data_key.hex(),
        "file": base64.b64encode(data).decode("ascii"),
    }


def header_failure(name: str, description: str, expect: str, **fields: Any) -> dict[str, object]:
    """A file whose header is wrong in one way, with a payload otherwise bound to it."""
    bad = message(name, 100, **fields)
    return failure(description, expect, bad.file, bad.data_key)


Builder = Callable[[str], dict[str, object]]
CS = CHUNK_SIZE


def _success_vectors() -> dict[str, Builder]:
    def plain(size: int, description: str, **options: Any) -> Builder:
        return lambda name: success(description, message(name, size, **options))

    return {
        "empty": plain(
            0, "empty plaintext, empty context: one empty final chunk", encryption_context={}
        ),
        "one_byte": plain(1, "one byte: a single short final chunk"),
        "chunk_minus_one": plain(CS - 1, "16383 bytes: the longest single final chunk"),
        "one_chunk": plain(CS, "16384 bytes: one full chunk, then an empty final chunk"),
        "chunk_plus_one": plain(CS + 1, "16385 bytes: one full chunk, then a 1-byte final chunk"),
        "two_chunks_500": plain(2 * CS + 500, "two full chunks, then a 500-byte final chunk"),
        "stream_unknown_size": plain(
            CS + 100, "plaintext size unknown (a stream): 0xFFFF_FFFF_FFFF_FFFF", known_size=False
        ),
        "stream_unknown_size_empty": plain(
            0, "empty stream of unknown size: one empty final chunk", known_size=False
        ),
        "context_unicode": plain(
            10,
            "non-ASCII context, keys sorted by their UTF-8 bytes",
            encryption_context=UNICODE_CONTEXT,
        ),
        "content_type_csv": plain(200, "content type text/csv", content_type=b"text/csv"),
        "wrapped_key_at_bound": plain(
            5, "a 4096-byte wrapped key, the largest allowed", wrapped_key=b"A" * 4096
        ),
        "key_version_empty": plain(7, "an empty key version id is allowed", key_version_id=b""),
        "reserved_room": plain(
            100, "a reserved field of 256 zero bytes after the slot MAC", reserved=bytes(256)
        ),
        "reserved_empty": plain(
            3, "a reserved field of length 0: its two length bytes only", reserved=b""
        ),
        "reserved_at_bound": plain(
            9,
            "key slot and reserved field together at the largest slot's size",
            reserved=bytes(RESERVED_AT_BOUND),
        ),
    }


# What a vector's default key slot (222 bytes, its MAC and the reserved length) leaves of
# MAX_KEY_SLOT_SIZE for the reserved bytes.
RESERVED_AT_BOUND = MAX_KEY_SLOT_SIZE - (6 + len(KEY_ID) + len(KEY_VERSION_ID) + 144) - 32 - 2


def _header_failures() -> dict[str, Builder]:
    def bad(description: str, expect: str = "FormatError", **fields: Any) -> Builder:
        return lambda name: header_failure(name, description, expect, **fields)

    long_context = [(f"k{index:04}", "") for index in range(1025)]
    return {
        "bad_version": bad("version byte 0x02", version=2),
        "unknown_algorithm": bad("algorithm 0x02 is not defined", algorithm=2),
        "header_size_over_bound": bad(
            "declared header size MAX_HEADER_SIZE + 1, refused before reading it",
            header_size=MAX_HEADER_SIZE + 1,
        ),
        "header_size_under_bound": bad(
            "declared header size below the smallest possible header",
            header_size=MIN_HEADER_SIZE - 1,
        ),
        "header_size_mismatch": bad(
            "the declared size counts one byte more than the fields hold",
            trailing=b"\x00",
        ),
        "reserved_not_zero": bad(
            "a reserved field whose last byte is 0x01", reserved=bytes(255) + b"\x01"
        ),
        "reserved_length_past_header": bad(
            "a reserved length one more than the header holds",
            reserved=bytes(256),
            reserved_length=257,
        ),
        "reserved_length_short": bad(
            "a reserved length one less than the header holds: a byte follows the field",
            reserved=bytes(256),
            reserved_length=255,
        ),
        "reserved_over_bound": bad(
            "key slot and reserved field one byte over the largest slot's size",
            reserved=bytes(RESERVED_AT_BOUND + 1),
        ),
        "reserved_not_authenticated": bad(
            "a slot MAC that leaves out the reserved field's length",
            "IntegrityError",
            reserved=bytes(256),
            mac_covers_reserved=False,
        ),
        "content_type_not_printable": bad(
            "content type with a control character", content_type=b"text/csv\n"
        ),
        "key_id_empty": bad("empty key id", key_id=b""),
        "key_id_not_utf8": bad("key id that is not UTF-8", key_id=b"key-\xff"),
        "wrapped_key_over_bound": bad(
            "a 4097-byte wrapped key, one over the bound", wrapped_key=b"A" * 4097
        ),
        "wrapped_key_not_ascii": bad(
            "a wrapped key with a non-ASCII byte", wrapped_key="Aé".encode()
        ),
        "unsorted_context": bad(
            "context keys out of order; the encoding is not canonical",
            context=encode_context([("b", "1"), ("a", "2")]),
        ),
        "duplicate_context_key": bad(
            "the same context key twice", context=encode_context([("a", "1"), ("a", "2")])
        ),
        "empty_context_key": bad("an empty context key", context=encode_context([("", "1")])),
        "context_trailing_bytes": bad(
            "bytes after the context pairs", context=encode_context([("a", "1")]) + b"\x00"
        ),
        "context_too_many_pairs": bad(
            "1025 context pairs, one over the bound", context=encode_context(long_context)
        ),
    }


def _edited_failures() -> dict[str, Builder]:
    def base(name: str, size: int = CS + 1, **options: Any) -> Message:
        return message(name, size, **options)

    def edit(
        description: str,
        expect: str,
        change: Callable[[Message], bytes],
        size: int = CS + 1,
        **options: Any,
    ) -> Builder:
        def build(name: str) -> dict[str, object]:
            source = base(name, size, **options)
            return failure(description, expect, change(source), source.data_key)

        return build

    def key_slot(source: Message) -> int:
        return source.header.index(KEY_ID.encode())

    def prefix_size(source: Message) -> int:
        return len(source.header) + PAYLOAD_PREFIX_SIZE

    return {
        "empty_file": lambda name: failure("an empty file", "FormatError", b"", bytes(32)),
        "bad_magic": edit(
            "first magic byte changed", "FormatError", lambda m: flip(m.file, 0), size=1
        ),
        "truncated_in_magic": edit(
            "the file ends inside the magic", "TruncatedError", lambda m: m.file[:5], size=1
        ),
        "truncated_in_header": edit(
            "the file ends inside the header",
            "TruncatedError",
            lambda m: m.file[: len(m.header) - 1],
            size=1,
        ),
        "truncated_after_header": edit(
            "no payload at all", "TruncatedError", lambda m: m.header, size=1
        ),
        "truncated_in_prefix": edit(
            "the file ends inside the salt",
            "TruncatedError",
            lambda m: m.file[: len(m.header) + 10],
            size=1,
        ),
        "header_bit_flip": edit(
            "one bit of the content type changed (bound section)",
            "IntegrityError",
            lambda m: flip(m.file, 15, 5),
            size=1,
        ),
        "key_id_bit_flip": edit(
            "one bit of the key id changed (key slot)",
            "IntegrityError",
            lambda m: flip(m.file, key_slot(m), 5),
            size=1,
        ),
        "bad_slot_mac": edit(
            "one bit of the slot MAC changed",
            "IntegrityError",
            lambda m: flip(m.file, len(m.header) - 1),
            size=1,
        ),
        "wrong_data_key": lambda name: failure(
            "a valid file read with another data key",
            "IntegrityError",
            base(name, 1).file,
            shake("data key", "another", 32),
        ),
        "bad_salt": edit(
            "one bit of the salt changed",
            "IntegrityError",
            lambda m: flip(m.file, len(m.header)),
            size=1,
        ),
        "bad_commitment": edit(
            "one bit of the key commitment changed",
            "IntegrityError",
            lambda m: flip(m.file, prefix_size(m) - 1),
            size=1,
        ),
        "bad_tag_first_chunk": edit(
            "last tag byte of chunk 0 changed",
            "IntegrityError",
            lambda m: flip(m.file, m.chunk_offset(1) - 1),
        ),
        "bad_ciphertext_first_chunk": edit(
            "first ciphertext byte of chunk 0 changed",
            "IntegrityError",
            lambda m: flip(m.file, m.chunk_offset(0)),
        ),
        "bad_tag_last_chunk": edit(
            "last byte of the final chunk's tag changed",
            "IntegrityError",
            lambda m: flip(m.file, len(m.file) - 1),
        ),
        "empty_no_final_chunk": edit(
            "empty plaintext whose empty final chunk was cut off",
            "TruncatedError",
            lambda m: m.file[: prefix_size(m)],
            size=0,
        ),
        "truncated_at_boundary": edit(
            "cut after chunk 0: a full chunk cannot be final",
            "TruncatedError",
            lambda m: m.file[: m.chunk_offset(1)],
        ),
        "truncated_at_boundary_stream": edit(
            "cut after chunk 0 of a stream of unknown size",
            "TruncatedError",
            lambda m: m.file[: m.chunk_offset(1)],
            known_size=False,
        ),
        "truncated_mid_chunk": edit(
            "cut in the middle of chunk 0",
            "TruncatedError",
            lambda m: m.file[: m.chunk_offset(0) + 1000],
        ),
        "truncated_mid_chunk_stream": edit(
            "cut in the middle of chunk 0 of a stream: the piece fails as a final chunk",
            "IntegrityError",
            lambda m: m.file[: m.chunk_offset(0) + 1000],
            known_size=False,
        ),
        "trailing_data": edit(
            "one byte after the final chunk", "TruncatedError", lambda m: m.file + b"\x00"
        ),
        "trailing_data_stream": edit(
            "one byte after the final chunk of a stream: the final chunk fails",
            "IntegrityError",
            lambda m: m.file + b"\x00",
            known_size=False,
        ),
        "swapped_chunks": edit(
            "chunks 0 and 1 swapped",
            "IntegrityError",
            lambda m: (
                m.file[: m.chunk_offset(0)]
                + m.file[m.chunk_offset(1) : m.chunk_offset(2)]
                + m.file[m.chunk_offset(0) : m.chunk_offset(1)]
                + m.file[m.chunk_offset(2) :]
            ),
            size=2 * CS + 1,
        ),
        "duplicated_chunk": edit(
            "chunk 0 repeated as chunk 1 in a stream of unknown size",
            "IntegrityError",
            lambda m: m.file[: m.chunk_offset(1)] + m.file[m.chunk_offset(0) :],
            known_size=False,
        ),
    }


def build_vectors() -> dict[str, str]:
    """Every vector file's name and exact text."""
    builders = {**_success_vectors(), **_header_failures(), **_edited_failures()}
    return {
        f"{name}.json": json.dumps(build(name), indent=2, ensure_ascii=False) + "\n"
        for name, build in sorted(builders.items())
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    arguments = parser.parse_args(argv)
    vectors = build_vectors()
    if arguments.check:
        stale = [name for name, text in vectors.items() if _read(FOLDER / name) != text]
        extra = {path.name for path in FOLDER.glob("*.json")} - vectors.keys()
        for name in [*stale, *sorted(extra)]:
            print(f"differs or unexpected: {name}", file=sys.stderr)
        return 1 if stale or extra else 0
    for name, text in vectors.items():
        (FOLDER / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {FOLDER}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
