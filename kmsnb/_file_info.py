"""What :func:`kmsnb.inspect` says of a kmsnb file: :class:`FileInfo`, with its displays.

Importable as ``kmsnb.envelope.FileInfo`` (and ``kmsnb.FileInfo``); apart from
:mod:`kmsnb.envelope` so that a stream's reader or writer, all that ``kmsnb encrypt`` and
``kmsnb decrypt`` use, does not build a dataclass and the HTML displays it never shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kmsnb._format.header import FORMAT_VERSION, Header
from kmsnb._format.stream import CHUNK_SIZE
from kmsnb._render import Rendered, Rows, cell_text, format_size

__all__ = ["FileInfo"]


@dataclass(frozen=True, repr=False)
class FileInfo(Rendered):
    """What the header of a kmsnb file says, read without calling the KMS.

    Attributes:
        format_version: the kmsnb format version (1).
        algorithm: the payload algorithm (``"cobblestone-256"``).
        key_id: the master key that wrapped the data key, as the header says: a claim,
            which the KMS's Decrypt answer confirms (or refutes) when the file is read.
        key_version_id: the version of that master key.
        encryption_context: the encryption context (authenticated, not secret).
        content_type: what the plaintext holds (raw bytes, Parquet, CSV...).
        chunk_size: plaintext bytes per authenticated chunk.
        plaintext_size: the plaintext's size, or ``None`` when it was written as a stream.
        header_size: the header's size in bytes.
        wrapped_key_size: the size of the wrapped data key (the KMS CiphertextBlob).
        file_size: the whole file's size, when it could be known.

    ``repr`` is one line (content type, size, key, the context's keys); ``str`` and
    ``_repr_html_`` (a Jupyter cell's value) are a table of :meth:`fields`. Neither shows
    the context's values: they are not secret, but need not be in every log line.
    """

    format_version: int
    algorithm: str
    key_id: str
    key_version_id: str
    encryption_context: Mapping[str, str]
    content_type: str
    chunk_size: int
    plaintext_size: int | None
    header_size: int
    wrapped_key_size: int
    file_size: int | None = None

    @classmethod
    def from_header(cls, header: Header, *, file_size: int | None = None) -> FileInfo:
        return cls(
            format_version=FORMAT_VERSION,
            algorithm=header.algorithm_name,
            key_id=header.key_id,
            key_version_id=header.key_version_id,
            encryption_context=dict(header.encryption_context),
            content_type=header.content_type,
            chunk_size=CHUNK_SIZE,
            plaintext_size=header.plaintext_size,
            header_size=header.size,
            wrapped_key_size=len(header.wrapped_key),
            file_size=file_size,
        )

    def fields(self) -> list[tuple[str, object]]:
        """``(name, value)`` rows for the text and HTML displays."""
        size = (
            "unknown (written as a stream)"
            if self.plaintext_size is None
            else format_size(self.plaintext_size)
        )
        return [
            ("key id", self.key_id),
            ("key version", self.key_version_id),
            ("encryption context", dict(self.encryption_context) or "none"),
            ("content type", self.content_type),
            ("plaintext size", size),
            ("file size", format_size(self.file_size)),
            ("format", f"kmsnb v{self.format_version}, {self.algorithm}"),
        ]

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        return "kmsnb file", None, [[name, cell_text(value)] for name, value in self.fields()]

    def __repr__(self) -> str:
        size = "size unknown" if self.plaintext_size is None else format_size(self.plaintext_size)
        context = ", ".join(sorted(self.encryption_context)) or "none"
        # What a header says is escaped: a crafted file must not write to the terminal.
        return cell_text(
            f"FileInfo({self.content_type}, {size}, key {self.key_id}, context keys: {context})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # a terminal's cell value: the one line, not the table
