"""Name a KMS: a client object, or a URI for the local emulator, an emulator server or
Alibaba Cloud. This module is the one place the URI grammar lives.

One string names the KMS, so a notebook, a test, a CLI and a Dask worker can be pointed
elsewhere by changing ``KMSNB_KMS`` alone:

==================================== ===================================================
``local:PATH``                        the emulator in-process, keys in directory ``PATH``
``local:``                            the same at the default store directory
``http://HOST:PORT``                  an emulator server (``kmsnb emulator serve``),
                                      through the official SDK
``aliyun:REGION``                     Alibaba Cloud KMS in ``REGION``
``https://kms.REGION.aliyuncs.com``   the same, or any other HTTPS endpoint (VPC,
                                      private) of the service
==================================== ===================================================

Backends are imported only when chosen, so ``local:`` works without the Alibaba SDK.
Plain ``http://`` is for the loopback interface (an emulator on this machine) unless the
caller opts in (``allow_insecure_http=True`` or ``$KMSNB_ALLOW_INSECURE_HTTP=1``): the
answers carry plaintext data keys. Credentials never go in the URI, and an error message
never quotes the user-info part of one.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, TypeVar, overload

from kmsnb._hints import kms_location
from kmsnb._record import FrozenRecord
from kmsnb.errors import NewKeystoreWarning
from kmsnb.kms._base import Kms, KmsClient

if TYPE_CHECKING:
    # Imported where a Path is made: pathlib, with the urllib.parse and ipaddress it
    # imports, costs a local: CLI call more start-up than its work, and connect() needs none.
    from pathlib import Path

__all__ = [
    "KMS_URI_ENV",
    "KmsUri",
    "connect",
    "connect_noting_new_keystore",
    "default_kms_uri",
    "describe_kms",
    "open_kms",
    "parse_kms_uri",
]

#: The environment variable :func:`connect` reads when given no KMS.
KMS_URI_ENV = "KMSNB_KMS"

KmsT = TypeVar("KmsT", bound=Kms)

_ACCEPTED_FORMS = (
    "local:PATH, http://HOST:PORT (an emulator server), aliyun:REGION, "
    "https://kms.REGION.aliyuncs.com"
)
# Patterns, not compiled ones: re compiles (and caches) them at their first use, and a
# local: URI, the CLI's common case, needs none of them (start-up).
_REGION = r"[a-z0-9]+(?:-[a-z0-9]+)+"
_SERVICE_HOST = r"kms(?:-vpc)?\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com"
# USER[:PASSWORD]@ at the start of a URI or after its "//": never shown.
_USER_INFO = r"(^|//)[^/?#]*@"


class KmsUri(FrozenRecord):
    """A parsed KMS URI: which backend, and where.

    Attributes:
        kind: ``"local"`` (the emulator in-process) or ``"sdk"`` (Alibaba Cloud, or an
            emulator server, through the official SDK).
        store_path: for ``local``: the keystore directory as given, or ``None`` for the
            default one.
        region_id: for ``sdk``: the region, when the URI names one.
        endpoint: for ``sdk``: ``scheme://host[:port]``, or ``None`` for the region's
            public endpoint.
    """

    # A FrozenRecord, not a dataclass: importing dataclasses cost a CLI call more than its
    # work (start-up). Frozen, compared, hashed and shown as the dataclass it was.
    __match_args__ = ("kind", "store_path", "region_id", "endpoint")  # the fields, in order
    _FIELDS = _COMPARED = _SHOWN = __match_args__
    __slots__ = __match_args__

    kind: Literal["local", "sdk"]
    store_path: Path | None
    region_id: str | None
    endpoint: str | None

    def __init__(
        self,
        kind: Literal["local", "sdk"],
        store_path: Path | None = None,
        region_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        for name, value in zip(self._FIELDS, (kind, store_path, region_id, endpoint), strict=True):
            object.__setattr__(self, name, value)

    def pinned(self) -> str:
        """The URI as another process must be given it to reach the same KMS: a ``local:``
        path made absolute (the default store resolved), since a Dask worker need not share
        this process's working directory or environment."""
        if self.kind == "local":
            return f"local:{self._store().absolute()}"
        if self.endpoint is not None:
            return self.endpoint
        return f"aliyun:{self.region_id}"

    def _store(self) -> Path:
        if self.store_path is not None:
            return self.store_path.expanduser()
        from kmsnb.emulator import default_store_dir

        return default_store_dir()


def default_kms_uri() -> str:
    """The URI :func:`connect` uses when given none: ``$KMSNB_KMS``, else ``local:``."""
    return os.environ.get(KMS_URI_ENV) or "local:"


def _redacted(uri: str) -> str:
    """``uri`` as error messages may quote it: without its user info, which may be a secret."""
    return re.sub(_USER_INFO, r"\1***@", uri, count=1)


def _scheme_and_rest(uri: str) -> tuple[str, str]:
    """The scheme of a stripped URI, lowercased, and what follows its colon."""
    scheme, _, rest = uri.partition(":")
    return scheme.lower(), rest


def parse_kms_uri(uri: str) -> KmsUri:
    """Parse a KMS URI (the forms in the module docstring) without connecting.

    Raises:
        TypeError: ``uri`` is not a ``str``.
        ValueError: the URI has none of the accepted forms, or carries credentials.
    """
    if not isinstance(uri, str):
        raise TypeError(f"a KMS URI must be str, not {type(uri).__name__}")
    uri = uri.strip()
    scheme, rest = _scheme_and_rest(uri)
    if scheme == "local":
        from pathlib import Path

        return KmsUri("local", store_path=Path(rest) if rest else None)
    shown = _redacted(uri)
    if scheme == "aliyun":
        if not re.fullmatch(_REGION, rest):
            raise ValueError(f"not a region in KMS URI {shown!r}; expected aliyun:REGION")
        return KmsUri("sdk", region_id=rest)
    if scheme in ("http", "https"):
        from urllib.parse import urlsplit  # here: a local: URI needs no URL parsing

        parts = urlsplit(uri)
        if "@" in parts.netloc:
            raise ValueError(
                f"a KMS URI carries no credentials ({shown!r}); AccessKeys come from the "
                "Alibaba Cloud credentials chain (ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile, a RAM role)"
            )
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"not a KMS endpoint: {shown!r}; accepted forms: {_ACCEPTED_FORMS}")
        service = re.fullmatch(_SERVICE_HOST, parts.hostname)
        region_id = service.group("region") if service and scheme == "https" else None
        return KmsUri("sdk", region_id=region_id, endpoint=f"{scheme}://{parts.netloc}")
    raise ValueError(f"unrecognized KMS URI {shown!r}; accepted forms: {_ACCEPTED_FORMS}")


@overload
def connect(kms: None = None, *, allow_insecure_http: bool = False) -> KmsClient: ...


@overload
def connect(kms: str, *, allow_insecure_http: bool = False) -> KmsClient: ...


@overload
def connect(kms: KmsT, *, allow_insecure_http: bool = False) -> KmsT: ...


def connect(kms: Kms | str | None = None, *, allow_insecure_http: bool = False) -> Kms:
    """Return a KMS client for ``kms``: the one rule every ``kms=`` argument follows.

    Args:
        kms: a KMS client (returned as it is), a URI of one of the forms in the module
            docstring, or ``None``: ``$KMSNB_KMS``, and when that is unset too, the local
            emulator at its default store.
        allow_insecure_http: allow plain ``http://`` to a host other than the loopback
            interface (127.0.0.0/8, ``::1``, ``localhost``); so does
            ``$KMSNB_ALLOW_INSECURE_HTTP=1``. Data keys then cross the network in clear.

    Returns:
        ``kms`` itself when it is a client, else a :class:`~kmsnb.kms.KmsClient`.

    Warns:
        NewKeystoreWarning: a ``local:`` URI named a folder with no keystore in it, so an
            empty one was started there (a mistyped path does that too).

    Raises:
        TypeError: ``kms`` is neither a KMS client, a ``str`` nor ``None``.
        ValueError: the URI has none of the accepted forms, carries credentials, or is
            plain HTTP to another machine without the opt-in. No request is sent first.
        ImportError: the Alibaba SDK is needed but ``kmsnb[aliyun]`` is not installed.
    """
    if isinstance(kms, Kms):
        return kms
    if kms is None:
        kms = default_kms_uri()
    if not isinstance(kms, str):
        raise TypeError(
            "kms must be a KMS client (kmsnb.connect(), or any object with "
            "generate_data_key and decrypt_data_key) or a KMS URI such as 'local:PATH' "
            f"or 'aliyun:REGION', not {type(kms).__name__}"
        )
    scheme, rest = _scheme_and_rest(kms.strip())
    if scheme == "local":
        # The path as it is, not parse_kms_uri's KmsUri: that holds a Path, which the
        # keystore makes for itself only when asked (start-up: no pathlib).
        from kmsnb.kms.local import LocalKms

        local = LocalKms(rest or None)
        if local.created_keystore:
            # A warning, not an attribute to read: a script or a test sees it too, and
            # `-W error::kmsnb.errors.NewKeystoreWarning` makes a mistyped path fatal in CI.
            pinned = parse_kms_uri(kms).pinned()
            warnings.warn(NewKeystoreWarning(pinned[len("local:") :]), stacklevel=2)
        return local
    parsed = parse_kms_uri(kms)
    from kmsnb.kms.aliyun import AliyunKms

    return AliyunKms(
        parsed.region_id, endpoint=parsed.endpoint, allow_insecure_http=allow_insecure_http
    )


def connect_noting_new_keystore(
    kms: str | None = None, *, allow_insecure_http: bool = False
) -> tuple[KmsClient, NewKeystoreWarning | None]:
    """:func:`connect` of a URI, with its :class:`~kmsnb.errors.NewKeystoreWarning` returned rather
    than shown: for the faces, which say it once in their own place (the CLI on stderr, the
    notebook on its load line). Other warnings are shown as :func:`connect` would.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = connect(kms, allow_insecure_http=allow_insecure_http)
    notice = None
    for item in caught:
        if isinstance(item.message, NewKeystoreWarning):
            notice = item.message
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return client, notice


def describe_kms(kms: object) -> str:
    """Which KMS ``kms`` is, for messages: ``"local emulator at PATH"``, ``"Alibaba Cloud
    KMS cn-hangzhou"``, ``"KMS emulator at http://127.0.0.1:PORT"``; secret-free.

    A client without a ``location`` (a user's own :class:`~kmsnb.kms.Kms`) is named by
    its class.
    """
    return kms_location(kms)


@contextlib.contextmanager
def open_kms(kms: Kms | str | None) -> Iterator[Kms]:
    """The KMS a verb's ``kms=`` names, for the duration of one call.

    ``None`` is the session's KMS (:func:`kmsnb.session.get_kms`), a client is used as it
    is; neither is closed here. A URI connects a client of its own, closed at the end
    (which wipes what it cached in memory).

    Raises:
        TypeError, ValueError, ImportError: as :func:`connect` does.
    """
    if kms is None:
        from kmsnb import session

        yield session.get_kms()
        return
    if isinstance(kms, Kms):
        yield kms
        return
    client = connect(kms)
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
