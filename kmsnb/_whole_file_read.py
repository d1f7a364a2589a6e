"""Whole-file mode, reading: the verified plaintext of a kmsnb file as a table reader takes
it (one buffer, a buffered stream, a seekable reader), with a progress bar.

:mod:`kmsnb.dataframe`, :mod:`kmsnb.arrow` and :mod:`kmsnb.polars` read through these, so
that a bar counts the same bytes and gets the same total for each: the plaintext size the
header declares, else the payload's size (a file written as a stream declares none), which
the bar's total becomes the count of once read (:func:`kmsnb._progress.progress_bar`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import BinaryIO, TypeVar, cast

from kmsnb._format.header import Header
from kmsnb._progress import counting_reader, progress_bar
from kmsnb._whole_file_io import remaining_size
from kmsnb.envelope import open_decrypt, open_decrypt_seekable
from kmsnb.kms._base import Kms

__all__ = ["decrypt_whole", "decrypting_seekable", "decrypting_stream", "plaintext_total"]

B = TypeVar("B")


def plaintext_total(header: Header, remaining: int) -> int:
    """What a bar counts towards, reading a kmsnb file of ``remaining`` bytes: the
    plaintext size its header declares, else (written as a stream) its payload's size, an
    upper bound: chunks add their tags."""
    declared = header.plaintext_size
    return declared if declared is not None else remaining - header.size


def decrypt_whole(
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    allocate: Callable[[int], B],
    progress: bool | None = False,
    label: str = "decrypt",
) -> tuple[B, int]:
    """The verified plaintext of a whole-file kmsnb file, in one buffer from ``allocate``,
    and its size; a progress bar labelled ``label`` as ``progress`` says
    (:func:`kmsnb._progress.progress_bar`; the total: the size the header declares, else
    the payload's).

    The plaintext is never longer than the payload, so one allocation suffices; the buffer
    is one byte longer, so that the end of the data shows. Give Arrow's
    ``pyarrow.allocate_buffer`` where pyarrow is there: its pool reuses freed memory, where
    a fresh ``bytearray`` this big costs more in page faults than the decryption does. The
    buffer is freed, not zeroed: the table made from it holds the same data.
    """
    size = remaining_size(source)
    reader = open_decrypt(
        source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    )
    with reader:
        # The plaintext is never longer than that.
        capacity = plaintext_total(reader.header, size)
        buffer = allocate(capacity + 1)
        view = memoryview(buffer).cast("B")  # type: ignore[arg-type]
        filled = 0
        with progress_bar(capacity, label, show=progress) as advance:
            while count := reader.readinto(view[filled:]):
                filled += count
                advance(count)
                if filled == len(view):
                    raise AssertionError("kmsnb: internal error: plaintext longer than payload")
    # readinto returned 0: the final chunk has verified.
    return buffer, filled


@contextlib.contextmanager
def decrypting_stream(
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    buffer_size: int,
    progress: bool | None,
    label: str,
) -> Iterator[BinaryIO]:
    """A buffered reader of the verified plaintext of a whole-file kmsnb file (a CSV
    reader's input), with a progress bar as :func:`decrypt_whole` has one."""
    size = remaining_size(source)
    reader = open_decrypt(
        source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    )
    total = plaintext_total(reader.header, size)
    with reader, progress_bar(total, label, show=progress) as advance:
        counted = cast(io.RawIOBase, counting_reader(reader, advance))  # type: ignore[arg-type]
        yield cast(BinaryIO, io.BufferedReader(counted, buffer_size))


@contextlib.contextmanager
def decrypting_seekable(
    source: BinaryIO,
    *,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    progress: bool | None,
    label: str,
) -> Iterator[BinaryIO]:
    """The seekable decrypting reader of a whole-file kmsnb file (for a projection, which
    decrypts only the chunks it reads), with a bar counting what is read."""
    reader = open_decrypt_seekable(
        source, kms=kms, encryption_context=encryption_context, allowed_keys=allowed_keys
    )
    with reader, progress_bar(reader.plaintext_size, label, show=progress) as advance:
        yield counting_reader(reader, advance)  # type: ignore[arg-type]
