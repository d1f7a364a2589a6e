"""Fixtures of the browser test: Chromium through Playwright, JupyterLab servers.

``make test-browser`` runs this folder (``make test`` does not collect it: see
``[tool.pytest.ini_options]``). Nothing here skips: without Chromium or Playwright the
tests fail, saying what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab import CHROMIUM_ARGS, Lab, LabServer, copy_notebooks

#: Screenshots, one per notebook run (ignored by git).
SHOTS = Path(__file__).resolve().parent / "out"
CHROMIUM = os.environ.get("KMSNB_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile; never a browser of Playwright's."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: run tests/browser/ensure-chromium"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # the fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1600},
        )
        yield context
        context.close()


def _server(tmp_path_factory: pytest.TempPathFactory, *, binder: bool) -> Iterator[LabServer]:
    name = "binder" if binder else "plain"
    server = LabServer(
        root=tmp_path_factory.mktemp(f"{name}-root"),
        home=tmp_path_factory.mktemp(f"{name}-home"),
        binder=binder,
    )
    copy_notebooks(server.root)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.kill_leftovers()


@pytest.fixture(scope="module")
def binder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab the way Binder runs it: postBuild's profile, binder/start's emulator."""
    yield from _server(tmp_path_factory, binder=True)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A plain ``jupyter lab``: no preloaded extension, no KMSNB_KMS."""
    yield from _server(tmp_path_factory, binder=False)


def open_lab(context: Any, server: LabServer) -> Lab:
    return Lab(context.new_page(), server, SHOTS)
