"""``progress=`` on the file operations (issue 12): ``None`` follows the session's
threshold, ``True``/``False`` force it; the bar is ``tqdm.autonotebook``'s."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import kmsnb
from kmsnb import _progress
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


@pytest.fixture(autouse=True)
def _default_threshold() -> Iterator[None]:
    yield
    _progress.set_progress_threshold(_progress.DEFAULT_PROGRESS_THRESHOLD)


def _bar_shown(capsys: pytest.CaptureFixture[str], label: str) -> bool:
    return label in capsys.readouterr().err  # tqdm's text bar goes to stderr


@pytest.mark.parametrize(
    ("progress", "threshold", "shown"),
    [
        (None, _progress.DEFAULT_PROGRESS_THRESHOLD, False),  # small file: no bar
        (None, 0, True),  # the session's threshold says always
        (True, _progress.DEFAULT_PROGRESS_THRESHOLD, True),
        (False, 0, False),
    ],
)
def test_encrypt_and_decrypt_file_follow_progress(
    tmp_path: Path,
    kms: InMemoryKms,
    key_id: str,
    capsys: pytest.CaptureFixture[str],
    progress: bool | None,
    threshold: int,
    shown: bool,
) -> None:
    _progress.set_progress_threshold(threshold)
    source = tmp_path / "plain.bin"
    source.write_bytes(b"p" * 50_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.autonotebook's notices
        kmsnb.encrypt_file(source, tmp_path / "c.kms", key_id, kms=kms, progress=progress)
        assert shown == _bar_shown(capsys, "encrypt plain.bin")
        kmsnb.decrypt_file(tmp_path / "c.kms", tmp_path / "out", kms=kms, progress=progress)
        assert shown == _bar_shown(capsys, "decrypt c.kms")
    assert (tmp_path / "out").read_bytes() == source.read_bytes()


def test_progress_must_be_a_bool_or_none(tmp_path: Path, kms: InMemoryKms, key_id: str) -> None:
    source = tmp_path / "plain.bin"
    source.write_bytes(b"p")
    with pytest.raises(TypeError, match="progress"):
        kmsnb.encrypt_file(source, tmp_path / "c.kms", key_id, kms=kms, progress=1)  # type: ignore[arg-type]
    assert not (tmp_path / "c.kms").exists()
