"""The one error -> hint table, worded per face (issue 11 item 2, issue 12 messages)."""

from __future__ import annotations

import pytest

from kmsnb._hints import FACES, hint_for, message_for, naming_secret_and_kms
from kmsnb.errors import (
    AliasExistsError,
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

pytestmark = [pytest.mark.unit]

NOT_FOUND = KmsAccessDeniedError("The specified Key is not found.", code="Forbidden.KeyNotFound")
NO_CREDENTIALS = KmsAccessDeniedError("no usable credentials", code="InvalidCredentials")
DISABLED = KmsAccessDeniedError("the key is disabled", code="Forbidden.KeyDisabled")
TAKEN = AliasExistsError("alias/sales", "k-1", "local emulator at /s", created="no key was created")
NO_SECRET = KmsAccessDeniedError("The resource is not found.", code="Forbidden.ResourceNotFound")
SECRET_DELETING = KmsAccessDeniedError(
    "The secret is planned to be deleted.", code="Rejected.ResourceInDeleteWindow"
)
SECRET_EXISTS = KmsAccessDeniedError("The resource already exists.", code="Rejected.ResourceExist")


@pytest.mark.parametrize(
    ("error", "face", "words"),
    [
        (FileExistsError("out exists"), "cli", "--overwrite"),
        (FileExistsError("out exists"), "python", "overwrite=True"),
        (FileExistsError("out exists"), "widget", "tick Overwrite"),
        (NOT_FOUND, "cli", "--kms"),
        (NOT_FOUND, "cli", "KMSNB_KMS"),
        (NOT_FOUND, "cli", "kmsnb key list"),
        (NOT_FOUND, "magic", "%config Kmsnb.kms"),
        (NOT_FOUND, "magic", "%kms keys"),
        (NOT_FOUND, "python", "kms="),
        (WrongKeyError("refused"), "cli", "--context"),
        (WrongKeyError("refused"), "magic", "-c KEY=VALUE"),
        (ContextMismatchError("differs"), "cli", "kmsnb inspect"),
        (ContextMismatchError("differs"), "magic", "%kms inspect"),
        (KmsUnavailableError("timed out"), "cli", "--kms"),
        (DISABLED, "cli", "kmsnb key describe KEY"),
        (TAKEN, "python", "kmsnb.keys.point_alias('alias/sales', KEY)"),
        (TAKEN, "cli", "kmsnb alias update alias/sales KEY"),
        (TAKEN, "magic", "%kms alias alias/sales KEY"),
        (TAKEN, "widget", "%kms alias alias/sales KEY"),
        (NO_SECRET, "python", "kmsnb.secrets.list_secrets()"),
        (NO_SECRET, "cli", "kmsnb secret list"),
        (NO_SECRET, "magic", "%kms secrets"),
        (NO_SECRET, "cli", "--kms"),
        (SECRET_DELETING, "cli", "kmsnb secret restore NAME"),
        (SECRET_DELETING, "python", "kmsnb.secrets.restore(NAME)"),
        (SECRET_EXISTS, "cli", "kmsnb secret put NAME"),
    ],
)
def test_each_face_gets_its_own_words(error: BaseException, face: str, words: str) -> None:
    hint = hint_for(error, face)  # type: ignore[arg-type]
    assert hint is not None
    assert words in hint


def test_a_credentials_problem_is_not_blamed_on_the_key() -> None:
    hint = hint_for(NO_CREDENTIALS, "magic")
    assert hint is not None
    assert "credentials" in hint
    assert "state" not in hint


def test_subclasses_get_their_own_hint_before_their_base() -> None:
    truncated = hint_for(TruncatedError("cut"), "cli")
    corrupted = hint_for(IntegrityError("bad"), "cli")
    assert truncated is not None
    assert "cut short" in truncated
    assert corrupted is not None
    assert "good copy" in corrupted
    assert hint_for(KmsError("other", code="X"), "cli") != hint_for(NOT_FOUND, "cli")


def test_every_face_has_a_hint_for_every_kmsnb_error() -> None:
    errors = [
        FormatError("x"),
        IntegrityError("x"),
        TruncatedError("x"),
        ContextMismatchError("x"),
        WrongKeyError("x"),
        KmsError("x"),
        KmsUnavailableError("x"),
        NOT_FOUND,
        NO_CREDENTIALS,
        DISABLED,
        TAKEN,
        NO_SECRET,
        SECRET_DELETING,
        SECRET_EXISTS,
    ]
    for face in FACES:
        for error in errors:
            hint = hint_for(error, face)
            assert hint, (face, error)
            assert "{" not in hint  # every placeholder was filled


def test_no_hint_for_what_the_table_does_not_know() -> None:
    assert hint_for(RuntimeError("bug"), "cli") is None


def test_an_unknown_face_is_refused() -> None:
    with pytest.raises(ValueError, match="face"):
        hint_for(FormatError("x"), "gui")  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [NO_SECRET, SECRET_DELETING, SECRET_EXISTS])
def test_a_secret_gets_advice_about_secrets_not_keys(error: KmsError) -> None:
    for face in FACES:
        hint = hint_for(error, face)
        assert hint is not None
        assert "secret" in hint
        assert "key" not in hint.replace("KEY", ""), (face, hint)


def test_the_other_faces_drop_the_python_advice_from_the_message() -> None:
    assert message_for(TAKEN, "python") == str(TAKEN)
    for face in ("cli", "magic", "widget"):
        shown = message_for(TAKEN, face)  # type: ignore[arg-type]
        assert shown == (
            "alias/sales exists in local emulator at /s and points to key k-1; no key was created"
        )
    exists = FileExistsError("out.kms exists; pass overwrite=True to replace it")
    assert message_for(exists, "cli") == "out.kms exists"
    assert message_for(exists, "python") == str(exists)


def test_a_secrets_manager_error_names_the_secret_and_the_kms() -> None:
    class Located:
        location = "local emulator at /s"

    with pytest.raises(KmsAccessDeniedError) as caught, naming_secret_and_kms("db/pw", Located()):
        raise KmsAccessDeniedError("The resource is not found.", code="Forbidden.ResourceNotFound")
    assert caught.value.message == (
        "The resource is not found: secret 'db/pw' in local emulator at /s"
    )
    assert caught.value.code == "Forbidden.ResourceNotFound"
