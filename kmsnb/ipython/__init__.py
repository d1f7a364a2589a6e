"""The IPython extension: ``%load_ext kmsnb``.

Loading registers the magics (``%kms``, ``%encrypt``/``%%encrypt``, ``%decrypt``) and the
``df.kms`` accessor, connects the session's KMS behind the data-key cache, and prints one
line saying which KMS and which default key are in use. Settings live in the ``Kmsnb``
configurable: ``%config Kmsnb.kms = "local:/path"`` in a session, or ``c.Kmsnb.kms = ...``
in ``ipython_config.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, Int, List, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from kmsnb import session
from kmsnb._progress import DEFAULT_PROGRESS_THRESHOLD, set_progress_threshold
from kmsnb.kms import Kms
from kmsnb.kms.caching import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES

__all__ = ["Kmsnb", "load_ipython_extension", "unload_ipython_extension"]


class Kmsnb(Configurable):
    """Settings of the kmsnb extension; ``%config Kmsnb`` lists them.

    Changing ``kms``, ``allow_insecure_http`` or a cache limit reconnects the session's
    KMS; setting ``default_key`` sets the session's default key (as ``%kms use KEY`` does;
    the session, ``kmsnb.session.get_default_key()``, holds the key in use). Setting
    ``kms`` to the KMS the session already has open (``$KMSNB_KMS`` when ``kms`` was empty)
    keeps it, so a notebook may name its KMS whether or not the extension was loaded before
    it (Binder preloads it). ``allowed_keys`` pins the master keys that ``%decrypt`` and
    ``%kms rewrap`` accept (their ``--allowed-key`` replaces it for one call).
    """

    kms = Unicode(
        "",
        help="KMS URI: local:PATH, http://HOST:PORT (emulator server), aliyun:REGION. "
        "Empty: $KMSNB_KMS, else the local emulator.",
    ).tag(config=True)
    default_key = Unicode(
        "", help="Master key used when none is given: a key id, alias/NAME or ARN."
    ).tag(config=True)
    allowed_keys = List(
        Unicode(),
        default_value=[],
        help="Master keys (ids, alias/NAME or ARNs) that %decrypt and %kms rewrap accept a "
        "file under; any other is refused before data is released. Empty: the key each "
        "file names.",
    ).tag(config=True)
    allow_insecure_http = Bool(
        False,
        help="Allow a plain http:// KMS on another machine (data keys cross the network in "
        "clear); loopback is always allowed.",
    ).tag(config=True)
    cache_max_age = Float(
        DEFAULT_MAX_AGE,
        help="Seconds a data key may be served from the cache; 0 turns the cache off.",
    ).tag(config=True)
    cache_max_messages = Int(
        DEFAULT_MAX_MESSAGES, help="Files one cached data key may encrypt."
    ).tag(config=True)
    cache_max_bytes = Int(
        DEFAULT_MAX_BYTES, help="Plaintext bytes one cached data key may protect in all."
    ).tag(config=True)
    short_errors = Bool(
        True,
        help="Show an error of input, a file or the KMS in a magic as one line, "
        "ClassName: message (hint: ...); False: the full traceback, e.g. for a bug report.",
    ).tag(config=True)
    progress_threshold = Int(
        DEFAULT_PROGRESS_THRESHOLD,
        help="Show a progress bar for files of at least this many bytes (0: always).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        # Values from ipython_config.py are set during __init__ and fire the observers;
        # the extension connects once, explicitly, when it has finished loading.
        self._live = False
        self._opened: list[Kms] = []
        self._opened_uri: str | None = None
        super().__init__(**kwargs)
        set_progress_threshold(self.progress_threshold)

    def connect(self) -> Path | None:
        """Open the configured KMS, behind the data-key cache, as the session's KMS.

        Returns:
            the folder of a local keystore that opening it created (a typo in a
            ``local:`` path makes a new, empty one: ``kmsnb.connect`` warns of it,
            :class:`~kmsnb.errors.NewKeystoreWarning`), else ``None``.
        """
        from kmsnb.connection import connect_noting_new_keystore, default_kms_uri
        from kmsnb.kms.caching import CachingKms

        uri = self._uri()  # what connect() opens, remembered for _is_open()
        client, new_keystore = connect_noting_new_keystore(
            self.kms or None, allow_insecure_http=self.allow_insecure_http
        )
        created = None if new_keystore is None else Path(new_keystore.path)
        kms: Kms = client
        if self.cache_max_age > 0:
            kms = CachingKms(
                client,
                max_age=self.cache_max_age,
                max_messages=self.cache_max_messages,
                max_bytes=self.cache_max_bytes,
            )
        session.set_kms(kms, cache=False, uri=self.kms or default_kms_uri())
        self.close()
        self._opened = [kms] if kms is client else [kms, client]
        self._opened_uri = uri
        return created

    def _uri(self) -> str | None:
        """The URI ``connect`` opens: ``kms``, else ``$KMSNB_KMS`` (as ``kmsnb.connect``)."""
        from kmsnb.connection import KMS_URI_ENV

        return self.kms or os.environ.get(KMS_URI_ENV) or None

    def _is_open(self) -> bool:
        """Whether the session's KMS is the one this extension opened at ``_uri()``."""
        return bool(self._opened) and (
            self._opened_uri == self._uri() and session.get_kms() is self._opened[0]
        )

    def close(self) -> None:
        """Zero the data keys cached by the KMS this extension opened, and close it.

        The session does not do it: a KMS handed to ``set_kms`` belongs to its caller.
        """
        opened, self._opened, self._opened_uri = self._opened, [], None
        for item in opened:
            close = getattr(item, "close", None)
            if callable(close):
                close()

    def status_line(self, *, new_store: bool = False) -> str:
        """``kmsnb: <the KMS>; default key ...``: what the session uses, without secrets."""
        from kmsnb.connection import describe_kms

        # It names the KMS ("local emulator at PATH", "KMS emulator at URL", "Alibaba Cloud
        # KMS REGION"): no second "KMS" in front of it.
        location = describe_kms(session.get_kms())
        if new_store:  # said once, when opening made it: a typo in a path makes one too
            location += " (a new keystore: no keys yet)"
        key = session.get_default_key() or "none (set one with %kms use KEY)"
        return f"kmsnb: {location}; default key {key}"

    def _connect_and_report(self) -> None:
        from kmsnb.ipython._error_lines import USER_ERRORS, explain

        try:
            created = self.connect()
        except USER_ERRORS as error:
            # Loading still succeeds, so that %config Kmsnb.kms = ... can fix the URI.
            message = explain(error, "magic")
            print(f"kmsnb: could not open the KMS: {message}", file=sys.stderr)
            return
        print(self.status_line(new_store=created is not None))

    @validate("cache_max_age", "progress_threshold")
    def _non_negative(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"Kmsnb.{proposal['trait'].name} must be >= 0")
        return proposal["value"]

    @validate("cache_max_messages", "cache_max_bytes")
    def _positive(self, proposal: Any) -> Any:
        if proposal["value"] <= 0:
            raise TraitError(f"Kmsnb.{proposal['trait'].name} must be > 0")
        return proposal["value"]

    @observe("kms", "allow_insecure_http", "cache_max_age", "cache_max_messages", "cache_max_bytes")
    def _kms_changed(self, change: Any) -> None:
        if self._live and not (change["name"] == "kms" and self._is_open()):
            self._connect_and_report()

    @observe("default_key")
    def _default_key_changed(self, change: Any) -> None:
        if self._live:
            session.set_default_key(change["new"] or None)

    @observe("progress_threshold")
    def _progress_threshold_changed(self, change: Any) -> None:
        set_progress_threshold(change["new"])


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the ``df.kms`` accessor, and open the session's KMS."""
    from kmsnb.ipython._completion import install_completer
    from kmsnb.ipython.encrypt_magics import EncryptMagics
    from kmsnb.ipython.kms_magic import KmsMagic

    # Without pandas the magics still encrypt bytes and str.
    with contextlib.suppress(ImportError):
        import kmsnb.dataframe  # noqa: F401  (registers the df.kms accessor)
    settings = Kmsnb(parent=ipython)
    ipython.configurables.append(settings)
    ipython.register_magics(KmsMagic(ipython), EncryptMagics(ipython))
    install_completer(ipython)
    if settings.default_key:
        session.set_default_key(settings.default_key)
    settings._connect_and_report()
    settings._live = True


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and the settings, and forget the session's KMS and default key."""
    from kmsnb.ipython._completion import uninstall_completer

    manager = ipython.magics_manager
    ours = ("Kmsnb", "KmsMagic", "EncryptMagics")
    for name in ours[1:]:
        # Compared by name, not identity: %reload_ext reloads modules, making new classes.
        instance = manager.registry.pop(name, None)
        if instance is not None:
            for kind, names in instance.magics.items():
                for magic in names:
                    manager.magics[kind].pop(magic, None)
    uninstall_completer(ipython)
    for item in ipython.configurables:
        if type(item).__name__ == "Kmsnb":
            item.close()
    ipython.configurables[:] = [
        item for item in ipython.configurables if type(item).__name__ not in ours
    ]
    session.reset()
