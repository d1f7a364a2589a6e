"""Process-wide defaults: the KMS and the master key that helpers use when given none.

The DataFrame helpers, the IPython extension and the CLI read these, so that a notebook
sets its key once::

    import kmsnb.session
    kmsnb.session.set_default_key("alias/Apollo/WorkKey")
    df.kms.to_parquet("sales.parquet.kms")       # kms= and key_id= from the session

The default KMS is made on first use: :func:`kmsnb.connect` (``$KMSNB_KMS``, else the
local emulator) behind a :class:`~kmsnb.kms.CachingKms` with its conservative defaults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kmsnb._keynames import resolve_key_name
from kmsnb.kms._base import Kms
from kmsnb.kms.caching import CachingKms

__all__ = [
    "get_default_key",
    "get_kms",
    "get_kms_uri",
    "on_kms_change",
    "reset",
    "set_default_key",
    "set_kms",
]

_lock = threading.Lock()
_kms: Kms | None = None
# The cache this module made (and so may clear); a CachingKms the user passed is theirs.
_owned_cache: CachingKms[Kms] | None = None
# The client get_kms() connected, which this module closes when it is replaced.
_connected: Kms | None = None
# The URI that reaches the session's KMS from another process (Dask's workers), if known.
_kms_uri: str | None = None
_default_key: str | None = None
# What to call when the session's KMS is replaced: caches that hold key material per KMS.
_kms_change_listeners: list[Callable[[], None]] = []


def on_kms_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` (no arguments) each time :func:`set_kms` replaces the KMS.

    For modules that keep key material per KMS (column mode keeps pyarrow's unwrapped
    KEKs) and must forget it with the KMS; registering the same function twice is one
    registration.
    """
    with _lock:
        if listener not in _kms_change_listeners:
            _kms_change_listeners.append(listener)


def get_kms() -> Kms:
    """The session's KMS, connecting (behind a data-key cache) on first use.

    Raises:
        ValueError, ImportError, KmsError: as :func:`kmsnb.connect` does.
    """
    global _kms, _owned_cache, _connected, _kms_uri
    with _lock:
        if _kms is None:
            from kmsnb.connection import connect  # the backends load only when needed

            uri = _uri_to_connect()
            _connected = connect(uri)
            _kms_uri = uri
            _owned_cache = CachingKms(_connected)
            _kms = _owned_cache
        return _kms


def get_kms_uri() -> str | None:
    """The KMS URI behind the session's KMS, for other processes to reach the same KMS.

    What :func:`get_kms` connected from (or will: ``$KMSNB_KMS``, else ``"local:"``, the
    emulator's default store), the ``uri`` given to :func:`set_kms`, or ``None`` when
    :func:`set_kms` gave the session a client without one. Dask's workers use it
    (:mod:`kmsnb.dask`).
    """
    with _lock:
        if _kms is None:
            return _uri_to_connect()
        return _kms_uri


def _uri_to_connect() -> str:
    from kmsnb.connection import default_kms_uri

    return default_kms_uri()


def set_kms(kms: Kms | str | None, *, cache: bool = True, uri: str | None = None) -> None:
    """Make ``kms`` the session's KMS (``None``: connect again on next use).

    Args:
        kms: any :class:`~kmsnb.kms.Kms`, or a KMS URI (``local:PATH``, ``aliyun:REGION``,
            ...: :func:`kmsnb.connect`), connected now and closed when replaced.
        cache: put a :class:`~kmsnb.kms.CachingKms` with default thresholds in front of
            it (not when it already is one).
        uri: the KMS URI ``kms`` was connected from, so that other processes (Dask's
            workers) can reach the same KMS (:func:`get_kms_uri`); a URI given as ``kms``
            is its own.

    Raises:
        TypeError: ``kms`` is neither a KMS client, a URI nor ``None``.
        ValueError, ImportError: as :func:`kmsnb.connect` does, for a URI.
    """
    global _kms, _owned_cache, _connected, _kms_uri
    if uri is not None and kms is None:
        raise ValueError("uri= names the URI of a kms given with it")
    connected: Kms | None = None
    if isinstance(kms, str):
        from kmsnb.connection import connect

        uri = kms if uri is None else uri
        kms = connected = connect(kms)
    if kms is not None and not isinstance(kms, Kms):
        raise TypeError(
            "kms must be a KMS client (generate_data_key and decrypt_data_key) or a KMS URI"
        )
    new_cache: CachingKms[Kms] | None = None
    if kms is not None and cache and not isinstance(kms, CachingKms):
        new_cache = CachingKms(kms)
        kms = new_cache
    with _lock:
        previous_cache, previous_client = _owned_cache, _connected
        _kms, _owned_cache, _connected, _kms_uri = kms, new_cache, connected, uri
    if previous_cache is not None:
        previous_cache.clear()
    close = getattr(previous_client, "close", None)
    if callable(close):
        close()
    with _lock:
        listeners = list(_kms_change_listeners)
    for listener in listeners:
        listener()


def get_default_key() -> str | None:
    """The master key helpers use when given no ``key_id``, or ``None``."""
    return _default_key


def set_default_key(key_id: str | None) -> None:
    """Set (or with ``None``, unset) the master key helpers use when given no ``key_id``.

    A bare ``NAME`` means ``alias/NAME`` (:func:`kmsnb._keynames.resolve_key_name`), so
    :func:`get_default_key` returns ``alias/sales`` after ``set_default_key("sales")``.

    Raises:
        TypeError: ``key_id`` is neither ``str`` nor ``None``.
        ValueError: ``key_id`` is empty or holds a control character.
    """
    global _default_key
    if key_id is not None and not isinstance(key_id, str):
        raise TypeError(f"key_id must be str or None, not {type(key_id).__name__}")
    if key_id is not None:
        key_id = resolve_key_name(key_id)
    with _lock:
        _default_key = key_id


def reset() -> None:
    """Forget the session's KMS (zeroing the cache it made) and its default key."""
    set_kms(None)
    set_default_key(None)
