"""The one progress helper (kmsnb._progress) that every verb's bar goes through: a total
that is an estimate ends at the count, and the counting wrappers cost nothing when no bar
is shown (they hand back the file itself)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from progress_bars import BarRecorder

from kmsnb import _progress

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize("count", [50, 100, 150])
def test_a_completed_bar_ends_at_its_count(bars: BarRecorder, count: int) -> None:
    """Under, at or past the estimate: the total becomes the count, so the bar ends full."""
    with _progress.progress_bar(100, "estimate", show=True) as advance:
        advance(count)
    assert (bars.only.initial_total, bars.only.n, bars.only.total) == (100, count, count)
    assert bars.only.closed


def test_an_interrupted_bar_keeps_its_total_and_closes(bars: BarRecorder) -> None:
    """An error is not a completion: the bar is closed short of its total (a notebook
    shows it red)."""

    def fail_midway() -> None:
        with _progress.progress_bar(100, "x", show=True) as advance:
            advance(40)
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk"):
        fail_midway()
    assert (bars.only.n, bars.only.total, bars.only.closed) == (40, 100, True)


def test_the_counting_wrappers_are_the_file_itself_without_a_bar(bars: BarRecorder) -> None:
    """No bar: the very file object, so a small operation pays no layer per write/read."""
    output, source = io.BytesIO(), io.BytesIO(b"data")
    with _progress.progress_bar(10, "small") as advance:
        assert _progress.counting_writer(output, advance) is output
        assert _progress.counting_reader(source, advance) is source
    assert (len(bars), bars.lookups) == (0, 0)


def test_the_counting_wrappers_count_and_leave_the_file_open(bars: BarRecorder) -> None:
    """With a bar: bytes written and read are counted; seeking passes through; closing the
    wrapper leaves the caller's file open."""
    output, source = io.BytesIO(), io.BytesIO(b"0123456789")
    with _progress.progress_bar(None, "shown", show=True) as advance:
        writer = _progress.counting_writer(output, advance)
        writer.write(b"abc")
        writer.close()
        reader = _progress.counting_reader(source, advance)
        reader.seek(4)
        assert (reader.read(3), reader.tell()) == (b"456", 7)
        reader.close()
    assert (output.getvalue(), output.closed, source.closed) == (b"abc", False, False)
    assert (bars.only.n, bars.only.updates) == (6, 2)


@pytest.mark.parametrize(
    ("total", "show"),
    [
        (None, None),
        (10, None),
        (_progress.DEFAULT_PROGRESS_THRESHOLD, None),
        (10, True),
        (10**9, False),
    ],
)
def test_wants_bar_says_what_progress_bar_does(
    bars: BarRecorder, total: int | None, show: bool | None
) -> None:
    """``wants_bar`` (which lets a small file skip its bar's label) is progress_bar's rule."""
    with _progress.progress_bar(total, "x", show=show):
        pass
    assert _progress.wants_bar(total, show) == (len(bars) == 1)


def test_a_bar_in_a_script_is_tqdms_text_bar_without_asyncio() -> None:
    """Outside a kernel the bar is tqdm's own text bar, and drawing it imports no
    ``asyncio`` (``tqdm.auto`` would, for an async mixin kmsnb does not use)."""
    code = (
        "import sys, kmsnb._progress as p\n"
        "with p.progress_bar(10, 'x', show=True) as advance: advance(10)\n"
        "import tqdm.std\n"
        "assert p._tqdm_class() is tqdm.std.tqdm, p._tqdm_class()\n"
        "assert 'asyncio' not in sys.modules\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "x:   0%" in completed.stderr  # a text bar on stderr (not left when done)
