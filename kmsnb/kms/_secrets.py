"""Secrets Manager in the KMS interface: a masked :class:`Secret`, metadata, the protocol.

A secret's value is the one thing here that must never be shown by accident: a
:class:`Secret` displays as ``Secret('db/password', ••••)`` in ``repr``, ``str``,
f-strings, IPython and Jupyter (so it stays masked in ``Out``, the history database, a
saved notebook and a log line), refuses to be pickled, and gives its value only to an
explicit :meth:`Secret.reveal` or to helpers that pass it on without printing it
(:meth:`Secret.sqlalchemy_url`, :meth:`Secret.environ`). Its copy of the value is a
``bytearray`` wiped by :meth:`Secret.wipe` or at the end of a ``with`` block; Python
cannot promise that the SDK's response object kept no other copy.
"""

from __future__ import annotations

import contextlib
import hmac
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from kmsnb._wipe import wipe

__all__ = [
    "MASK",
    "Secret",
    "SecretInfo",
    "SecretVersionInfo",
    "SecretsClient",
    "holds_value",
]

#: What a secret's value shows as.
MASK: Final = "••••"


class Secret:
    """One version of a secret's value, masked in every display.

    Attributes:
        name: the secret's name.
        version_id: the version this value is.
        version_stages: the stages marking it (``ACSCurrent``, ``ACSPrevious``, ...).
        data_type: ``text`` or ``binary``.
        create_time: when the version was stored (UTC, ISO 8601).
    """

    __slots__ = ("_value", "create_time", "data_type", "name", "version_id", "version_stages")

    def __init__(
        self,
        name: str,
        value: bytearray,
        *,
        version_id: str = "",
        version_stages: Sequence[str] = (),
        data_type: str = "text",
        create_time: str = "",
    ) -> None:
        if not isinstance(value, bytearray):
            raise TypeError("a Secret holds its value in a bytearray, so that it can be wiped")
        if data_type not in ("text", "binary"):
            raise ValueError(f"data_type is text or binary, not {data_type!r}")
        self.name = name
        self.version_id = version_id
        self.version_stages = tuple(version_stages)
        self.data_type = data_type
        self.create_time = create_time
        self._value = value

    # -- getting at the value, explicitly ------------------------------------------------

    def reveal(self) -> str:
        """The value of a text secret.

        Raises:
            TypeError: a binary secret (use :meth:`reveal_bytes`).
            ValueError: the secret was wiped.
        """
        if self.data_type != "text":
            raise TypeError(f"{self!r} is binary; use reveal_bytes()")
        return self.reveal_bytes().decode("utf-8")

    def reveal_bytes(self) -> bytes:
        """The value as bytes: UTF-8 of a text secret, the decoded bytes of a binary one."""
        if not self._value:
            raise ValueError(f"{self!r} was wiped")
        return bytes(self._value)

    def sqlalchemy_url(self, drivername: str, **parts: Any) -> Any:
        """A ``sqlalchemy.engine.URL`` with this secret as its password, never printed.

        ``parts`` are ``URL.create``'s other arguments (``username``, ``host``, ``port``,
        ``database``, ``query``); SQLAlchemy shows the password of a URL as ``***``.
        SQLAlchemy is imported here only: it is not a dependency of kmsnb.

        Raises:
            ImportError: SQLAlchemy is not installed.
        """
        try:
            from sqlalchemy.engine import URL
        except ImportError as exc:
            raise ImportError(
                "Secret.sqlalchemy_url needs SQLAlchemy; pip install sqlalchemy"
            ) from exc
        if "password" in parts:
            raise TypeError("the password of the URL is the secret itself")
        return URL.create(drivername, password=self.reveal(), **parts)

    @contextlib.contextmanager
    def environ(self, variable: str) -> Iterator[None]:
        """Set ``os.environ[variable]`` to the value for the ``with`` block, then restore it.

        For tools that read a password from the environment (``PGPASSWORD``, ...). Child
        processes started inside the block inherit it.
        """
        previous = os.environ.get(variable)
        os.environ[variable] = self.reveal()
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous

    # -- lifetime ------------------------------------------------------------------------

    def wipe(self) -> None:
        """Zero this object's copy of the value; :meth:`reveal` fails afterwards."""
        wipe(self._value)
        del self._value[:]

    def __enter__(self) -> Secret:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wipe()

    # -- never shown, never pickled ------------------------------------------------------

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {MASK})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return format(repr(self), format_spec)

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(repr(self))}</code>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled; store its name and fetch it again")

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


@dataclass(frozen=True)
class SecretInfo:
    """What DescribeSecret and ListSecrets say of a secret: never its value."""

    name: str
    secret_type: str
    create_time: str
    update_time: str
    planned_delete_time: str | None = None
    description: str = ""
    encryption_key_id: str = ""
    arn: str = ""


@dataclass(frozen=True)
class SecretVersionInfo:
    """A version just stored (CreateSecret, PutSecretValue)."""

    name: str
    version_id: str
    version_stages: tuple[str, ...] = ()


@runtime_checkable
class SecretsClient(Protocol):
    """The Secrets Manager calls of a KMS client (the emulator's and Alibaba Cloud's).

    ``value`` arguments are ``str`` (stored as ``text``) or ``bytes`` (``binary``).
    ``name`` accepts a secret's name or ARN.
    """

    def create_secret(
        self,
        name: str,
        value: str | bytes,
        *,
        version_id: str | None = None,
        description: str = "",
        encryption_key_id: str | None = None,
    ) -> SecretVersionInfo: ...

    def put_secret_value(
        self, name: str, value: str | bytes, *, version_id: str | None = None
    ) -> SecretVersionInfo: ...

    def get_secret_value(
        self, name: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Secret: ...

    def describe_secret(self, name: str) -> SecretInfo: ...

    def list_secrets(self) -> list[SecretInfo]: ...

    def delete_secret(
        self, name: str, *, recovery_window_in_days: int | None = None, force: bool = False
    ) -> str | None: ...

    def restore_secret(self, name: str) -> None: ...


def holds_value(secret: Secret, data_type: str, value: bytes | bytearray) -> bool:
    """Whether ``secret`` is of ``data_type`` and holds ``value`` (compared in constant time).

    For a client that must tell whether a write whose answer was lost took effect, without
    revealing the value on the way.
    """
    return secret.data_type == data_type and hmac.compare_digest(secret._value, value)
