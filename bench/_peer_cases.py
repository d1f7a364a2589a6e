"""The cases of ``bench/bench_peers.py``, each run in a child process of its own.

    python bench/_peer_cases.py CASE --src PATH --dst PATH --state DIR [--many]

runs CASE once on one file (or, with ``--many``, on every file of the folder ``--src``
into the folder ``--dst``) and prints one ``BENCH-RESULT`` line: the seconds of the work
alone (imports and key set-up are done before the clock starts), the plaintext bytes
handled, the CPU time the work took in user space and in the kernel (``getrusage``, the
child's own threads included) and the child's memory (see ``bench/_common.py``).
``--state`` holds each peer's key material, made by its first encrypt run and read by
its decrypt runs: a raw AES key for the Cobblestone loop and the AWS Encryption SDK, a
Tink keyset, an age identity, and the keystore of kmsnb's local emulator (in process).
Nothing leaves the machine.

Every case leaves its output fsynced, except ``copy`` and kmsnb's ``*_nofsync`` cases
(``durable=False``). The peers' outputs are fsynced after their library has written them
(``fsync`` flushes the file's dirty pages whichever descriptor wrote them), and, with
``--peer-output safe`` (the driver's default), published as ``copy_safe`` publishes its
copy and kmsnb its output: written under a temporary name, fsynced, renamed into place,
and the folder fsynced. That is what a user of a peer must add to get kmsnb's guarantee
(no partial output after a crash, the name durable); ``--peer-output direct`` measures
the peers writing straight to the destination instead, with one fsync and no rename.

Before its clock starts, every child writes and drops an unnamed file as large as its
input (``_common.warm_page_cache``), so that no case pays for memory the VM's host took
back and the next case does not (see ``bench/_common.py``).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import MIB, emit_result, memory_snapshot, warm_page_cache

#: Read/write step of the loops written here, kmsnb's default step too.
BUFFER_SIZE = MIB
#: What each case is, for the report; the peer a case needs (an import name) or None.
CASES: dict[str, tuple[str, str | None]] = {
    "copy": ("plain copy, no fsync", None),
    "copy_fsync": ("plain copy + fsync", None),
    "copy_safe": ("crash-safe plain copy: temp file, fsync, rename, folder fsync", None),
    "cobblestone_enc": ("cryptography.cobblestone loop (Cobblestone-256), 1 MiB steps", None),
    "cobblestone_dec": ("cryptography.cobblestone loop, decrypt", None),
    "kmsnb_enc": ("kmsnb.encrypt_file, local emulator in process", None),
    "kmsnb_dec": ("kmsnb.decrypt_file, local emulator in process", None),
    "kmsnb_enc_nofsync": ("kmsnb.encrypt_file(durable=False): compare with copy", None),
    "kmsnb_dec_nofsync": ("kmsnb.decrypt_file(durable=False): compare with copy", None),
    "esdk_enc": ("AWS Encryption SDK defaults (ECDSA P-384 signed, 4 KiB frames)", "esdk"),
    "esdk_dec": ("AWS Encryption SDK defaults, decrypt", "esdk"),
    "esdk64_enc": ("AWS Encryption SDK unsigned, committing, 64 KiB frames", "esdk"),
    "esdk64_dec": ("AWS Encryption SDK unsigned, 64 KiB frames, decrypt", "esdk"),
    "tink_enc": ("Tink streaming AEAD AES256_GCM_HKDF_1MB", "tink"),
    "tink_dec": ("Tink streaming AEAD, decrypt", "tink"),
    "age_enc": ("age (pyrage 1.x, X25519 recipient), encrypt_file", "age"),
    "age_dec": ("age (pyrage), decrypt_file", "age"),
}
#: The import that tells whether a peer is installed (the ``bench`` extra).
PEER_MODULES = {"esdk": "aws_encryption_sdk", "tink": "tink", "age": "pyrage"}

Operation = Callable[[Path, Path], None]
_buffer = memoryview(bytearray(BUFFER_SIZE))


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _copy(src: Path, dst: Path, *, fsync: bool) -> None:
    with open(src, "rb") as source, open(dst, "wb") as sink:
        while count := source.readinto(_buffer):
            sink.write(_buffer[:count])
        if fsync:
            sink.flush()
            os.fsync(sink.fileno())


def _publish_safely(write: Operation, src: Path, dst: Path) -> None:
    """``write(src, temporary)`` (which fsyncs it), then rename it to ``dst`` and fsync the
    folder: what a crash-safe writer must do at least."""
    temporary = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    write(src, temporary)
    os.replace(temporary, dst)
    folder = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _copy_safe(src: Path, dst: Path) -> None:
    """The bar kmsnb's per-file cost is held to."""
    _publish_safely(lambda source, target: _copy(source, target, fsync=True), src, dst)


def _key_file(state: Path, name: str, make: Callable[[], bytes]) -> bytes:
    path = state / name
    if not path.exists():
        path.write_bytes(make())
    return path.read_bytes()


def _cobblestone(state: Path, *, encrypt: bool) -> Operation:
    from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor

    key = _key_file(state, "cobblestone.key", lambda: os.urandom(32))
    # Room for every chunk a step completes, plus the salt and commitment.
    out = bytearray(2 * BUFFER_SIZE)
    step = 64 * 16400 if not encrypt else BUFFER_SIZE  # whole encrypted chunks when reading

    def run(src: Path, dst: Path) -> None:
        cipher: Any = (Cobblestone256Encryptor if encrypt else Cobblestone256Decryptor)(
            key, b"bench"
        )
        view = memoryview(bytearray(step))
        with open(src, "rb") as source, open(dst, "wb") as sink:
            while count := source.readinto(view):
                produced = cipher.update_into(view[:count], out)
                sink.write(memoryview(out)[:produced])
            sink.write(cipher.finalize())
            sink.flush()
            os.fsync(sink.fileno())

    return run


def _kmsnb(state: Path, *, encrypt: bool, durable: bool = True) -> Operation:
    from kmsnb import decrypt_file, encrypt_file
    from kmsnb.kms.local import LocalKms

    kms = LocalKms(state / "keystore")
    key_id = _key_file(state, "kmsnb.key_id", lambda: kms.create_key().key_id.encode()).decode()
    # No progress bar: the peers draw none, and a bar's first use imports tqdm (tens of ms,
    # the README's performance section says how much), inside the timed call.
    if encrypt:
        return lambda src, dst: encrypt_file(
            src, dst, key_id, kms=kms, durable=durable, progress=False
        )
    return lambda src, dst: decrypt_file(src, dst, kms=kms, durable=durable, progress=False)


def _esdk(state: Path, *, encrypt: bool, unsigned: bool) -> Operation:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        Algorithm,
        CommitmentPolicy,
        EncryptionKeyType,
        WrappingAlgorithm,
    )
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

    wrapping_key = _key_file(state, "esdk.key", lambda: os.urandom(32))

    class StaticKeyProvider(RawMasterKeyProvider):  # type: ignore[misc]
        """The ESDK's documented "static master key provider": a raw AES key, no network."""

        provider_id = "kmsnb-bench"

        def __init__(self, **kwargs: Any) -> None:
            pass

        def _get_raw_key(self, key_id: bytes) -> WrappingKey:
            return WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=wrapping_key,
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            )

    provider = StaticKeyProvider()
    provider.add_master_key(b"bench")
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    options: dict[str, Any] = {}
    if encrypt and unsigned:
        options = {"algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, "frame_length": 65536}

    def run(src: Path, dst: Path) -> None:
        with open(src, "rb") as source, open(dst, "wb") as sink:
            mode = "e" if encrypt else "d"
            with client.stream(mode=mode, source=source, key_provider=provider, **options) as s:
                while chunk := s.read(BUFFER_SIZE):  # the docs iterate by line: slower
                    sink.write(chunk)
            sink.flush()
            os.fsync(sink.fileno())

    return run


def _tink(state: Path, *, encrypt: bool) -> Operation:
    import tink
    from tink import secret_key_access, streaming_aead

    streaming_aead.register()
    template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    keyset = _key_file(
        state,
        "tink.keyset",
        lambda: tink.proto_keyset_format.serialize(
            tink.new_keyset_handle(template), secret_key_access.TOKEN
        ),
    )
    handle = tink.proto_keyset_format.parse(keyset, secret_key_access.TOKEN)
    primitive = handle.primitive(streaming_aead.StreamingAead)

    def run(src: Path, dst: Path) -> None:
        with open(src, "rb") as source, open(dst, "wb") as sink:
            if encrypt:
                with primitive.new_encrypting_stream(sink, b"") as stream:
                    while count := source.readinto(_buffer):
                        stream.write(_buffer[:count])
            else:
                with primitive.new_decrypting_stream(source, b"") as stream:
                    while chunk := stream.read(BUFFER_SIZE):
                        sink.write(chunk)
        _fsync_path(dst)  # Tink's encrypting stream closes the file it wrote

    return run


def _age(state: Path, *, encrypt: bool) -> Operation:
    import pyrage
    from pyrage import x25519

    secret = _key_file(state, "age.identity", lambda: str(x25519.Identity.generate()).encode())
    identity = x25519.Identity.from_str(secret.decode())
    recipient = identity.to_public()

    def run(src: Path, dst: Path) -> None:
        if encrypt:
            pyrage.encrypt_file(str(src), str(dst), [recipient])
        else:
            pyrage.decrypt_file(str(src), str(dst), [identity])
        _fsync_path(dst)

    return run


def setup(case: str, state: Path, *, peer_output: str = "safe") -> Operation:
    """Import what ``case`` needs and make or load its key: everything but the work."""
    operation = _setup(case, state)
    if peer_output == "safe" and CASES[case][1] is not None:
        return lambda src, dst: _publish_safely(operation, src, dst)
    return operation


def _setup(case: str, state: Path) -> Operation:
    encrypt = "_enc" in case
    if case == "copy":
        return lambda src, dst: _copy(src, dst, fsync=False)
    if case == "copy_fsync":
        return lambda src, dst: _copy(src, dst, fsync=True)
    if case == "copy_safe":
        return _copy_safe
    if case.startswith("cobblestone_"):
        return _cobblestone(state, encrypt=encrypt)
    if case.startswith("kmsnb_"):
        return _kmsnb(state, encrypt=encrypt, durable=not case.endswith("_nofsync"))
    if case.startswith("esdk"):
        return _esdk(state, encrypt=encrypt, unsigned=case.startswith("esdk64"))
    if case.startswith("tink_"):
        return _tink(state, encrypt=encrypt)
    if case.startswith("age_"):
        return _age(state, encrypt=encrypt)
    raise SystemExit(f"unknown case {case!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description="one bench_peers case (a child process)")
    parser.add_argument("case", choices=list(CASES))
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--dst", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--many", action="store_true", help="src and dst are folders")
    parser.add_argument("--peer-output", choices=("safe", "direct"), default="safe")
    args = parser.parse_args()
    run = setup(args.case, args.state, peer_output=args.peer_output)
    pairs = [(args.src, args.dst)]
    if args.many:
        args.dst.mkdir(exist_ok=True)
        pairs = [(args.src / name, args.dst / name) for name in sorted(os.listdir(args.src))]
    warm_page_cache(args.dst.parent, sum(src.stat().st_size for src, _ in pairs) + 16 * MIB)
    gc.collect()
    before = memory_snapshot()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for src, dst in pairs:
        run(src, dst)
    seconds = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    after = memory_snapshot()
    emit_result(
        {
            "case": args.case,
            "seconds": seconds,
            "files": len(pairs),
            "user_s": used.ru_utime - usage.ru_utime,
            "sys_s": used.ru_stime - usage.ru_stime,
            "rss_after_imports_kib": before["rss_kib"],
            "maxrss_kib": after["maxrss_kib"],
            "hwm_kib": after["hwm_kib"],
        }
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # kmsnb from this tree
    sys.exit(main())
