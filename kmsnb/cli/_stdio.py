"""Inputs and outputs of the file commands: paths, URLs, ``-`` (stdin/stdout) and directories.

``-`` names stdin or stdout. Decrypting to stdout writes each run of plaintext as soon as
it has been authenticated; like ``age``, a file that fails later leaves what was already
written on stdout (and exits 1). Decrypting to a file writes nothing unless all of it
verified (:func:`open_output`). Character devices and FIFOs (``-o /dev/null``) are written
through, like stdout. ``-o DIR/`` or ``-o`` an existing directory means "into that
directory" as ``cp`` does (:func:`destination_in`). Files and URLs (``s3://``, ``oss://``)
go through :mod:`kmsnb.storage`: an object is read by ranges, and written as an upload
that becomes the object only once complete; a URL kmsnb cannot write atomically is refused.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from collections.abc import Iterator

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, BinaryIO

__all__ = [
    "MAGIC_SIZE",
    "STDIO",
    "Prefixed",
    "check_storage_options",
    "destination_in",
    "discard_stdout",
    "is_url",
    "open_input",
    "open_output",
    "progress",
    "read_head",
]

STDIO = "-"
MAGIC_SIZE = 8  # len(kmsnb._format.header.MAGIC), without importing the format to sniff


def destination_in(output: str, source: str, *, suffix: str, decrypting: bool) -> str:
    """``output``, or the file to write inside it when it names a directory.

    ``-o DIR/`` (which need not exist yet: the write then fails naming it) or ``-o DIR``
    (an existing directory) gets the source's name plus ``suffix`` when encrypting, minus
    it when decrypting, as ``cp`` keeps the name.

    Raises:
        ValueError: the source is stdin, or a decrypted name would not lose ``suffix``.
    """
    if output == STDIO or not (output.endswith(("/", os.sep)) or os.path.isdir(output)):
        return output
    if source == STDIO:
        raise ValueError(f"stdin has no name to use inside {output}; name a file: -o DIR/NAME")
    name = os.path.basename(source.rstrip("/" + os.sep))
    if not decrypting:
        return os.path.join(output, name + suffix)
    if not name.endswith(suffix) or name == suffix:
        raise ValueError(
            f"{source} does not end in {suffix}, so its decrypted name is unknown; "
            f"name the file: -o {os.path.join(output, 'NAME')}"
        )
    return os.path.join(output, name.removesuffix(suffix))


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL (:func:`kmsnb.storage.is_url`'s rule)."""
    from kmsnb.storage import is_url as storage_is_url

    return storage_is_url(path)


def check_storage_options(storage_options: Mapping[str, Any] | None, *paths: str) -> None:
    """Refuse ``--storage-option`` when none of ``paths`` is a URL (it would be ignored);
    :func:`open_input` and :func:`open_output` give the options to URLs only."""
    if storage_options and not any(is_url(path) for path in paths):
        raise ValueError("--storage-option applies to URLs (s3://..., oss://...), not to files")


@contextlib.contextmanager
def open_input(
    path: str, *, storage_options: Mapping[str, Any] | None = None
) -> Iterator[tuple[BinaryIO, int | None]]:
    """Yield the source and its size (``None`` for stdin, pipes and devices)."""
    if is_url(path):
        from kmsnb.storage import open_input as open_stored

        with open_stored(path, storage_options=storage_options) as stored:
            size = stored.seek(0, io.SEEK_END)
            stored.seek(0)
            yield stored, size
        return
    if path == STDIO:
        yield _standard_stream(sys.stdin, "stdin", "<"), None
        return
    with open(path, "rb") as source:
        status = os.fstat(source.fileno())
        yield source, status.st_size if stat.S_ISREG(status.st_mode) else None


@contextlib.contextmanager
def open_output(
    path: str,
    *,
    overwrite: bool,
    source: str,
    binary_to_terminal: bool = True,
    durable: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[BinaryIO]:
    """Yield stdout, or a file (an object) that appears at ``path`` only if the block
    completes."""
    from kmsnb.storage import open_output as open_stored

    if path == STDIO:
        stdout = _standard_stream(sys.stdout, "stdout", ">")
        if not binary_to_terminal and sys.stdout.isatty():
            raise ValueError("refusing to write ciphertext to a terminal; redirect stdout")
        yield stdout
        stdout.flush()
        return
    if is_url(path) or is_url(source):
        if source.rstrip("/") == path.rstrip("/"):
            raise ValueError(f"{path} is both the source and the destination")
    elif source != STDIO and os.path.exists(path) and os.path.samefile(source, path):
        raise ValueError(f"{path} is both the source and the destination")
    with contextlib.ExitStack() as stack:
        # open_output checks the destination (exists, a directory, a device, a store
        # kmsnb cannot write atomically...) on entry.
        try:
            output = stack.enter_context(
                open_stored(
                    path,
                    overwrite=overwrite,
                    durable=durable,
                    storage_options=storage_options if is_url(path) else None,
                )
            )
        except FileExistsError:
            raise FileExistsError(f"{path} exists") from None  # the hint names --overwrite
        yield output


def _standard_stream(stream: Any, name: str, redirect: str) -> BinaryIO:
    """The binary side of stdin or stdout; a clear error when the shell closed it."""
    if stream is None:  # what Python makes of a descriptor closed at start (<&- or >&-)
        raise OSError(
            errno.EBADF, f"{name} is closed; give a file instead of -, or {redirect} a file"
        )
    return stream.buffer  # type: ignore[no-any-return]


def discard_stdout() -> None:
    """Point stdout at /dev/null: Python flushes it at exit, which would fail again."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def progress(total: int | None, description: str) -> contextlib.AbstractContextManager[Any]:
    """A progress bar on a terminal for large files; otherwise a no-op (tqdm not imported)."""
    if total is None or not sys.stderr.isatty():
        return contextlib.nullcontext(_ignore)
    from kmsnb._progress import progress_bar

    return progress_bar(total, description)


def _ignore(count: int) -> None:
    """What a progress bar's ``advance`` does when there is no bar."""


def read_head(source: BinaryIO) -> bytes:
    """The first :data:`MAGIC_SIZE` bytes (fewer at the end), to tell the formats apart."""
    head = b""
    while len(head) < MAGIC_SIZE and (more := source.read(MAGIC_SIZE - len(head))):
        head += more
    return head


class Prefixed(io.RawIOBase):
    """``source`` with ``head``, already read from it to sniff the format, put back."""

    def __init__(self, head: bytes, source: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size], self._head = self._head[:size], self._head[size:]
            return size
        return self._source.readinto(target)  # type: ignore[attr-defined,no-any-return]
