"""Thrift's compact protocol, read only: how Parquet encodes its footer structures.

pyarrow parses a Parquet footer but does not show what Parquet modular encryption keeps
in it (``FileCryptoMetaData``, each column chunk's ``ColumnCryptoMetaData`` and key
material), and the Python Thrift libraries compile an IDL first. The compact protocol is
small, so this module reads it by hand into plain values: a struct becomes a ``dict`` from
field id to value, a list or set a ``list``, a map a ``dict``, binary ``bytes``. Unknown
fields are kept like the others, so callers pick the ids they know (``parquet.thrift``).

The input is hostile (anyone can write a footer): every length is checked against the
bytes left, nesting is bounded, and any malformation is a ``FormatError``.
"""

from __future__ import annotations

from struct import unpack_from
from typing import Any, Final

from kmsnb.errors import FormatError

__all__ = ["read_struct"]

MAX_DEPTH: Final = 32  # Parquet nests about 8 deep (FileMetaData ... PageEncodingStats)

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE = range(8)
_BINARY, _LIST, _SET, _MAP, _STRUCT = range(8, 13)
_VARINT_MAX_BYTES: Final = 10


def read_struct(data: bytes, offset: int = 0) -> tuple[dict[int, Any], int]:
    """Read one struct starting at ``offset``; return it and the offset just after it.

    Raises:
        FormatError: the bytes are not a well-formed compact-protocol struct.
    """
    reader = _Reader(data, offset)
    try:
        struct = reader.struct(depth=1)
    except IndexError:
        raise FormatError("a Parquet footer structure ends early; the file was damaged") from None
    return struct, reader.position


class _Reader:
    def __init__(self, data: bytes, position: int) -> None:
        self._data = data
        self.position = position

    def _malformed(self, what: str) -> FormatError:
        return FormatError(
            f"malformed Parquet footer ({what} at byte {self.position}); the file was damaged"
        )

    def _byte(self) -> int:
        value = self._data[self.position]
        self.position += 1
        return value

    def _varint(self) -> int:
        result = shift = 0
        for _ in range(_VARINT_MAX_BYTES):
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
        raise self._malformed("a varint longer than 10 bytes")

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def _size(self) -> int:
        size = self._varint()
        if size > len(self._data) - self.position:
            raise self._malformed(f"a length of {size} beyond the end")
        return size

    def struct(self, depth: int) -> dict[int, Any]:
        if depth > MAX_DEPTH:
            raise self._malformed(f"structures nested deeper than {MAX_DEPTH}")
        fields: dict[int, Any] = {}
        field_id = 0
        while True:
            header = self._byte()
            if header == _STOP:
                return fields
            delta, kind = header >> 4, header & 0x0F
            field_id = field_id + delta if delta else self._zigzag()
            if kind in (_TRUE, _FALSE):
                fields[field_id] = kind == _TRUE
            else:
                fields[field_id] = self.value(kind, depth)

    def value(self, kind: int, depth: int) -> Any:
        if depth > MAX_DEPTH:  # lists of lists nest without a struct between them
            raise self._malformed(f"structures nested deeper than {MAX_DEPTH}")
        if kind in (_TRUE, _FALSE):  # a boolean inside a list, set or map: one byte
            return self._byte() == _TRUE
        if kind == _BYTE:
            return self._byte()
        if kind in (_I16, _I32, _I64):
            return self._zigzag()
        if kind == _DOUBLE:
            if self.position + 8 > len(self._data):
                raise IndexError("double")
            (number,) = unpack_from("<d", self._data, self.position)
            self.position += 8
            return number
        if kind == _BINARY:
            size = self._size()
            start = self.position
            self.position += size
            return bytes(self._data[start : self.position])
        if kind in (_LIST, _SET):
            header = self._byte()
            count, element = header >> 4, header & 0x0F
            if count == 15:
                count = self._size()
            return [self.value(element, depth + 1) for _ in range(count)]
        if kind == _MAP:
            count = self._size()
            if not count:
                return {}
            types = self._byte()
            return {
                self._key(self.value(types >> 4, depth + 1)): self.value(types & 0x0F, depth + 1)
                for _ in range(count)
            }
        if kind == _STRUCT:
            return self.struct(depth + 1)
        raise self._malformed(f"unknown field type {kind}")

    def _key(self, key: Any) -> Any:
        if isinstance(key, list | dict):
            raise self._malformed("a map key that is a container")
        return key
