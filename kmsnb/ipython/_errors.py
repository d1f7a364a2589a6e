"""Errors as the notebook shows them: which errors are the user's to fix, and the hint
each one gets, worded for the face that shows it (a magic's options, a widget's controls).
"""

from __future__ import annotations

from typing import Literal

from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsnbError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

__all__ = ["USER_ERRORS", "Face", "explain"]

#: Errors that mean "the input, the file or the KMS said no", shown as one line: kmsnb's
#: own, file system errors (a missing path, an existing output), and misuse caught by the
#: library's argument checks.
USER_ERRORS: tuple[type[BaseException], ...] = (
    KmsnbError,
    OSError,
    ValueError,
    TypeError,
    ImportError,
)

Face = Literal["magic", "widget"]

_KEY_STATE = (
    "check the key with %kms describe KEY (disabled, pending deletion or missing?) "
    "and the credentials"
)

# Checked in order, so subclasses come before their bases. A hint for the widget face
# names the widget's own controls; the others name the magics' options.
_HINTS: tuple[tuple[type[BaseException], str, str], ...] = (
    (TruncatedError, "the file is incomplete; copy it again from its source", ""),
    (IntegrityError, "the file was corrupted or modified; use an intact copy", ""),
    (FormatError, "check that this is a kmsnb file: %kms inspect PATH", ""),
    (
        ContextMismatchError,
        "pass the context the file was written with (%kms inspect PATH)",
        "",
    ),
    (
        WrongKeyError,
        "check --context, and that this KMS holds the file's key (%kms inspect)",
        "",
    ),
    (KmsAccessDeniedError, _KEY_STATE, "choose another key, or " + _KEY_STATE),
    (KmsUnavailableError, "the KMS is unreachable or throttling; retry, or see %kms status", ""),
    (KmsError, "see %kms status for the KMS in use", ""),
    (KmsnbError, "see %kms? for usage", "see help(kmsnb.widgets) for usage"),
    (FileExistsError, "pass --overwrite to replace it", "tick Overwrite to replace it"),
    (FileNotFoundError, "check the path", ""),
    (ImportError, "install the missing extra, e.g. pip install 'kmsnb[pandas]'", ""),
)

# What the library's messages tell a Python caller to pass, and what each face has instead.
_ADVICE: dict[Face, tuple[tuple[str, str], ...]] = {
    "magic": (("; pass overwrite=True to replace it", ""),),
    "widget": (("; pass overwrite=True to replace it", ""),),
}


def explain(error: BaseException, face: Face) -> str:
    """One line for the user: the error's message and, when there is one, a hint."""
    message = " ".join(str(error).split()) or type(error).__name__
    for python_advice, face_advice in _ADVICE[face]:
        message = message.replace(python_advice, face_advice)
    for error_class, magic_hint, widget_hint in _HINTS:
        if isinstance(error, error_class):
            hint = widget_hint if face == "widget" and widget_hint else magic_hint
            return f"{message} (hint: {hint})"
    return message
