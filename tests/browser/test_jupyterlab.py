"""The tutorials and the widgets in JupyterLab, in headless Chromium, as users meet them.

Under Binder's set-up (``binder/postBuild`` preloading kmsnb, ``binder/start`` serving the
emulator): each tutorial runs all its cells in a fresh kernel, again in the same kernel,
and again after a kernel restart, with no error output but in the cells tagged
``raises-exception``; KeyPicker and EncryptPanel are clicked and their effect checked (the
default key changes, the file appears, refuses to be overwritten, then is); when the server
stops, so does the emulator, and its keystore was never used. Under a plain
``jupyter lab``, each tutorial runs once more. A screenshot of every run goes to
``tests/browser/out/``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import open_lab
from .lab import REPO, Lab, LabServer, problems

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TUTORIALS = sorted(path.name for path in (REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def lab(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Lab]:
    server: LabServer = request.getfixturevalue(request.param)
    page = open_lab(browser_context, server)
    yield page
    assert page.page_errors == [], "uncaught errors in the page"
    page.page.close()


def _load_output(cells: list[dict[str, Any]]) -> str:
    cell = next(cell for cell in cells if cell["source"].startswith("%load_ext kmsnb"))
    return "".join(out.get("text", "") for out in cell["outputs"])


@pytest.mark.parametrize("lab", ["binder_server"], indirect=True)
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_under_binder_three_runs(lab: Lab, name: str) -> None:
    lab.open(name)
    stem = Path(name).stem
    for run, restart_first in ((1, False), (2, False), (3, True)):
        if restart_first:
            lab.restart()  # a fresh kernel of the same environment
        cells = lab.run_all()
        lab.screenshot(f"binder-{stem}-run{run}")
        assert problems(cells) == [], f"run {run}"
        loaded = _load_output(cells)
        # Preloaded: %load_ext did nothing, %config switched to the notebook's keystore.
        assert "The kmsnb extension is already loaded" in loaded, f"run {run}"
        assert loaded.count("kmsnb: local emulator at /") == 1, f"run {run}: {loaded}"
    lab.close()


WIDGETS = """\
import os
os.environ["KMSNB_KMS"] = "local:{store}"
os.chdir("{work}")
---
%load_ext kmsnb
%config Kmsnb.kms = os.environ["KMSNB_KMS"]
%kms create-key --alias first ;
%kms create-key --alias second ;
%kms use alias/first ;
---
import kmsnb.widgets
kmsnb.widgets.KeyPicker()
---
import pandas as pd
df = pd.DataFrame({{"region": ["north", "south"], "revenue": [120.5, 98.0]}})
kmsnb.widgets.EncryptPanel(df, path="picked.parquet.kms")
---
print(kmsnb.session.get_default_key())
"""
PICKER, PANEL, DEFAULT_KEY = 2, 3, 4


def _widget_notebook(path: Path, store: Path, work: Path) -> None:
    sources = WIDGETS.format(store=store, work=work).split("---\n")
    cells = [nbformat.v4.new_code_cell(source.strip()) for source in sources]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


def _choose(lab: Lab, cell: int, label: str, prefix: str) -> None:
    """Pick, in the dropdown labelled ``label`` of cell ``cell``, the option ``prefix...``."""
    dropdown = lab.page.locator(".jp-Notebook .jp-Cell").nth(cell)
    select = dropdown.locator(".widget-dropdown", has_text=label).locator("select")
    options = select.locator("option").all_text_contents()
    (choice,) = [option for option in options if option.startswith(prefix)]
    select.select_option(label=choice)


# Whether the widest option's text fits inside the select box (less its padding, where the
# arrow is drawn), measured in the select's own font.
_LABELS_FIT_JS = """select => {
    const context = document.createElement("canvas").getContext("2d");
    const style = getComputedStyle(select);
    context.font = style.font;
    const widest = Math.max(...[...select.options].map(o => context.measureText(o.text).width));
    const room = select.clientWidth - parseFloat(style.paddingLeft)
        - parseFloat(style.paddingRight);
    return widest <= room;
}"""


def _labels_fit(lab: Lab, cell: int) -> bool:
    box = lab.page.locator(".jp-Notebook .jp-Cell").nth(cell)
    select = box.locator(".widget-dropdown", has_text="Key").locator("select")
    fits: bool = select.evaluate(_LABELS_FIT_JS)
    return fits


def _wait_for(predicate: Any, what: str) -> None:
    # A bounded number of polls (about a minute), not a clock: this waits for an effect,
    # it does not time one.
    for _ in range(600):
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen (polled for about a minute)")


@pytest.mark.parametrize("lab", ["binder_server"], indirect=True)
def test_key_picker_and_encrypt_panel(lab: Lab, tmp_path: Path) -> None:
    from kmsnb import read_parquet
    from kmsnb.envelope import inspect
    from kmsnb.kms.local import LocalKms

    store, work = tmp_path / "keys", tmp_path / "work"
    work.mkdir()
    _widget_notebook(lab.server.root / "widgets.ipynb", store, work)
    lab.open("widgets.ipynb")
    cells = lab.run_all()
    assert problems(cells) == []
    assert cells[DEFAULT_KEY]["outputs"][0]["text"] == "alias/first\n"

    # KeyPicker: no label is cut (the dropdown is as wide as its longest option)...
    for cell in (PICKER, PANEL):
        assert _labels_fit(lab, cell), f"cell {cell}: a key label is cut"
    # ...and choosing a key makes it the session's default key.
    _choose(lab, PICKER, "Key", "alias/second")
    # The choice reaches the kernel over the widget's comm, ahead of the next execution.
    _wait_for(
        lambda: lab.run_cell(DEFAULT_KEY)["outputs"][0]["text"] == "alias/second\n",
        "the default key to change",
    )
    lab.screenshot("widgets-key-picker")

    # EncryptPanel: the file appears under the chosen key, and decrypts to the DataFrame.
    panel = lab.page.locator(".jp-Notebook .jp-Cell").nth(PANEL)
    _choose(lab, PANEL, "Key", "alias/second")
    panel.locator("button", has_text="Encrypt").click()
    written = work / "picked.parquet.kms"
    _wait_for(written.exists, "the encrypted file")
    output = panel.locator(".widget-output")
    output.get_by_text("picked.parquet.kms").first.wait_for()
    lab.screenshot("widgets-encrypt-panel")
    with LocalKms(store) as kms:
        second = kms.describe_key("alias/second").key_id
        assert inspect(written).key_id == second
        frame = read_parquet(written, kms=kms)
    assert frame.to_dict("list") == {"region": ["north", "south"], "revenue": [120.5, 98.0]}

    # Again: refused (the file exists), said in one line in the panel; with Overwrite, done.
    first = written.read_bytes()
    panel.locator("button", has_text="Encrypt").click()
    output.get_by_text("not encrypted:").wait_for()
    assert "exists" in output.inner_text()
    assert written.read_bytes() == first
    panel.locator(".widget-checkbox input[type=checkbox]").check()
    panel.locator("button", has_text="Encrypt").click()
    # A fresh data key and nonce: other bytes for the same DataFrame.
    _wait_for(lambda: written.read_bytes() != first, "the file to be replaced")
    output.get_by_text("picked.parquet.kms").first.wait_for()
    lab.screenshot("widgets-encrypt-panel-overwrite")
    lab.close()


def _emulator_pid(home: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
                if b"serve" in arguments and str(home).encode() in b" ".join(arguments):
                    return int(entry.name)
    raise AssertionError("no emulator process")


def test_binder_keystore_unused_and_emulator_stopped_with_the_server(
    binder_server: LabServer,
) -> None:
    """Last of the Binder tests: stop the server, as the end of a Binder session does."""
    from kmsnb.kms.local import LocalKms

    emulator = _emulator_pid(binder_server.home)
    assert binder_server.stop() == 0
    _wait_for(lambda: not Path(f"/proc/{emulator}").exists(), "the emulator to stop")
    log = binder_server.home / ".kmsnb-emulator" / "serve.log"
    assert log.read_text().rstrip().endswith("kmsnb emulator stopped")
    with LocalKms(binder_server.home / ".kmsnb-emulator" / "keys") as kms:
        assert kms.list_keys() == []  # every tutorial used a keystore of its own


@pytest.mark.parametrize("lab", ["plain_server"], indirect=True)
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_under_plain_jupyter_lab(lab: Lab, name: str) -> None:
    lab.open(name)
    cells = lab.run_all()
    lab.screenshot(f"plain-{Path(name).stem}")
    assert problems(cells) == []
    loaded = _load_output(cells)
    assert "already loaded" not in loaded
    assert loaded.count("kmsnb: local emulator at /") == 1, loaded
    lab.close()
