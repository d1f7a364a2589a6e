"""kmsnb.secrets: ``kms=`` follows the rule of every other verb (issue 12): a client, a KMS
URI (connected for the call and closed), or ``None`` for the session's KMS."""

from __future__ import annotations

from pathlib import Path

import pytest

import kmsnb
import kmsnb.secrets
from kmsnb import session
from kmsnb.errors import NewKeystoreWarning
from kmsnb.kms.local import LocalKms


def test_every_verb_takes_a_kms_uri(tmp_path: Path) -> None:
    """``kms="local:PATH"`` works for each verb, as it does for kmsnb.keys and kmsnb.save."""
    uri = f"local:{tmp_path / 'by-uri'}"
    kmsnb.secrets.create("db/pw", "s3cret", kms=uri)
    kmsnb.secrets.put("db/pw", "s3cret-2", kms=uri)
    assert kmsnb.secrets.get("db/pw", kms=uri).reveal() == "s3cret-2"
    assert kmsnb.secrets.describe("db/pw", kms=uri).name == "db/pw"
    assert [info.name for info in kmsnb.secrets.list_secrets(kms=uri)] == ["db/pw"]
    kmsnb.secrets.delete("db/pw", kms=uri)
    kmsnb.secrets.restore("db/pw", kms=uri)
    assert kmsnb.secrets.get("db/pw", kms=uri).reveal() == "s3cret-2"
    with LocalKms(tmp_path / "by-uri") as same:  # what the URI named, on disk
        assert same.get_secret_value("db/pw").reveal() == "s3cret-2"


def test_a_uri_naming_a_new_keystore_warns_as_connect_does(tmp_path: Path) -> None:
    """The URI goes through kmsnb.connect: a mistyped local: path is said, not silent."""
    with pytest.warns(NewKeystoreWarning, match="a new keystore at"):
        assert kmsnb.secrets.list_secrets(kms=f"local:{tmp_path / 'typo'}") == []


def test_a_client_and_the_session_are_used_as_they_are(tmp_path: Path) -> None:
    """A client passed is not closed; ``None`` is the session's KMS."""
    with LocalKms(tmp_path / "store") as local:
        kmsnb.secrets.create("api/token", "t0ken", kms=local)
        assert kmsnb.secrets.get("api/token", kms=local).reveal() == "t0ken"  # still open
        session.set_kms(local)
        try:
            assert kmsnb.secrets.get("api/token").reveal() == "t0ken"
        finally:
            session.reset()


def test_client_connects_a_uri_too(tmp_path: Path) -> None:
    """kmsnb.secrets.client() resolves a URI like the verbs (the caller closes it)."""
    secrets = kmsnb.secrets.client(f"local:{tmp_path / 'store'}")
    try:
        secrets.create_secret("a", "b")
        assert [info.name for info in secrets.list_secrets()] == ["a"]
    finally:
        secrets.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("wrong", [42, b"local:store", Path("store")])
def test_a_wrong_type_is_the_type_error_of_the_other_verbs(wrong: object) -> None:
    """Not a client, URI or None: the same TypeError as kmsnb.keys' (one rule, one text)."""
    with pytest.raises(TypeError) as other_verb:
        kmsnb.keys.list_keys(kms=wrong)  # type: ignore[arg-type]
    for call in (
        lambda: kmsnb.secrets.get("db/pw", kms=wrong),  # type: ignore[arg-type]
        lambda: kmsnb.secrets.list_secrets(kms=wrong),  # type: ignore[arg-type]
        lambda: kmsnb.secrets.client(wrong),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError) as secrets_verb:
            call()
        assert str(secrets_verb.value) == str(other_verb.value)


def test_a_kms_without_secrets_manager_is_refused_by_name() -> None:
    """A data-key-only KMS (a test fake) is a TypeError that says what is missing."""

    class DataKeysOnly:
        def generate_data_key(self, key_id: str, **kwargs: object) -> object: ...

        def decrypt_data_key(self, wrapped: bytes, **kwargs: object) -> bytes: ...

    with pytest.raises(TypeError, match="DataKeysOnly has no Secrets Manager"):
        kmsnb.secrets.get("db/pw", kms=DataKeysOnly())  # type: ignore[arg-type]
