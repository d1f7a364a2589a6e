"""An immutable record with ``__slots__``: what a frozen dataclass gave, without ``dataclasses``.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``), about a
tenth of ``kmsnb encrypt``'s start-up, and each dataclass is built when its module is
imported (issue 16). :class:`FrozenRecord` gives a subclass the behaviour a
``@dataclass(frozen=True)`` had: assignment and deletion refused, equality over the fields
that count, a ``repr`` of the fields that may be shown, copies and pickles through the
constructor. The subclass lists its fields and writes its own ``__init__``, which sets
them with ``object.__setattr__``. Every frozen record of the layers above the KMS
backends is one (the file header, the KMS URI, a storage location, the allowed keys); the
emulator, which may import nothing of kmsnb's but the KMS interface, has its own.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["FrozenRecord"]


class FrozenRecord:
    """Base of an immutable record whose fields are named by three class attributes.

    ``_FIELDS`` are the constructor's parameters, in order; ``_COMPARED`` the fields
    equality and the hash look at; ``_SHOWN`` the fields the ``repr`` shows (never key
    material).
    """

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()
    _COMPARED: ClassVar[tuple[str, ...]] = ()
    _SHOWN: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[FrozenRecord], tuple[object, ...]]:
        # Through the constructor: the default sets each slot, which __setattr__ refuses.
        return type(self), tuple(getattr(self, name) for name in self._FIELDS)

    def _compared(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, FrozenRecord):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._SHOWN)
        return f"{type(self).__qualname__}({shown})"
