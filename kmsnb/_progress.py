"""Progress bars for long file operations, shown only when they are worth it.

``tqdm`` is optional and imported on first use: ``tqdm.auto`` decides at import time
whether it runs in a kernel (widget bar) or a terminal (text bar on stderr), so importing
it when ``kmsnb`` is imported would decide too early and cost every user the import.
Operations below the threshold, of unknown size, or without tqdm installed get a no-op.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "DEFAULT_PROGRESS_THRESHOLD",
    "check_progress",
    "get_progress_threshold",
    "progress_bar",
    "set_progress_threshold",
]

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


def _ignore(count: int) -> None:
    """The update function of a bar that is not shown."""


def _tqdm_class() -> Any:
    """``tqdm.auto.tqdm``, or ``None`` when tqdm is not installed."""
    try:
        with warnings.catch_warnings():
            # In a kernel without ipywidgets, tqdm.auto warns and falls back to a text bar;
            # the fallback is what we want, the warning is noise for kmsnb's users.
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
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


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, *, show: bool | None = None
) -> Iterator[Callable[[int], None]]:
    """Yield a function to call with each number of bytes processed.

    A bar (``tqdm.auto``: a widget in Jupyter, text on stderr in a terminal) is shown,
    when tqdm is installed, if ``show`` is true, or if ``show`` is ``None`` and ``total``
    is known and at least the threshold (see :func:`set_progress_threshold`); otherwise
    the function does nothing. The bar disappears when the block ends.

    Args:
        total: the number of bytes the operation will process, or ``None`` if unknown.
        description: a short label, shown left of the bar; never put data in it.
        show: the caller's ``progress=``: ``True`` always, ``False`` never, ``None`` by
            the threshold.
    """
    wanted = show if show is not None else total is not None and total >= _threshold
    if not wanted:
        yield _ignore
        return
    tqdm = _tqdm_class()
    if tqdm is None:
        yield _ignore
        return
    bar = tqdm(
        total=total,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
    )
    try:
        yield bar.update
    finally:
        bar.close()
