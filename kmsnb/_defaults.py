"""What a writer or reader uses when given no KMS or no key: the session's.

One rule for every verb and helper that takes ``kms=`` and ``key=`` (``kmsnb.save``, the
pandas, Arrow and polars helpers, the ``kmsnb::`` file system): a KMS as
:func:`kmsnb.connect` takes it (a client, or a URI), else :func:`kmsnb.session.get_kms`; a
key by the one key-naming rule (:func:`kmsnb._keynames.resolve_key_name`: a bare ``NAME``
means ``alias/NAME``), else the session's default key.
"""

from __future__ import annotations

from kmsnb._keynames import resolve_key_name
from kmsnb.kms._base import Kms

__all__ = ["resolve_key", "resolve_kms"]


def resolve_kms(kms: Kms | str | None) -> Kms:
    """``kms`` as :func:`kmsnb.connect` takes it (a client, or a URI), or the session's KMS
    (:func:`kmsnb.session.get_kms`) when ``None``.

    Raises:
        TypeError, ValueError, ImportError: as :func:`kmsnb.connect` does.
    """
    if kms is None:
        from kmsnb import session

        return session.get_kms()
    from kmsnb.connection import connect

    return connect(kms)


def resolve_key(key: str | None) -> str:
    """``key`` by the key-naming rule, or the session's default key when ``None``.

    Raises:
        TypeError: ``key`` is not a ``str``.
        ValueError: no key given and no default key set; an empty key, or one with a
            control character.
    """
    if key is None:
        from kmsnb import session

        key = session.get_default_key()
        if key is None:
            raise ValueError(
                "no key given and no default key set; pass a key ('alias/NAME' or 'NAME') "
                "or call kmsnb.session.set_default_key('NAME')"
            )
    return resolve_key_name(key)
