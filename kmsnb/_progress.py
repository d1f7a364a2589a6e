"""Progress bars for long operations (files, streams, tables), shown only when they are
worth it.

``tqdm`` is optional and imported on first use: ``tqdm.autonotebook`` decides at import
time whether it runs in a kernel (widget bar) or a terminal (text bar on stderr), so
importing it when ``kmsnb`` is imported would decide too early and cost every user the
import. It is ``tqdm.auto`` without the ``asyncio`` mixin (kmsnb iterates nothing
asynchronously), which spares a script its import of ``asyncio``: ``tqdm.auto`` took 75-96
ms to import here, ``tqdm.autonotebook`` 53-70 ms (``-X importtime``, 2026-12-02, on a
loaded machine), most of it tqdm's own (``importlib.metadata`` for its version, ``logging``).
Operations below the threshold, of unknown size, or without tqdm installed get a no-op,
:func:`ignore_progress`; :func:`counting_writer` and :func:`counting_reader` then hand back
the file itself, so that a small operation pays one no-op call per step and nothing more.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "DEFAULT_PROGRESS_THRESHOLD",
    "Advance",
    "check_progress",
    "counting_reader",
    "counting_writer",
    "get_progress_threshold",
    "ignore_progress",
    "progress_bar",
    "set_progress_threshold",
    "wants_bar",
]

#: What :func:`progress_bar` yields: called with each number of bytes processed.
Advance = Callable[[int], None]

#: Plaintext size from which a bar is shown: below it an operation takes well under a
#: second, and a bar would only flicker.
DEFAULT_PROGRESS_THRESHOLD = 64 * 1024 * 1024

_threshold = DEFAULT_PROGRESS_THRESHOLD


def get_progress_threshold() -> int:
    """The size in bytes from which :func:`progress_bar` shows a bar."""
    return _threshold


def set_progress_threshold(size: int) -> None:
    """Show bars for operations of at least ``size`` bytes (0: always).

    Raises:
        ValueError: ``size`` is negative.
    """
    global _threshold
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"the progress threshold must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError("the progress threshold must be >= 0")
    _threshold = size


def ignore_progress(count: int) -> None:
    """The update function of a bar that is not shown (the default of ``advance=``)."""


def _tqdm_class() -> Any:
    """``tqdm.autonotebook.tqdm``, or ``None`` when tqdm is not installed."""
    try:
        with warnings.catch_warnings():
            # In a kernel, tqdm.autonotebook warns that it chose the widget (and, without
            # ipywidgets, that it falls back to a text bar); both choices are what we want,
            # the warnings are noise for kmsnb's users.
            warnings.simplefilter("ignore")
            from tqdm.autonotebook import tqdm
    except ImportError:
        return None
    return tqdm


def check_progress(progress: object) -> bool | None:
    """``progress=`` as the verbs take it: ``None`` (the threshold decides), ``True`` or
    ``False`` (always, never).

    Raises:
        TypeError: anything else.
    """
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, not {type(progress).__name__}")
    return progress


def wants_bar(total: int | None, show: bool | None) -> bool:
    """Whether :func:`progress_bar` shows a bar for ``total`` and ``show`` (if tqdm is
    installed): a small file's caller can then skip the bar, and its label, altogether."""
    return show if show is not None else total is not None and total >= _threshold


#: What :func:`progress_bar` gives where no bar is shown: it holds no state, so one serves
#: every call, where a generator's context manager cost a 4 KiB file ~1 % (issue 16).
_NO_BAR: contextlib.nullcontext[Advance] = contextlib.nullcontext(ignore_progress)


def progress_bar(
    total: int | None, description: str, *, show: bool | None = None
) -> contextlib.AbstractContextManager[Advance]:
    """A context manager that yields a function to call with each number of bytes
    processed.

    A bar (``tqdm.autonotebook``: a widget in Jupyter, text on stderr in a terminal) is shown,
    when tqdm is installed, if ``show`` is true, or if ``show`` is ``None`` and ``total``
    is known and at least the threshold (see :func:`set_progress_threshold`); otherwise
    the function does nothing. The bar disappears when the block ends.

    ``total`` may be an estimate (a table's size in memory before it is written, the
    payload's size of a file whose header declares none): when the block completes, the
    bar's total becomes the count, so that it ends full (a notebook's bar left short of
    its total turns red, as after an error, and stays).

    A bar is made by this call: enter the result at once (``with progress_bar(...)``), so
    that it is closed.

    Args:
        total: the number of bytes the operation will process (or about), or ``None`` if
            unknown.
        description: a short label, shown left of the bar; never put data in it.
        show: the caller's ``progress=``: ``True`` always, ``False`` never, ``None`` by
            the threshold.
    """
    if not wants_bar(total, show):
        return _NO_BAR
    tqdm = _tqdm_class()
    if tqdm is None:
        return _NO_BAR
    return _shown(
        tqdm(
            total=total,
            desc=description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
        )
    )


@contextlib.contextmanager
def _shown(bar: Any) -> Iterator[Advance]:
    """Yield ``bar``'s update; close it at the end of the block, full if it completed."""
    try:
        yield bar.update
        # Completed: what was counted is what there was, whatever the estimate said.
        bar.total = bar.n
    finally:
        bar.close()


class _CountingWriter(io.RawIOBase):
    """Passes writes on to ``output`` and counts them; closing it leaves ``output`` open."""

    def __init__(self, output: BinaryIO, advance: Advance) -> None:
        super().__init__()
        self._output = output
        self._advance = advance

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        written = self._output.write(data)
        self._advance(written)
        return written

    def tell(self) -> int:
        return self._output.tell()

    def flush(self) -> None:
        self._output.flush()


class _CountingReader(io.RawIOBase):
    """Reads from ``source`` (seeking where it seeks) and counts what it gives; closing it
    leaves ``source`` open."""

    def __init__(self, source: BinaryIO, advance: Advance) -> None:
        super().__init__()
        self._source = source
        self._advance = advance

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._source.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        return self._source.tell()

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = cast(io.RawIOBase, self._source).readinto(buffer) or 0
        self._advance(count)
        return count


def counting_writer(output: BinaryIO, advance: Advance) -> BinaryIO:
    """``output``, with every byte written counted by ``advance``; ``output`` itself when
    no bar is shown."""
    if advance is ignore_progress:
        return output
    return cast(BinaryIO, _CountingWriter(output, advance))


def counting_reader(source: BinaryIO, advance: Advance) -> BinaryIO:
    """``source`` (which has ``readinto``), with every byte read counted by ``advance``;
    ``source`` itself when no bar is shown."""
    if advance is ignore_progress:
        return source
    return cast(BinaryIO, _CountingReader(source, advance))
