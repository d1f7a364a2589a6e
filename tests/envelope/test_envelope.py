"""The envelope API: files, bytes and streams, as users see them.

Overwrite rules, misuse errors, the expected-context check, ``inspect`` without the KMS,
wiping of data keys, secret-free reprs, disabled and rotated keys, streams of unknown size,
and streams left unfinished.
"""

from __future__ import annotations

import base64
import gc
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import kmsnb
from kmsnb._format.header import read_header
from kmsnb._format.stream import CHUNK_SIZE
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    TruncatedError,
    WrongKeyError,
)
from kmsnb.kms import DataKey, UnwrappedKey
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CONTEXT = {"dataset": "sales", "owner": "ana"}
PLAINTEXT = os.urandom(2 * CHUNK_SIZE + 500)


class SpyKms:
    """Passes calls to an InMemoryKms and keeps every plaintext data key it handed out."""

    def __init__(self, kms: InMemoryKms) -> None:
        self.kms = kms
        self.generated: list[DataKey] = []
        self.unwrapped: list[UnwrappedKey] = []

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        data_key = self.kms.generate_data_key(key_id, encryption_context)
        self.generated.append(data_key)
        return data_key

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        key = self.kms.decrypt_data_key(ciphertext_blob, encryption_context)
        self.unwrapped.append(key)
        return key


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.fixture
def encrypted_file(tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str) -> Path:
    path = tmp_path / "plain.bin.kmsnb"
    kmsnb.encrypt_file(plain_file, path, key_id, kms=kms, encryption_context=CONTEXT)
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# -- files: overwrite, same path, sources untouched ----------------------------------------


def test_encrypt_file_round_trip(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """A file encrypts and decrypts back; the FileInfo returned is what ``inspect`` says."""
    encrypted, decrypted = tmp_path / "e.kmsnb", tmp_path / "d.bin"
    info = kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms, encryption_context=CONTEXT)
    assert kmsnb.inspect(encrypted) == info
    assert info == kmsnb.decrypt_file(encrypted, decrypted, kms=kms, encryption_context=CONTEXT)
    assert decrypted.read_bytes() == PLAINTEXT
    assert plain_file.read_bytes() == PLAINTEXT


def test_encrypt_file_refuses_existing_destination(
    plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """FileExistsError, the destination untouched, and the KMS not even asked."""
    before, calls = encrypted_file.read_bytes(), dict(kms.calls)
    with pytest.raises(FileExistsError):
        kmsnb.encrypt_file(plain_file, encrypted_file, key_id, kms=kms)
    assert before == encrypted_file.read_bytes()
    assert calls == dict(kms.calls)
    assert _listing(plain_file.parent) == ["plain.bin", "plain.bin.kmsnb"]


def test_decrypt_file_refuses_existing_destination(
    tmp_path: Path, encrypted_file: Path, kms: InMemoryKms
) -> None:
    """FileExistsError and the destination untouched."""
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        kmsnb.decrypt_file(encrypted_file, destination, kms=kms)
    assert destination.read_bytes() == b"keep me"
    assert _listing(tmp_path) == ["out.bin", "plain.bin", "plain.bin.kmsnb"]


def test_overwrite_replaces_destinations(
    tmp_path: Path, plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """With ``overwrite=True`` both directions replace an existing destination."""
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"old")
    kmsnb.decrypt_file(encrypted_file, destination, kms=kms, overwrite=True)
    assert destination.read_bytes() == PLAINTEXT
    kmsnb.encrypt_file(plain_file, destination, key_id, kms=kms, overwrite=True)
    assert kmsnb.decrypt_bytes(destination.read_bytes(), kms=kms) == PLAINTEXT


def test_same_source_and_destination_refused(
    tmp_path: Path, plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """The same file as source and destination is a ValueError, however it is spelled,
    even with ``overwrite=True``; the file is unchanged."""
    before = encrypted_file.read_bytes()
    same = tmp_path / "." / encrypted_file.name
    with pytest.raises(ValueError, match="both the source and the destination"):
        kmsnb.decrypt_file(encrypted_file, same, kms=kms, overwrite=True)
    with pytest.raises(ValueError, match="both the source and the destination"):
        kmsnb.encrypt_file(str(plain_file), plain_file, key_id, kms=kms, overwrite=True)
    assert before == encrypted_file.read_bytes()
    assert plain_file.read_bytes() == PLAINTEXT


def test_decrypt_file_leaves_source_unmodified(
    tmp_path: Path, encrypted_file: Path, kms: InMemoryKms
) -> None:
    """Decrypting reads the source and never writes it."""
    before = encrypted_file.read_bytes()
    kmsnb.decrypt_file(encrypted_file, tmp_path / "out.bin", kms=kms)
    assert before == encrypted_file.read_bytes()


# -- the expected encryption context -------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "differing"),
    [
        ({"dataset": "sales", "owner": "bob"}, "'owner'"),
        ({"dataset": "sales"}, "'owner'"),
        ({**CONTEXT, "region": "eu"}, "'region'"),
        ({}, "'dataset', 'owner'"),
    ],
    ids=["value-differs", "key-missing", "key-extra", "empty"],
)
def test_context_mismatch(
    tmp_path: Path,
    encrypted_file: Path,
    kms: InMemoryKms,
    expected: dict[str, str],
    differing: str,
) -> None:
    """A different expected context raises ContextMismatchError before the KMS is asked;
    the message names the differing keys and never a value."""
    calls = dict(kms.calls)
    data = encrypted_file.read_bytes()
    attempts: list[Callable[[], object]] = [
        lambda: kmsnb.decrypt_file(
            encrypted_file, tmp_path / "o", kms=kms, encryption_context=expected
        ),
        lambda: kmsnb.decrypt_bytes(data, kms=kms, encryption_context=expected),
        lambda: kmsnb.open_decrypt(io.BytesIO(data), kms=kms, encryption_context=expected),
    ]
    for attempt in attempts:
        with pytest.raises(ContextMismatchError) as caught:
            attempt()
        message = str(caught.value)
        assert differing in message
        for value in ["sales", "ana", "bob", "eu"]:
            assert value not in message
    assert calls == dict(kms.calls)
    assert _listing(tmp_path) == ["plain.bin", "plain.bin.kmsnb"]


def test_matching_context_in_any_order(encrypted_file: Path, kms: InMemoryKms) -> None:
    """The expected context is compared as a mapping: order does not matter."""
    reordered = {"owner": "ana", "dataset": "sales"}
    assert (
        kmsnb.decrypt_bytes(encrypted_file.read_bytes(), kms=kms, encryption_context=reordered)
        == PLAINTEXT
    )


# -- misuse --------------------------------------------------------------------------------


MISUSE: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("encrypt_bytes", {"data": "text", "key_id": "K"}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": 7}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": b"K"}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": ""}, ValueError),
    ("encrypt_bytes", {"data": b"x", "key_id": "K", "encryption_context": [("a", "b")]}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": "K", "encryption_context": {"a": 1}}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": "K", "encryption_context": {1: "a"}}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": "K", "kms": object()}, TypeError),
    ("encrypt_bytes", {"data": b"x", "key_id": "K", "kms": None}, TypeError),
    ("decrypt_bytes", {"data": "text"}, TypeError),
    ("decrypt_bytes", {"data": b"x", "kms": object()}, TypeError),
    ("open_encrypt", {"fileobj": object(), "key_id": "K"}, TypeError),
    ("open_decrypt", {"fileobj": object()}, TypeError),
]


@pytest.mark.parametrize(
    ("function", "arguments", "error"),
    MISUSE,
    ids=[f"{name}-{index}" for index, (name, _, _) in enumerate(MISUSE)],
)
def test_misuse_raises_type_or_value_error(
    kms: InMemoryKms, function: str, arguments: dict[str, Any], error: type[Exception]
) -> None:
    """Wrong types and impossible arguments raise TypeError/ValueError, not a kmsnb
    error, and never reach the KMS."""
    arguments = {"kms": kms, **arguments}
    positional = [arguments.pop(name) for name in ("data", "fileobj") if name in arguments]
    if "key_id" in arguments:
        positional.append(arguments.pop("key_id"))
    with pytest.raises(error):
        getattr(kmsnb, function)(*positional, **arguments)
    assert dict(kms.calls) == {}


def test_inspect_misuse() -> None:
    """``inspect`` wants a path or a readable binary file."""
    with pytest.raises(TypeError):
        kmsnb.inspect(42)  # type: ignore[arg-type]


# -- inspect -------------------------------------------------------------------------------


def test_inspect_reads_the_header_without_the_kms(encrypted_file: Path, kms: InMemoryKms) -> None:
    """``inspect`` on a path and on a file object reports the header; the KMS is not called."""
    calls = dict(kms.calls)
    from_path = kmsnb.inspect(encrypted_file)
    with encrypted_file.open("rb") as fileobj:
        from_fileobj = kmsnb.inspect(fileobj)
    assert calls == dict(kms.calls)
    assert from_path.format_version == 1
    assert from_path.algorithm == "cobblestone-256"
    assert dict(from_path.encryption_context) == CONTEXT
    assert from_path.content_type == "application/octet-stream"
    assert from_path.chunk_size == CHUNK_SIZE
    assert len(PLAINTEXT) == from_path.plaintext_size
    assert encrypted_file.stat().st_size == from_path.file_size
    assert None is from_fileobj.file_size
    assert from_path == kmsnb.FileInfo(**{**vars(from_fileobj), "file_size": from_path.file_size})


def test_inspect_refuses_other_files(plain_file: Path) -> None:
    """A file that is not kmsnb's is a FormatError."""
    with pytest.raises(FormatError):
        kmsnb.inspect(plain_file)


# -- key material --------------------------------------------------------------------------


def test_data_keys_are_wiped(kms: InMemoryKms, key_id: str) -> None:
    """Every plaintext data key the KMS handed out is all zeros once the call returns."""
    spy = SpyKms(kms)
    message = kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=spy, encryption_context=CONTEXT)
    assert kmsnb.decrypt_bytes(message, kms=spy) == PLAINTEXT
    with kmsnb.open_encrypt(io.BytesIO(), key_id, kms=spy) as writer:
        writer.write(b"streamed")
    assert len(spy.generated) == 2
    assert len(spy.unwrapped) == 1
    for data_key in spy.generated:
        assert bytearray(32) == data_key.plaintext
    assert [bytearray(32)] == [key.plaintext for key in spy.unwrapped]


def test_data_keys_are_wiped_after_errors(kms: InMemoryKms, key_id: str) -> None:
    """The keys are wiped too when the header cannot be written or the file fails."""
    spy = SpyKms(kms)
    with pytest.raises(ValueError, match="content_type"):
        kmsnb.encrypt_bytes(b"x", key_id, kms=spy, content_type="not\nprintable")
    damaged = bytearray(kmsnb.encrypt_bytes(b"x", key_id, kms=spy))
    damaged[20] ^= 0x20  # in the content type: the KMS unwraps, then the slot MAC fails
    with pytest.raises(IntegrityError):
        kmsnb.decrypt_bytes(bytes(damaged), kms=spy)
    assert all(bytearray(32) == key.plaintext for key in spy.generated)
    assert [bytearray(32)] == [key.plaintext for key in spy.unwrapped]


def test_no_key_material_in_reprs(kms: InMemoryKms, key_id: str) -> None:
    """DataKey, UnwrappedKey, FileInfo and every error a damaged file raises show no data
    key, in any spelling."""
    data_key = kms.generate_data_key(key_id)
    secret = bytes(data_key.plaintext)
    assert "hidden" in repr(data_key)
    assert not any(spelling in repr(data_key) for spelling in _spellings(secret))
    unwrapped = kms.decrypt_data_key(data_key.ciphertext_blob)
    assert "hidden" in repr(unwrapped)
    assert not any(spelling in repr(unwrapped) for spelling in _spellings(secret))

    message = kmsnb.encrypt_bytes(PLAINTEXT, key_id, kms=kms, encryption_context=CONTEXT)
    info = kmsnb.inspect(io.BytesIO(message))
    secret = bytes(kms.decrypt_data_key(_wrapped_key(message), CONTEXT).plaintext)
    texts = [repr(info), str(info)]
    sales = message.index(b"sales")
    damages = {
        FormatError: b"x" + message,
        WrongKeyError: message[:sales] + b"S" + message[sales + 1 :],
        IntegrityError: message[:40] + bytes([message[40] ^ 1]) + message[41:],
        TruncatedError: message[:-1],
    }
    for error, damaged in damages.items():
        with pytest.raises(error) as caught:
            kmsnb.decrypt_bytes(damaged, kms=kms)
        texts += [repr(caught.value), str(caught.value)]
    for text in texts:
        assert not any(spelling in text for spelling in _spellings(secret))


def _spellings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        repr(secret)[2:-1],
        str(list(secret))[1:-1],
        base64.b64encode(secret).decode(),
    ]


def _wrapped_key(message: bytes) -> str:
    return read_header(io.BytesIO(message)).wrapped_key


def test_expected_context_type_checked(encrypted_file: Path, kms: InMemoryKms) -> None:
    """An expected context that is not a mapping of str is a TypeError; no KMS call."""
    calls = dict(kms.calls)
    for wrong in ["dataset=sales", {"dataset": 1}, [("dataset", "sales")]]:
        with pytest.raises(TypeError):
            kmsnb.decrypt_bytes(encrypted_file.read_bytes(), kms=kms, encryption_context=wrong)  # type: ignore[arg-type]
    assert calls == dict(kms.calls)


# -- the KMS's keys: disabled, rotated, aliases -------------------------------------------


def test_disabled_key(
    tmp_path: Path, plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """A disabled master key: KmsAccessDeniedError both ways, and nothing written."""
    kms.disable_key(key_id)
    with pytest.raises(KmsAccessDeniedError) as encrypting:
        kmsnb.encrypt_file(plain_file, tmp_path / "new.kmsnb", key_id, kms=kms)
    with pytest.raises(KmsAccessDeniedError) as decrypting:
        kmsnb.decrypt_file(encrypted_file, tmp_path / "out.bin", kms=kms)
    assert "Rejected.Disabled" == encrypting.value.code == decrypting.value.code
    assert _listing(tmp_path) == ["plain.bin", "plain.bin.kmsnb"]


def test_reenabled_key_decrypts_again(encrypted_file: Path, kms: InMemoryKms, key_id: str) -> None:
    """Disabling is reversible: after ``enable_key`` the file decrypts again.

    BUG (kmsnb/testing.py): ``InMemoryKms.enable_key`` resolves the key with ``_resolve``,
    which refuses disabled keys, so a disabled key can never be enabled again.
    """
    kms.disable_key(key_id)
    kms.enable_key(key_id)
    assert kmsnb.decrypt_bytes(encrypted_file.read_bytes(), kms=kms) == PLAINTEXT


def test_another_kms_cannot_decrypt(encrypted_file: Path) -> None:
    """A KMS that never held the key refuses with KmsAccessDeniedError (key not found)."""
    with pytest.raises(KmsAccessDeniedError):
        kmsnb.decrypt_bytes(encrypted_file.read_bytes(), kms=InMemoryKms())


def test_rotated_key_still_decrypts_old_files(
    encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """After rotation old files decrypt; new ones name the new key version."""
    old_version = kmsnb.inspect(encrypted_file).key_version_id
    new_version = kms.rotate_key(key_id)
    assert kmsnb.decrypt_bytes(encrypted_file.read_bytes(), kms=kms) == PLAINTEXT
    message = kmsnb.encrypt_bytes(b"after rotation", key_id, kms=kms)
    assert new_version == kmsnb.inspect(io.BytesIO(message)).key_version_id != old_version
    assert kmsnb.decrypt_bytes(message, kms=kms) == b"after rotation"


def test_alias_resolves_to_the_key_id(kms: InMemoryKms, key_id: str) -> None:
    """Encrypting under an alias records the key id the KMS resolved it to."""
    message = kmsnb.encrypt_bytes(b"x", "alias/kmsnb-test", kms=kms)
    assert key_id == kmsnb.inspect(io.BytesIO(message)).key_id


def test_wrong_context_at_the_kms(encrypted_file: Path, kms: InMemoryKms) -> None:
    """A header whose context was changed makes the KMS refuse: WrongKeyError."""
    data = bytearray(encrypted_file.read_bytes())
    offset = bytes(data).index(b"sales")
    data[offset] ^= 0x20  # "Sales": still canonical, but not the context the key was made for
    with pytest.raises(WrongKeyError):
        kmsnb.decrypt_bytes(bytes(data), kms=kms)


# -- streams -------------------------------------------------------------------------------


def test_stream_of_unknown_size(kms: InMemoryKms, key_id: str) -> None:
    """Without ``plaintext_size`` the header says "unknown" and the stream still decrypts."""
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, key_id, kms=kms, content_type="text/csv") as writer:
        for row in range(2000):
            writer.write(b"%d,row\n" % row)
    info = kmsnb.inspect(io.BytesIO(sink.getvalue()))
    assert (info.plaintext_size, info.content_type) == (None, "text/csv")
    expected = b"".join(b"%d,row\n" % row for row in range(2000))
    assert expected == kmsnb.decrypt_bytes(sink.getvalue(), kms=kms)


@pytest.mark.parametrize("written", [0, 100, CHUNK_SIZE, 3 * CHUNK_SIZE + 1])
def test_stream_left_by_an_exception_is_unreadable(
    kms: InMemoryKms, key_id: str, written: int
) -> None:
    """Leaving ``with open_encrypt(...)`` on an exception writes no final chunk: the
    stream reads as truncated, never as a shorter valid message."""
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), kmsnb.open_encrypt(sink, key_id, kms=kms) as writer:  # noqa: PT012
        writer.write(PLAINTEXT[:written])
        raise RuntimeError("the producer failed")
    with pytest.raises(ValueError, match="closed or aborted"):
        writer.write(b"more")
    with pytest.raises(TruncatedError):
        kmsnb.decrypt_bytes(sink.getvalue(), kms=kms)


def test_writer_dropped_without_close_is_unreadable(kms: InMemoryKms, key_id: str) -> None:
    """A writer that is garbage-collected without ``close()`` must not be sealed: the
    partial stream has to stay truncated, as after an exception inside ``with``.

    BUG: ``io.IOBase.__del__`` calls ``close()``, which writes the final chunk, so an
    abandoned writer (e.g. after an exception outside a ``with`` block) turns a partial
    plaintext into a complete, authenticated message.
    """
    sink = io.BytesIO()
    writer = kmsnb.open_encrypt(sink, key_id, kms=kms)
    writer.write(b"the first half of the data")
    del writer
    gc.collect()
    with pytest.raises(TruncatedError):
        kmsnb.decrypt_bytes(sink.getvalue(), kms=kms)


@pytest.mark.parametrize("written", [50, 150])
def test_open_encrypt_enforces_the_declared_size(
    kms: InMemoryKms, key_id: str, written: int
) -> None:
    """Writing more or fewer bytes than ``plaintext_size`` is refused (ValueError) instead
    of producing a file that fails only when it is decrypted.

    BUG: ``EncryptWriter`` never compares what was written with the header's
    ``plaintext_size``; ``close()`` seals a file that can never be read back.
    """
    sink = io.BytesIO()
    declared = kmsnb.open_encrypt(sink, key_id, kms=kms, plaintext_size=100)
    with pytest.raises(ValueError, match="plaintext_size"), declared as writer:
        writer.write(b"x" * written)
    with pytest.raises(TruncatedError):
        kmsnb.decrypt_bytes(sink.getvalue(), kms=kms)


def test_same_file_through_links_refused_and_bad_path_types(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """The one-stat check (issue 16) still finds the same file through a symbolic or a
    hard link, costs no KMS call, and still refuses bytes or a number as a path."""
    symbolic, hard = tmp_path / "symbolic", tmp_path / "hard"
    symbolic.symlink_to(plain_file)
    os.link(plain_file, hard)
    for destination in (symbolic, hard):
        with pytest.raises(ValueError, match="both the source and the destination"):
            kmsnb.encrypt_file(plain_file, destination, key_id, kms=kms, overwrite=True)
    for bad in (os.fsencode(plain_file), 3):
        with pytest.raises(TypeError):
            kmsnb.encrypt_file(bad, tmp_path / "out", key_id, kms=kms)  # type: ignore[arg-type]
    assert kms.calls["generate_data_key"] == 0
    assert plain_file.read_bytes() == PLAINTEXT
