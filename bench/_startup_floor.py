"""The floor under ``kmsnb encrypt`` in ``bench/bench_startup.py``: its dependencies alone.

    python bench/_startup_floor.py SRC -o DST

does what any command line must that encrypts a file as ``kmsnb encrypt`` with a
``local:`` KMS does, with the same libraries and none of kmsnb's code: import argparse
and build one parser, import json (the keystore is JSON) and base64 (its keys and the
wrapped data key are base64), AES-GCM (the emulator wraps the data key with the master
key), HMAC and HKDF (the header's key slot) and Cobblestone (the payload); then make a
data key, wrap it, derive and MAC a key slot, encrypt SRC and write DST, fsynced. It is
not a format (nothing reads DST back): its time says what the dependencies cost a fresh
process before kmsnb adds anything, so the ratios of ``kmsnb encrypt`` can be read
against it. Its keys are random and thrown away.
"""

from __future__ import annotations

import argparse
import base64
import json
import os

from cryptography.cobblestone import Cobblestone256Encryptor
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def main() -> int:
    parser = argparse.ArgumentParser(prog="startup-floor", description=__doc__)
    parser.add_argument("src", help="file to encrypt")
    parser.add_argument("-o", "--output", required=True, help="where to write")
    args = parser.parse_args()
    data_key = bytearray(os.urandom(32))
    wrapped = AESGCM(os.urandom(32)).encrypt(os.urandom(12), bytes(data_key), b"floor")
    slot_key = HKDF(hashes.SHA256(), 32, salt=None, info=b"floor").derive(bytes(data_key))
    mac = hmac.HMAC(slot_key, hashes.SHA256())
    mac.update(wrapped)
    header = json.dumps(
        {"wrapped": base64.b64encode(wrapped).decode(), "mac": mac.finalize().hex()}
    ).encode()
    with open(args.src, "rb") as source:
        plaintext = source.read()
    encryptor = Cobblestone256Encryptor(bytes(data_key), header)
    data_key[:] = bytes(len(data_key))
    with open(args.output, "wb") as sink:
        sink.write(header)
        sink.write(encryptor.update(plaintext))
        sink.write(encryptor.finalize())
        sink.flush()
        os.fsync(sink.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
