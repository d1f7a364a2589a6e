"""Whether a file's first bytes could start a tutorial ``.cipher`` file (:mod:`kmsnb.legacy`).

Apart from :mod:`kmsnb.legacy` so that ``kmsnb decrypt`` and ``inspect`` can tell the two
formats apart from a file's first bytes without importing the legacy reader (AES-EAX, its
CMAC and the converter): a kmsnb file never needs it.
"""

from __future__ import annotations

from kmsnb._format.header_fields import MAGIC

__all__ = ["looks_like_legacy"]

_BASE64_TEXT = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n\t "
)


def looks_like_legacy(head: bytes) -> bool:
    """Whether the first bytes of a file could start a tutorial file: base64 text, no magic."""
    return bool(head) and not head.startswith(MAGIC[:1]) and set(head) <= _BASE64_TEXT
