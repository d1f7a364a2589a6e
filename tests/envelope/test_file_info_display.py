"""``FileInfo`` as users meet it: one short line for ``repr``, a table for ``str`` and
Jupyter (``_repr_html_``), both from the record itself (kmsnb._render), without IPython."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import kmsnb
from kmsnb.envelope import FileInfo
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

CONTEXT = {"dataset": "sales", "owner": "secret-looking-value"}


def _info(kms: InMemoryKms, key_id: str, tmp_path: Path, size: int = 2048) -> FileInfo:
    path = tmp_path / "info.kms"
    path.write_bytes(kmsnb.encrypt_bytes(b"x" * size, key_id, kms=kms, encryption_context=CONTEXT))
    return kmsnb.inspect(path)


def test_repr_is_one_line_with_content_size_key_and_context_keys(
    kms: InMemoryKms, key_id: str, tmp_path: Path
) -> None:
    info = _info(kms, key_id, tmp_path)
    assert repr(info) == (
        f"FileInfo(application/octet-stream, 2.0 KiB (2048 bytes), key {info.key_id}, "
        "context keys: dataset, owner)"
    )
    assert "secret-looking-value" not in repr(info)


def test_str_and_html_are_the_same_table(kms: InMemoryKms, key_id: str, tmp_path: Path) -> None:
    info = _info(kms, key_id, tmp_path)
    text, shown = str(info), info._repr_html_()
    assert text.splitlines()[0] == "kmsnb file"
    assert shown.startswith('<table class="kmsnb"')
    for name, _ in info.fields():
        assert name in text
        assert name in shown
    assert info.key_id in text
    assert info.key_id in shown
    assert "2.0 KiB (2048 bytes)" in shown


def test_a_crafted_header_cannot_write_to_the_terminal(
    kms: InMemoryKms, key_id: str, tmp_path: Path
) -> None:
    info = _info(kms, key_id, tmp_path)
    crafted = FileInfo(**{**info.__dict__, "content_type": "x\x1b[2J", "key_id": "k\x07"})
    for shown in (repr(crafted), str(crafted), crafted._repr_html_()):
        assert "\x1b" not in shown
        assert "\x07" not in shown


def test_a_stream_of_unknown_size_says_so(kms: InMemoryKms, key_id: str) -> None:
    sink = io.BytesIO()
    with kmsnb.open_encrypt(sink, key_id, kms=kms) as writer:
        writer.write(b"abc")
    sink.seek(0)
    info = kmsnb.inspect(sink)
    assert "size unknown" in repr(info)
    assert "context keys: none" in repr(info)
    assert "unknown (written as a stream)" in str(info)
