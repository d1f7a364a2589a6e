"""Hostile Parquet footers (readable without any key) get kmsnb's own errors: the Thrift
reader and the footer parser of kmsnb.inspect, with and without the KMS, and DuckDB's
helper. A bit flipped or a file cut anywhere near the end is a FormatError, an
IntegrityError or a refusal, never another exception."""

from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kmsnb
import kmsnb.dataframe  # registers df.kms
from kmsnb._thrift import read_struct
from kmsnb.errors import FormatError, KmsnbError
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

_KMS = InMemoryKms()
_KMS.create_key(alias="alias/main")
_KMS.create_key(alias="alias/pii")


@functools.cache
def _file(**options: object) -> bytes:
    sink = io.BytesIO()
    frame = pd.DataFrame({"name": ["ann", "bob"], "ssn": ["1", "2"], "point": [{"x": 1}, {"x": 2}]})
    columns = options.pop("columns", None)
    frame.kms.to_parquet(
        sink, "alias/main", kms=_KMS, columns=list(columns) if columns else None, **options
    )
    return sink.getvalue()


SOURCES = st.sampled_from(["columns", "uniform"]).map(
    lambda kind: _file(uniform=True) if kind == "uniform" else _file(columns=("ssn",))
)


def _inspect_both_ways(data: bytes) -> None:
    for kms in (None, _KMS):
        with contextlib.suppress(KmsnbError):
            kmsnb.inspect(io.BytesIO(data), kms=kms)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=SOURCES, back=st.integers(1, 1400), bit=st.integers(0, 7))
def test_a_flipped_bit_near_the_end(source: bytes, back: int, bit: int) -> None:
    position = max(0, len(source) - back)
    data = bytearray(source)
    data[position] ^= 1 << bit
    _inspect_both_ways(bytes(data))


@settings(max_examples=150, deadline=None)
@given(source=SOURCES, cut=st.integers(0, 1400))
def test_a_file_cut_short(source: bytes, cut: int) -> None:
    _inspect_both_ways(source[: max(0, len(source) - cut)])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_the_thrift_reader_refuses_garbage_with_format_errors(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        read_struct(data)


def test_nesting_and_lengths_are_bounded() -> None:
    nested = b"\x1c" * 100 + b"\x00" * 100  # struct field 1 holding a struct, 100 deep
    with pytest.raises(FormatError, match="nested deeper"):
        read_struct(nested)
    lists = b"\x19" + b"\x19" * 20_000  # a list holding a list ..., 20,000 deep
    with pytest.raises(FormatError, match="nested deeper"):
        read_struct(lists)
    with pytest.raises(FormatError, match="nested deeper"):
        read_struct(b"\x1b" + b"\x01\x8b\x00" * 20_000)  # a map of str to a map ...
    with pytest.raises(FormatError, match="beyond the end"):
        read_struct(b"\x18\xff\xff\x03abc")  # binary field of 65535 bytes, 3 there
    with pytest.raises(FormatError, match="varint longer"):
        read_struct(b"\x15" + b"\xff" * 11)


def test_not_parquet_and_plain_parquet(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not a Parquet file"):
        kmsnb.inspect(io.BytesIO(b"PAR1 too short"))
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(FormatError, match="plain, unencrypted"):
        kmsnb.inspect(plain)
    with pytest.raises(FormatError, match="plain, unencrypted"):
        kmsnb.read_parquet(plain, kms=_KMS)
