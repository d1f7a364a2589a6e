"""How a Dask task reaches the KMS: a URI that each worker process connects to.

``kms=`` takes what :func:`kmsnb.connect` takes. A KMS URI (``local:PATH``,
``aliyun:REGION``, ``https://...``) is what travels to workers: it is pinned down once, on
the client (:func:`pin_kms_uri`), and each worker process connects to it once
(:func:`connect_once`), resolving its own credentials, so no AccessKey and no key ever
travels in a task. A client object cannot be sent to other processes (it would carry its
credentials, or for a test KMS its master keys): it works only with Dask's in-process
schedulers, and elsewhere is refused with a message naming the URI form. Given no KMS,
the session's is followed (:func:`kmsnb.session.get_kms_uri`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any

from dask.base import get_scheduler

from kmsnb.connection import connect, parse_kms_uri
from kmsnb.kms._base import Kms

# Said wherever a client object cannot go: what to pass instead.
_URI_ADVICE = (
    "pass the KMS as a URI instead, e.g. kms='local:/path/to/store' or "
    "kms='aliyun:cn-hangzhou', so that each worker connects on its own"
)


@functools.lru_cache(maxsize=16)
def connect_once(kms_uri: str) -> Kms:
    """The KMS client of this process for ``kms_uri``: one per worker, not one per task.

    Workers resolve their own credentials (the Alibaba Cloud default chain: environment,
    profile, RAM role) when they connect, so no AccessKey ever travels in a task. Two
    threads of one worker may race to connect first; the spare client is dropped.
    """
    return connect(kms_uri)


def pin_kms_uri(kms_uri: str) -> str:
    """Pin ``kms_uri`` down on the client so that every worker uses the same KMS.

    Parsed by :func:`kmsnb.connection.parse_kms_uri`, which refuses credentials in it (they
    would travel in every task): a ``local:`` path becomes absolute and a bare ``local:``
    the default store, since worker processes need not share the client's working
    directory or environment.
    """
    return parse_kms_uri(kms_uri).pinned()


@dataclass(frozen=True)
class KmsRef:
    """How a task reaches the KMS: a URI each process connects to, or a live client.

    A live client is allowed only with in-process schedulers. It refuses to be pickled,
    so that it can never reach another process, where it would carry its credentials
    (or, for a test KMS, its master keys).
    """

    uri: str | None
    client: Kms | None = field(default=None, compare=False, repr=False)

    def connect(self) -> Kms:
        """The client: the live one, or this process's connection to the URI."""
        if self.client is not None:
            return self.client
        if self.uri is None:
            raise AssertionError("kmsnb: internal error: a KMS reference with neither")
        return connect_once(self.uri)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.client is not None:
            raise TypeError(f"a KMS client object cannot be sent to other processes; {_URI_ADVICE}")
        return (KmsRef, (self.uri,))

    def __dask_tokenize__(self) -> object:
        # Without this, Dask would try to pickle the live client to hash it.
        return ("kmsnb.dask.KmsRef", self.uri, None if self.client is None else id(self.client))


def fold_kms_uri(kms: Kms | str | None, kms_uri: str | None) -> Kms | str | None:
    """``kms``, or the deprecated ``kms_uri=`` in its place (with a DeprecationWarning)."""
    if kms_uri is None:
        return kms
    # stacklevel: this function, the public verb, then its caller.
    warnings.warn(
        "kms_uri= is deprecated; pass the URI as kms= (the same string)",
        DeprecationWarning,
        stacklevel=3,
    )
    if kms is not None:
        raise ValueError("pass the KMS once, as kms=; kms_uri= is its deprecated name")
    return kms_uri


def kms_reference(kms: Kms | str | None) -> KmsRef:
    """What tasks carry to reach ``kms`` (a URI, a client, or ``None``: the session's)."""
    if isinstance(kms, str):
        return KmsRef(pin_kms_uri(kms))
    if kms is None:
        from kmsnb import session

        uri = session.get_kms_uri()
        if uri is not None:
            return KmsRef(pin_kms_uri(uri))
        check_in_process_scheduler("the session's KMS is a client object (kmsnb.session.set_kms)")
        return KmsRef(None, session.get_kms())
    if not isinstance(kms, Kms):
        raise TypeError(
            "kms must be a KMS URI (str) or a KMS client (kmsnb.connect(), "
            f"kmsnb.testing.InMemoryKms), not {type(kms).__name__}"
        )
    check_in_process_scheduler("kms= is a KMS client object")
    return KmsRef(None, kms)


def check_in_process_scheduler(what: str) -> None:
    """Refuse a live client unless Dask's scheduler runs tasks in this process."""
    import dask.local
    import dask.threaded

    # dask's own annotations are partial: these calls are untyped.
    scheduler = get_scheduler()  # type: ignore[no-untyped-call]
    if scheduler is None or scheduler in (dask.threaded.get, dask.local.get_sync):
        return
    raise ValueError(
        f"{what}, which works only with Dask's in-process schedulers (threads or "
        f"synchronous) and cannot be sent to workers; {_URI_ADVICE}"
    )
