"""Sizes as people read them ("1.5 KiB"): one rule for every face.

Apart from :mod:`kmsnb._render` (which re-exports it) so that the CLI's one-line receipts
need not import the renderer and ``html`` at start-up.
"""

from __future__ import annotations

__all__ = ["format_size", "format_size_brief"]

_SIZE_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(size: int | None) -> str:
    """``1073741824`` as ``"1.0 GiB (1073741824 bytes)"``; small sizes in bytes only."""
    if size is None:
        return "unknown"
    brief = format_size_brief(size)
    return brief if size < 1024 else f"{brief} ({size} bytes)"


def format_size_brief(size: int) -> str:
    """``1536`` as ``"1.5 KiB"``, below 1 KiB ``"512 bytes"`` (``"1 byte"``): powers of
    1024 up to PiB, as ``ls -h``; for a message that names no exact count."""
    if size < 1024:
        return f"{size} byte" + ("" if size == 1 else "s")
    scaled = float(size)
    unit = 0
    while scaled >= 1024 and unit < len(_SIZE_UNITS) - 1:
        scaled /= 1024
        unit += 1
    return f"{scaled:.1f} {_SIZE_UNITS[unit]}"
