"""``read_parquet(columns=...)`` on a whole-file Parquet reads only what the projection needs.

Through the seekable reader (docs/FORMAT.md, "Random access"): the footer and the chosen
column chunks are decrypted and authenticated, the other columns' chunks are not read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq
import pytest

import kmsnb
import kmsnb.dataframe  # registers df.kms
from kmsnb._format.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, PAYLOAD_PREFIX_SIZE
from kmsnb.errors import ContextMismatchError, IntegrityError, TruncatedError
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY

pytestmark = pytest.mark.unit

ROWS = 20_000
COLUMNS = [f"c{i}" for i in range(10)]


class CountingFile(io.BytesIO):
    """A BytesIO that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({name: rng.random(ROWS) for name in COLUMNS})


def _encrypted(kms: InMemoryKms, **options: Any) -> bytes:
    sink = io.BytesIO()
    _frame().kms.to_parquet(sink, MAIN_KEY, kms=kms, **options)
    return sink.getvalue()


def _column_chunk_file_offset(data: bytes, kms: InMemoryKms, column: str) -> int:
    """An offset in the encrypted file inside the ciphertext of ``column``'s data."""
    plaintext = kmsnb.decrypt_bytes(data, kms=kms)
    metadata = pq.read_metadata(io.BytesIO(plaintext)).row_group(0)
    names = [metadata.column(i).path_in_schema for i in range(metadata.num_columns)]
    chunk = metadata.column(names.index(column))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    middle = start + chunk.total_compressed_size // 2
    header_size = kmsnb.inspect(io.BytesIO(data)).header_size
    index, within = divmod(middle, CHUNK_SIZE)
    return header_size + PAYLOAD_PREFIX_SIZE + index * ENCRYPTED_CHUNK_SIZE + within


def test_projection_reads_a_fraction_of_the_file(kms: InMemoryKms) -> None:
    """One of ten columns: the same values as a full read, from under a fifth of the bytes."""
    data = _encrypted(kms)
    source = CountingFile(data)
    result = kmsnb.read_parquet(source, kms=kms, columns=["c3"])
    pd.testing.assert_frame_equal(_frame()[["c3"]], result)
    assert source.bytes_read < len(data) / 5
    full = kmsnb.read_parquet(io.BytesIO(data), kms=kms)
    two = kmsnb.read_parquet(io.BytesIO(data), kms=kms, columns=["c8", "c3"])
    pd.testing.assert_frame_equal(full[["c8", "c3"]], two)


def test_projection_from_a_path_and_a_stream_of_unknown_size(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    """A local path, and a file written as a stream (no plaintext_size), project too."""
    path = tmp_path / "frame.parquet.kms"
    _frame().kms.to_parquet(path, MAIN_KEY, kms=kms)
    pd.testing.assert_frame_equal(
        _frame()[["c0", "c9"]], kmsnb.read_parquet(path, kms=kms, columns=["c0", "c9"])
    )
    data = path.read_bytes()
    with kmsnb.open_decrypt(io.BytesIO(data), kms=kms) as reader:
        plaintext = reader.readall()
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, MAIN_KEY, kms=kms, content_type=reader.header.content_type) as w:
        w.write(plaintext)
    assert kmsnb.inspect(io.BytesIO(sink.getvalue())).plaintext_size is None
    result = kmsnb.read_parquet(io.BytesIO(sink.getvalue()), kms=kms, columns=["c5"])
    pd.testing.assert_frame_equal(_frame()[["c5"]], result)


def test_damage_in_a_projected_column_is_detected(kms: InMemoryKms) -> None:
    """A flipped bit inside a column that is read fails with IntegrityError."""
    data = bytearray(_encrypted(kms))
    data[_column_chunk_file_offset(bytes(data), kms, "c4")] ^= 0x10
    with pytest.raises(IntegrityError, match="chunk"):
        kmsnb.read_parquet(io.BytesIO(bytes(data)), kms=kms, columns=["c4"])


def test_damage_outside_the_projection_is_not_read(kms: InMemoryKms) -> None:
    """A flipped bit in a column that is not read does not change the projection (its
    chunks are never decrypted), while a full read still refuses the file."""
    data = bytearray(_encrypted(kms))
    data[_column_chunk_file_offset(bytes(data), kms, "c6")] ^= 0x10
    damaged = bytes(data)
    result = kmsnb.read_parquet(io.BytesIO(damaged), kms=kms, columns=["c1"])
    pd.testing.assert_frame_equal(_frame()[["c1"]], result)
    with pytest.raises(IntegrityError):
        kmsnb.read_parquet(io.BytesIO(damaged), kms=kms)


def test_final_chunk_and_length_are_checked_on_open(kms: InMemoryKms) -> None:
    """Damage to the final chunk, a cut or appended bytes fail whatever the projection."""
    data = _encrypted(kms)
    flipped = bytearray(data)
    flipped[-5] ^= 1
    with pytest.raises(IntegrityError, match="final chunk"):
        kmsnb.read_parquet(io.BytesIO(bytes(flipped)), kms=kms, columns=["c0"])
    with pytest.raises(TruncatedError):
        kmsnb.read_parquet(io.BytesIO(data[:-ENCRYPTED_CHUNK_SIZE]), kms=kms, columns=["c0"])
    with pytest.raises(TruncatedError):
        kmsnb.read_parquet(io.BytesIO(data + b"\0"), kms=kms, columns=["c0"])


def test_projection_checks_the_context_first(kms: InMemoryKms) -> None:
    """The expected encryption context is compared before the KMS is called."""
    data = _encrypted(kms, encryption_context={"dataset": "sales"})
    calls = dict(kms.calls)
    with pytest.raises(ContextMismatchError):
        kmsnb.read_parquet(
            io.BytesIO(data), kms=kms, columns=["c0"], encryption_context={"dataset": "hr"}
        )
    assert calls == dict(kms.calls)
