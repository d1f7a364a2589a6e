"""Zeroing the key material kmsnb owns, in place.

A module of its own, below every layer that holds keys: the KMS clients (``kmsnb.kms``),
the emulator (``kmsnb.emulator``) and the file format all wipe, and none of them may import
another for it (the emulator in particular imports only :mod:`kmsnb.errors` and this).
"""

from __future__ import annotations

__all__ = ["wipe"]


def wipe(buffer: bytearray | memoryview) -> None:
    """Overwrite ``buffer`` with zeros in place.

    Python cannot promise that no other copy exists (the KMS response, an SDK object), but
    the copies kmsnb owns are mutable and zeroed as soon as they are no longer needed.

    Raises:
        TypeError: ``buffer`` is a read-only view.
    """
    view = memoryview(buffer).cast("B")
    view[:] = bytes(view.nbytes)
