"""Retries of KMS calls that never do a write twice.

Neither Alibaba SDK retries KMS calls, so :class:`~kmsnb.kms.aliyun.AliyunKms` does, with
bounded attempts and exponential backoff with full jitter. What may be retried depends on
what the failure says about the server:

* the request never reached it (the connection could not be made) or was refused before it
  ran (throttling): any call may be sent again;
* it may have reached the server and been carried out (a read timeout, a connection closed
  before the answer, a 5xx): only calls whose repetition is harmless are sent again.
  CreateKey and CreateKeyVersion are not; they fail at once with a
  :class:`~kmsnb.errors.KmsUnavailableError` whose ``outcome_unknown`` is True;
* writes that refuse to be repeated in a recognisable way (CreateAlias answers
  ``AliasAlreadyExists``, DeleteAlias ``Forbidden.AliasNotFound``, CreateSecret and
  PutSecretValue with their ``VersionId`` ``Rejected.ResourceExist``, ...) are retried, and
  such an answer after an uncertain try is checked: if the write took effect, it succeeded
  (:mod:`kmsnb.kms._secret_calls` for the secrets).

A write whose every try may have reached the server ends in ``outcome_unknown=True`` too.
This is the AWS SDKs' rule (retry what is idempotent) with the ambiguity surfaced instead of
guessed; it is written here because no library in reach knows which KMS actions are which.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from kmsnb.errors import KmsError, KmsUnavailableError, WrongKeyError

__all__ = [
    "ONCE_ACTIONS",
    "SECRET_WRITE_ACTIONS",
    "WRITE_ACTIONS",
    "RetryPolicy",
    "call_with_retries",
    "outcome_unknown",
    "refused_as_done",
    "sent_before_failing",
]

#: Actions a repetition would carry out twice (a second key, a second version).
ONCE_ACTIONS: Final = frozenset({"CreateKey", "CreateKeyVersion"})
#: Secrets Manager actions that change a secret. None is in ONCE_ACTIONS: each one's repeat
#: is refused recognisably (CreateSecret, PutSecretValue, DeleteSecret) or harmless.
SECRET_WRITE_ACTIONS: Final = frozenset(
    {
        "CreateSecret",
        "DeleteSecret",
        "PutSecretValue",
        "RestoreSecret",
        "UpdateSecret",
        "UpdateSecretVersionStage",
    }
)
#: Actions that change the KMS's state: their outcome matters when no answer came.
WRITE_ACTIONS: Final = (
    ONCE_ACTIONS
    | SECRET_WRITE_ACTIONS
    | frozenset(
        {
            "CancelKeyDeletion",
            "CreateAlias",
            "DeleteAlias",
            "DisableKey",
            "EnableKey",
            "ScheduleKeyDeletion",
            "TagResource",
            "UntagResource",
            "UpdateAlias",
            "UpdateKeyDescription",
            "UpdateRotationPolicy",
        }
    )
)

#: Asked of a failure after an uncertain try: does it show that the write took effect?
AlreadyDone = Callable[[KmsError | WrongKeyError], bool]


@dataclass
class RetryPolicy:
    """How many tries, and how long to wait between them (full jitter, capped)."""

    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    # Picks retry delays only; not a secret.
    jitter: random.Random = field(default_factory=random.Random)

    def wait(self, attempt: int) -> None:
        limit = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        time.sleep(self.jitter.uniform(0, limit))


def call_with_retries(
    send: Callable[[], Any],
    translate: Callable[[Exception], tuple[KmsError | WrongKeyError, bool]],
    *,
    action: str,
    policy: RetryPolicy,
    already_done: AlreadyDone | None = None,
) -> Any:
    """Return ``send()``'s result, retrying as the module docstring says.

    Args:
        send: one try; raises whatever the SDK raises.
        translate: turns what ``send`` raised into kmsnb's error, and says whether the
            request may have been carried out (:func:`sent_before_failing`).
        action: the API action, e.g. ``"CreateKey"``.
        policy: the tries and waits.
        already_done: for writes that refuse a repetition: is this failure the sign that
            an earlier, uncertain try took effect? Then the call succeeds (returns None).

    Raises:
        KmsError: the last failure; see the module docstring for ``outcome_unknown``.
        WrongKeyError: as ``translate`` maps it.
    """
    uncertain = False  # an earlier try may have been carried out
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return send()
        except Exception as exc:  # the SDK raises many unrelated types
            error, maybe_carried_out = translate(exc)
        if uncertain and already_done is not None and already_done(error):
            return None
        uncertain = uncertain or maybe_carried_out
        # Not chained: SDK exceptions carry the request, whose URL holds contexts.
        if not isinstance(error, KmsUnavailableError):
            raise error from None
        if maybe_carried_out and action in ONCE_ACTIONS:
            raise outcome_unknown(error, action) from None
        if attempt == policy.max_attempts:
            if uncertain and action in WRITE_ACTIONS:
                raise outcome_unknown(error, action) from None
            raise error from None
        policy.wait(attempt)
    raise AssertionError("kmsnb: internal error: retry loop fell through")


def refused_as_done(code: str, confirm: Callable[[], bool]) -> AlreadyDone:
    """An ``already_done``: a refusal with ``code`` after an uncertain try means success if
    ``confirm()`` finds the write's effect (asked of the KMS; a failure there means no)."""

    def check(error: KmsError | WrongKeyError) -> bool:
        if error.code != code:
            return False
        try:
            return confirm()
        except KmsError:
            return False

    return check


def outcome_unknown(error: KmsError, action: str) -> KmsUnavailableError:
    """``error`` restated as a write whose outcome the caller cannot know."""
    advice = (
        "it was not sent again, so as not to do it twice"
        if action in ONCE_ACTIONS
        else "no try was answered"
    )
    check = (
        "the secrets (kmsnb secret list)"
        if action in SECRET_WRITE_ACTIONS
        else "the keys and aliases (kmsnb key list)"
    )
    return KmsUnavailableError(
        f"{error.message}; the KMS may or may not have carried out "
        f"{action}: {advice}; check {check} before trying again",
        code=error.code,
        request_id=error.request_id,
        http_status=error.http_status,
        outcome_unknown=True,
    )


def sent_before_failing(exc: BaseException, unsent: tuple[type[BaseException], ...]) -> bool:
    """False only if a transport failure shows that the request never left the client.

    A failure to connect (refused, unresolvable, timed out while connecting) means nothing
    was sent; anything else (a read timeout, a connection closed before the answer, a reset
    while sending) may come after the server received the request. The SDK wraps the
    HTTP library's exception several times over, so the whole chain is searched: causes,
    contexts, urllib3's ``reason`` and exceptions passed as arguments.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, unsent):
            return False
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.append(getattr(current, "inner_exception", None))  # darabonba's wrapper
        linked += list(current.args)
        pending += [item for item in linked if isinstance(item, BaseException)]
    return True
