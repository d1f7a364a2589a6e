"""Errors as the notebook shows them: which errors are the user's to fix, and one line for
each, with the hint of the one error -> hint table (:mod:`kmsnb._hints`) in the words of the
face that shows it (a magic's options, a widget's controls).
"""

from __future__ import annotations

from kmsnb._hints import Face, hint_for, message_for
from kmsnb.errors import KmsnbError

__all__ = ["USER_ERRORS", "explain"]

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


def explain(error: BaseException, face: str) -> str:
    """One line for the user: the error's message and, when there is one, a hint.

    Args:
        face: ``"magic"`` or ``"widget"``: whose words the message and the hint use.
    """
    shown: Face = "widget" if face == "widget" else "magic"
    message = message_for(error, shown)
    hint = hint_for(error, shown)
    return f"{message} (hint: {hint})" if hint else message
