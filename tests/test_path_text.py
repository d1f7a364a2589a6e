"""kmsnb._path_text: local paths as strings spelled exactly as ``str(pathlib.Path(...))``
spells them, and the ``TypeError`` a Path gives for what is no ``str`` path."""

from __future__ import annotations

import itertools
import os
from pathlib import Path, PurePosixPath

import pytest

from kmsnb._path_text import anchored, as_path_text, spelled_as_a_path

pytestmark = pytest.mark.unit

#: Pieces that exercise every rule: roots of one, two and three slashes, empty and "."
#: parts, "..", trailing slashes, names that start or end with a dot.
PARTS = ["", "/", "//", ".", "..", "a", "~", "./", ".a", "a."]


def test_every_combination_is_spelled_as_a_path_spells_it() -> None:
    grid = sorted({"".join(pieces) for pieces in itertools.product(PARTS, repeat=4)})
    assert len(grid) > 4000
    assert {p: str(PurePosixPath(p)) for p in grid} == {p: spelled_as_a_path(p) for p in grid}


def test_path_like_objects_are_taken_and_others_refused_as_a_path_refuses_them() -> None:
    assert as_path_text(Path("a//b/")) == "a/b"
    assert as_path_text("x/./y") == "x/y"
    for refused in (b"bytes", 3):
        with pytest.raises(TypeError) as ours:
            as_path_text(refused)  # type: ignore[arg-type]
        with pytest.raises(TypeError) as theirs:
            Path(refused)  # type: ignore[arg-type]
        assert type(refused).__name__ in str(ours.value)
        assert type(ours.value) is type(theirs.value)


def test_anchored_joins_the_current_folder_and_leaves_dotdot_to_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "via").symlink_to("real/inner")
    monkeypatch.chdir(tmp_path)
    here = os.getcwd()  # tmp_path as the kernel spells it (a linked /tmp resolved)
    assert anchored("out.bin") == f"{here}/out.bin"
    assert anchored("/elsewhere/out.bin") == "/elsewhere/out.bin"
    # Not normalised: via/.. is real/, where the kernel (and realpath) take it.
    assert anchored("via/../x") == f"{here}/via/../x"
    (tmp_path / "via" / ".." / "x").write_bytes(b"")
    assert (tmp_path / "real" / "x").exists()
