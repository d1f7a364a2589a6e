"""Which master key opened a file (issue 9, item 1): the KMS's Decrypt answer is checked
against the key the header names, always, and against ``allowed_keys`` when given.

A forged file is made with GenerateDataKey on a scratch key while its header names the
trusted key (``tests/forgery.py``): its slot MAC verifies, so only the KMS's answer can
refuse it, and it must be refused before any plaintext is released.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from forgery import ForgingKms, forge_bytes

import kmsnb
from kmsnb.errors import IntegrityError, KmsAccessDeniedError, WrongKeyError
from kmsnb.kms import CachingKms, DataKey, UnwrappedKey
from kmsnb.kms.local import LocalKms
from kmsnb.rewrap import rewrap_file
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CONTEXT = {"dataset": "payroll"}
PLAINTEXT = os.urandom(3 * 16384 + 7)


@pytest.fixture
def local(tmp_path: Path) -> LocalKms:
    """The emulator in-process: keys with ids, aliases and ARNs."""
    kms = LocalKms(tmp_path / "keys")
    yield kms  # type: ignore[misc]
    kms.close()


@pytest.fixture
def trusted(local: LocalKms) -> str:
    key_id = local.create_key("trusted").key_id
    local.create_alias("alias/trusted", key_id)
    return key_id


@pytest.fixture
def scratch(local: LocalKms) -> str:
    return local.create_key("the attacker's scratch key").key_id


def _claims(local: LocalKms, trusted: str) -> dict[str, str]:
    return {"id": trusted, "alias": "alias/trusted", "arn": local.describe_key(trusted).arn}


@pytest.mark.parametrize("claim", ["id", "alias", "arn"])
@pytest.mark.parametrize("allowed", [None, "id", "alias", "arn"])
def test_a_forged_file_is_refused_with_and_without_allowed_keys(
    local: LocalKms, trusted: str, scratch: str, claim: str, allowed: str | None
) -> None:
    """The header names the trusted key (as id, alias or ARN); the KMS says scratch."""
    claims = _claims(local, trusted)
    forged = forge_bytes(
        local,
        scratch_key_id=scratch,
        claimed_key_id=claims[claim],
        plaintext=PLAINTEXT,
        encryption_context=CONTEXT,
    )
    assert kmsnb.inspect(io.BytesIO(forged)).key_id == claims[claim]  # the lie, unverified
    allowed_keys = None if allowed is None else [claims[allowed]]
    with pytest.raises(WrongKeyError) as caught:
        kmsnb.decrypt_bytes(
            forged, kms=local, encryption_context=CONTEXT, allowed_keys=allowed_keys
        )
    # The claim is checked first, allowed_keys or not: a forgery is named as one.
    error = caught.value
    assert (error.found_key_id, error.expected_key_ids) == (scratch, (claims[claim],))
    assert scratch in str(error)
    assert claims[claim] in str(error)
    assert "forged or altered" in str(error)


def test_a_forged_file_releases_nothing(
    local: LocalKms, trusted: str, scratch: str, tmp_path: Path
) -> None:
    """open_decrypt refuses at once (no reader, so no read); decrypt_file leaves no file."""
    forged = forge_bytes(local, scratch_key_id=scratch, claimed_key_id=trusted, plaintext=b"x")
    with pytest.raises(WrongKeyError):
        kmsnb.open_decrypt(io.BytesIO(forged), kms=local)
    with pytest.raises(WrongKeyError):
        kmsnb.open_decrypt_seekable(io.BytesIO(forged), kms=local)
    with pytest.raises(WrongKeyError):
        kmsnb.open_decrypt_seekable(io.BytesIO(forged), kms=local, allowed_keys=[trusted])
    source = tmp_path / "forged.kms"
    source.write_bytes(forged)
    with pytest.raises(WrongKeyError):
        kmsnb.decrypt_file(source, tmp_path / "out", kms=local)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["forged.kms", "keys"]


def test_the_check_holds_behind_the_data_key_cache(
    local: LocalKms, trusted: str, scratch: str
) -> None:
    """A cached unwrapped key is checked as a fresh one: the cache keeps who unwrapped it."""
    forged = forge_bytes(local, scratch_key_id=scratch, claimed_key_id=trusted, plaintext=b"x")
    cache = CachingKms(local)
    for _ in range(3):  # the first miss, then hits
        with pytest.raises(WrongKeyError, match=scratch):
            kmsnb.decrypt_bytes(forged, kms=cache)
    assert cache.stats.decrypt_hits == 2


def test_honest_files_open_with_allowed_keys_as_id_alias_or_arn(
    local: LocalKms, trusted: str
) -> None:
    message = kmsnb.encrypt_bytes(PLAINTEXT, "alias/trusted", kms=local)
    for allowed in _claims(local, trusted).values():
        assert kmsnb.decrypt_bytes(message, kms=local, allowed_keys=[allowed]) == PLAINTEXT
    other = local.create_key("another allowed key").key_id
    assert kmsnb.decrypt_bytes(message, kms=local, allowed_keys=(other, trusted)) == PLAINTEXT


def test_a_file_under_a_key_outside_allowed_keys_is_refused(
    local: LocalKms, trusted: str, scratch: str
) -> None:
    """An honest file under another key: WrongKeyError naming the key found and the list."""
    message = kmsnb.encrypt_bytes(b"honest, but not ours", scratch, kms=local)
    with pytest.raises(WrongKeyError) as caught:
        kmsnb.decrypt_bytes(message, kms=local, allowed_keys=["alias/trusted"])
    assert caught.value.found_key_id == scratch
    assert caught.value.expected_key_ids == ("alias/trusted",)
    assert scratch in str(caught.value)
    assert "'alias/trusted'" in str(caught.value)
    assert trusted in str(caught.value)


def test_a_header_naming_an_alias_of_the_right_key_is_accepted(
    local: LocalKms, trusted: str
) -> None:
    """Resolution through DescribeKey: a claim by alias or ARN of the unwrapping key holds."""
    for claim in _claims(local, trusted).values():
        honest = ForgingKms(local, trusted, claim)  # "forges" the truth, under another name
        message = kmsnb.encrypt_bytes(b"data", claim, kms=honest)
        assert kmsnb.inspect(io.BytesIO(message)).key_id == claim
        assert kmsnb.decrypt_bytes(message, kms=local) == b"data"


@pytest.mark.parametrize("entry", ["alias/nobody", "0b7c0bd4-0000-4000-8000-000000000000"])
def test_an_allowed_keys_entry_that_does_not_resolve_is_an_error(
    local: LocalKms, trusted: str, entry: str
) -> None:
    message = kmsnb.encrypt_bytes(b"x", trusted, kms=local)
    with pytest.raises(KmsAccessDeniedError, match="allowed_keys entry") as caught:
        kmsnb.decrypt_bytes(message, kms=local, allowed_keys=[trusted, entry])
    assert repr(entry) in str(caught.value)


def test_allowed_keys_misuse(kms: InMemoryKms, key_id: str) -> None:
    message = kmsnb.encrypt_bytes(b"x", key_id, kms=kms)
    with pytest.raises(TypeError, match="single string"):
        kmsnb.decrypt_bytes(message, kms=kms, allowed_keys=key_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        kmsnb.decrypt_bytes(message, kms=kms, allowed_keys=[])
    with pytest.raises(TypeError, match="str"):
        kmsnb.decrypt_bytes(message, kms=kms, allowed_keys=[1])  # type: ignore[list-item]
    # The in-memory fake resolves aliases too.
    assert kmsnb.decrypt_bytes(message, kms=kms, allowed_keys=["alias/kmsnb-test"]) == b"x"


class _TwoMethodKms:
    """Only the envelope's two methods: it cannot resolve names."""

    def __init__(self, inner: InMemoryKms) -> None:
        self._inner = inner

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        return self._inner.generate_data_key(key_id, encryption_context)

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        return self._inner.decrypt_data_key(ciphertext_blob, encryption_context)


def test_a_kms_that_cannot_resolve_names(kms: InMemoryKms, key_id: str) -> None:
    """The check still holds; allowed_keys needs describe_key and says so."""
    bare = _TwoMethodKms(kms)
    message = kmsnb.encrypt_bytes(b"x", key_id, kms=bare)
    assert kmsnb.decrypt_bytes(message, kms=bare) == b"x"
    with pytest.raises(TypeError, match="describe_key"):
        kmsnb.decrypt_bytes(message, kms=bare, allowed_keys=[key_id])
    scratch = kms.create_key()
    forged = forge_bytes(
        kms, scratch_key_id=scratch, claimed_key_id="alias/kmsnb-test", plaintext=b"x"
    )
    with pytest.raises(WrongKeyError, match="forged"):
        kmsnb.decrypt_bytes(forged, kms=bare)


def test_an_old_style_kms_returning_bare_bytes_is_refused_and_its_key_wiped(
    kms: InMemoryKms, key_id: str
) -> None:
    handed_out: list[bytearray] = []

    class OldStyle(_TwoMethodKms):
        def decrypt_data_key(self, ciphertext_blob, encryption_context=None):  # type: ignore[no-untyped-def,override]
            key = super().decrypt_data_key(ciphertext_blob, encryption_context).plaintext
            handed_out.append(key)
            return key

    old = OldStyle(kms)
    message = kmsnb.encrypt_bytes(b"x", key_id, kms=old)
    with pytest.raises(TypeError, match="UnwrappedKey"):
        kmsnb.decrypt_bytes(message, kms=old)
    assert handed_out == [bytearray(32)]


def test_a_damaged_key_id_is_still_an_integrity_error(local: LocalKms, trusted: str) -> None:
    """The slot MAC is checked before the key: damage is not mistaken for a forgery."""
    message = bytearray(kmsnb.encrypt_bytes(b"x", trusted, kms=local))
    position = bytes(message).index(trusted.encode())
    message[position] ^= 0x01
    with pytest.raises(IntegrityError, match="key slot"):
        kmsnb.decrypt_bytes(bytes(message), kms=local)


class _ShortKeyKms(_TwoMethodKms):
    """A KMS whose Decrypt answer holds a 16-byte key (issue 9, item 8)."""

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        unwrapped = super().decrypt_data_key(ciphertext_blob, encryption_context)
        return UnwrappedKey(unwrapped.key_id, unwrapped.key_version_id, unwrapped.plaintext[:16])


def test_a_decrypt_answer_that_is_not_a_32_byte_key_is_a_kmsnb_error(
    kms: InMemoryKms, key_id: str
) -> None:
    message = kmsnb.encrypt_bytes(b"x", key_id, kms=kms)
    with pytest.raises(IntegrityError, match="16 bytes"):
        kmsnb.decrypt_bytes(message, kms=_ShortKeyKms(kms))


def test_a_non_base64_decrypt_answer_is_a_kms_error(local: LocalKms, trusted: str) -> None:
    """The emulator in-process answering Plaintext that is not base64 (item 8)."""
    message = kmsnb.encrypt_bytes(b"x", trusted, kms=local)
    call = local._service.call

    def answer(action: str, params: Mapping[str, str]) -> dict[str, object]:
        body = call(action, params)
        if action == "Decrypt":
            body["Plaintext"] = "not base64!"
        return body

    local._service.call = answer  # type: ignore[method-assign]
    with pytest.raises(kmsnb.KmsError, match="not base64"):
        kmsnb.decrypt_bytes(message, kms=local)


def test_rewrap_checks_the_source_key(
    local: LocalKms, trusted: str, scratch: str, tmp_path: Path
) -> None:
    path = tmp_path / "forged.kms"
    path.write_bytes(
        forge_bytes(local, scratch_key_id=scratch, claimed_key_id=trusted, plaintext=b"x")
    )
    before = path.read_bytes()
    with pytest.raises(WrongKeyError, match=scratch):
        rewrap_file(path, trusted, kms=local)
    honest = tmp_path / "honest.kms"
    kmsnb.encrypt_file(_write(tmp_path / "plain", b"y"), honest, scratch, kms=local)
    with pytest.raises(WrongKeyError, match="allowed_keys"):
        rewrap_file(honest, trusted, kms=local, allowed_keys=["alias/trusted"])
    assert before == path.read_bytes()
    info = rewrap_file(honest, trusted, kms=local, allowed_keys=[scratch])
    assert info.key_id == trusted


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
