"""Secrets for notebooks: database passwords and API tokens that never sit in a cell.

The values live in Secrets Manager (Alibaba Cloud KMS, or the kmsnb emulator, which
answers the same API); a notebook fetches them by name::

    import kmsnb.secrets
    password = kmsnb.secrets.get("db/password")      # Secret('db/password', ••••)
    engine = sqlalchemy.create_engine(
        password.sqlalchemy_url("postgresql+psycopg", username="app", host="db", database="sales")
    )

A :class:`~kmsnb.kms._secrets.Secret` is masked wherever it is displayed; its value comes
out only through :meth:`~kmsnb.kms._secrets.Secret.reveal` or helpers that pass it on. The
KMS is the session's (``KMSNB_KMS``, ``%kms``) unless ``kms=`` names another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kmsnb._hints import naming_secret_and_kms
from kmsnb.connection import connect, open_kms
from kmsnb.kms._base import Kms
from kmsnb.kms._secrets import MASK, Secret, SecretInfo, SecretsClient, SecretVersionInfo

__all__ = [
    "MASK",
    "Secret",
    "SecretInfo",
    "SecretVersionInfo",
    "client",
    "create",
    "delete",
    "describe",
    "get",
    "list_secrets",
    "put",
    "restore",
]


def client(kms: Kms | SecretsClient | str | None = None) -> SecretsClient:
    """The Secrets Manager client behind ``kms`` (default: the session's KMS).

    Args:
        kms: a KMS client, a KMS URI (``local:PATH``, ``http://HOST:PORT``,
            ``aliyun:REGION``: :func:`kmsnb.connect`, which connects a client that the
            caller closes), or ``None``: the session's KMS.

    Raises:
        TypeError: ``kms`` is not a KMS, or that KMS has no Secrets Manager (a bare
            data-key KMS, a test fake).
        ValueError, ImportError: as :func:`kmsnb.connect` does, for a URI.
    """
    if kms is None:
        from kmsnb import session

        kms = session.get_kms()
    # The data-key cache forwards what it does not know to the client it wraps.
    if isinstance(kms, SecretsClient):
        return kms
    return _secrets_of(connect(kms))  # a URI connects; a wrong type is connect's TypeError


def _secrets_of(kms: Kms) -> SecretsClient:
    if isinstance(kms, SecretsClient):
        return kms
    raise TypeError(
        f"the KMS {type(kms).__name__} has no Secrets Manager; use kmsnb.connect() "
        "(the emulator or Alibaba Cloud)"
    )


@contextlib.contextmanager
def _opened(kms: Kms | SecretsClient | str | None) -> Iterator[SecretsClient]:
    """The Secrets Manager that a verb's ``kms=`` names, for one call.

    The rule of every other verb (:func:`kmsnb.connection.open_kms`): ``None`` is the
    session's KMS, a URI connects a client closed at the end, anything else that is no
    KMS client is a ``TypeError`` worded as theirs. A client with Secrets Manager calls
    but no data keys is used as it is.
    """
    if isinstance(kms, SecretsClient):
        yield kms
        return
    with open_kms(kms) as opened:
        yield _secrets_of(opened)


def get(
    name: str,
    *,
    version_stage: str | None = None,
    version_id: str | None = None,
    kms: Kms | SecretsClient | str | None = None,
) -> Secret:
    """Fetch a secret's value, masked: ``ACSCurrent`` unless a stage or version is named.

    Raises:
        KmsError: for example ``Forbidden.ResourceNotFound`` for an unknown secret, or
            ``Rejected.ResourceInDeleteWindow`` for one that is being deleted.
    """
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        return secrets.get_secret_value(name, version_id=version_id, version_stage=version_stage)


def create(
    name: str,
    value: str | bytes,
    *,
    description: str = "",
    encryption_key_id: str | None = None,
    kms: Kms | SecretsClient | str | None = None,
) -> SecretVersionInfo:
    """Create a secret holding ``value`` (``str``: text, ``bytes``: binary)."""
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        return secrets.create_secret(
            name, value, description=description, encryption_key_id=encryption_key_id
        )


def put(
    name: str, value: str | bytes, *, kms: Kms | SecretsClient | str | None = None
) -> SecretVersionInfo:
    """Store a new value of ``name``; it becomes ACSCurrent, the old one ACSPrevious."""
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        return secrets.put_secret_value(name, value)


def describe(name: str, *, kms: Kms | SecretsClient | str | None = None) -> SecretInfo:
    """A secret's metadata: type, dates, master key; never its value."""
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        return secrets.describe_secret(name)


def list_secrets(*, kms: Kms | SecretsClient | str | None = None) -> list[SecretInfo]:
    """Every secret's name and dates, those pending deletion included."""
    with _opened(kms) as secrets:
        return secrets.list_secrets()


def delete(
    name: str,
    *,
    recovery_window_in_days: int | None = None,
    force: bool = False,
    kms: Kms | SecretsClient | str | None = None,
) -> str | None:
    """Delete ``name`` after its recovery window (7-30 days, default 30), or now if
    ``force``; return the planned deletion time (None when deleted at once)."""
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        return secrets.delete_secret(
            name, recovery_window_in_days=recovery_window_in_days, force=force
        )


def restore(name: str, *, kms: Kms | SecretsClient | str | None = None) -> None:
    """Cancel a deletion during the recovery window."""
    with _opened(kms) as secrets, naming_secret_and_kms(name, secrets):
        secrets.restore_secret(name)
