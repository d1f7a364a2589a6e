"""The one error -> hint table, worded per face (issue 11 item 2, issue 12 messages)."""

from __future__ import annotations

import pytest

from kmsnb._hints import FACES, hint_for
from kmsnb.errors import (
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
