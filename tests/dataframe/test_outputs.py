"""What DataFrame writes refuse up front: column-level contexts too large to read back, and
text files where a binary file is needed."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pytest

import kmsnb
import kmsnb.dataframe
from kmsnb import _pme_io
from kmsnb._pme_footer import MAX_CONTEXT_METADATA_SIZE
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY, PII_KEY

pytestmark = [pytest.mark.unit]

FRAME = pd.DataFrame({"ssn": ["123-45-0001", "123-45-0002"], "units": [3, 4]})


def _write_columns(path: Path, kms: InMemoryKms, value_size: int) -> None:
    FRAME.kms.to_parquet(
        path,
        MAIN_KEY,
        kms=kms,
        columns={"ssn": PII_KEY},
        encryption_context={"note": "n" * value_size},
    )


@pytest.mark.parametrize("value_size", [12_026, 40_000])
def test_column_contexts_that_used_to_be_lost_are_written_and_read_back(
    tmp_path: Path, kms: InMemoryKms, value_size: int
) -> None:
    """0.1 wrote a 12,026-character context and could never read it back (its wrapped
    keys embedded it, over their 16 KiB bound). The context now lives in the footer's
    metadata, bounded at 64 KiB when read, like whole-file mode's."""
    path = tmp_path / "wide.parquet"
    _write_columns(path, kms, value_size)
    pd.testing.assert_frame_equal(
        FRAME,
        kmsnb.read_parquet(path, kms=kms, encryption_context={"note": "n" * value_size}),
    )


def test_a_column_context_too_large_to_read_back_is_refused_when_writing(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    """The bound readers enforce is checked at write time, with the error class whole-file
    mode uses for its own bound; nothing is written, and no KMS call is made."""
    path = tmp_path / "wide.parquet"
    with pytest.raises(ValueError, match="too large for column-level encryption") as caught:
        _write_columns(path, kms, MAX_CONTEXT_METADATA_SIZE)
    assert str(MAX_CONTEXT_METADATA_SIZE) in str(caught.value)
    assert not path.exists()
    assert kms.calls["generate_data_key"] == 0
    assert kms.calls.get("encrypt", 0) == 0
    too_large = {"a": "a" * 40_000, "b": "b" * 30_000}
    with pytest.raises(ValueError, match="at most 65536"):
        FRAME.kms.to_parquet(path, MAIN_KEY, kms=kms, encryption_context=too_large)


def test_the_largest_column_context_that_fits_reads_back(tmp_path: Path, kms: InMemoryKms) -> None:
    """Just under the bound: written, and read back (the check is not stricter than reads)."""
    path = tmp_path / "wide.parquet"
    overhead = len(_pme_io.context_metadata({"note": ""}))
    size = MAX_CONTEXT_METADATA_SIZE - overhead
    _write_columns(path, kms, size)
    pd.testing.assert_frame_equal(
        FRAME, kmsnb.read_parquet(path, kms=kms, encryption_context={"note": "n" * size})
    )
    with pytest.raises(ValueError, match="too large"):
        _write_columns(tmp_path / "over.parquet", kms, size + 1)


@pytest.mark.parametrize("reader", [kmsnb.read_parquet, kmsnb.read_csv])
def test_text_files_are_refused_with_a_clear_type_error(kms: InMemoryKms, reader: object) -> None:
    with pytest.raises(TypeError, match=r"binary file .* not a text file \(StringIO\)"):
        reader(io.StringIO("PAR1"), kms=kms)  # type: ignore[operator]
    with pytest.raises(TypeError, match="not a text file"):
        FRAME.kms.to_parquet(io.StringIO(), MAIN_KEY, kms=kms)
    with pytest.raises(TypeError, match="not a text file"):
        FRAME.kms.to_csv(io.StringIO(), MAIN_KEY, kms=kms)
