"""The CLI's conventions (issue 12): ``--version``, ``-k``/``-c``, ``-o DIR/`` as ``cp``
does it, sizes people read, KMS errors that name the key and the KMS; and (issue 11)
``key create --alias`` checking the alias before it creates anything."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from kmsnb._render import format_size_brief
from kmsnb.cli import main
from kmsnb.kms._base import KmsClient

from .conftest import Run

pytestmark = pytest.mark.unit

PLAINTEXT = os.urandom(3 * 1024 * 1024 + 5)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "report.csv"
    path.write_bytes(PLAINTEXT)
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from kmsnb._version import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"kmsnb {__version__}\n"


def test_short_key_and_context_options(run: Run, plain: Path, tmp_path: Path, key_id: str) -> None:
    encrypted = tmp_path / "x.kms"
    made = run("encrypt", str(plain), "-o", str(encrypted), "-k", key_id, "-c", "team=apollo")
    assert made.status == 0, made.err
    fields = json.loads(run("inspect", "--json", str(encrypted)).out)
    assert (key_id, {"team": "apollo"}) == (fields["key_id"], fields["encryption_context"])
    wrong = run("decrypt", str(encrypted), "-o", str(tmp_path / "w"), "-c", "team=other")
    assert wrong.status == 1
    back = run("decrypt", str(encrypted), "-o", str(tmp_path / "b"), "-c", "team=apollo")
    assert (back.status, (tmp_path / "b").read_bytes()) == (0, PLAINTEXT)


@pytest.mark.parametrize("existing", [True, False], ids=["existing-dir", "trailing-slash"])
def test_output_directory_keeps_the_name(
    run: Run, plain: Path, tmp_path: Path, key_id: str, existing: bool
) -> None:
    """``-o DIR`` (existing) or ``-o DIR/``: NAME.kms on encrypt, NAME on decrypt."""
    vault, back = tmp_path / "vault", tmp_path / "back"
    vault.mkdir()
    back.mkdir()
    into_vault = str(vault) if existing else f"{vault}/"
    into_back = str(back) if existing else f"{back}/"
    assert run("encrypt", str(plain), "-o", into_vault, "-k", key_id).status == 0
    assert os.listdir(vault) == ["report.csv.kms"]
    result = run("decrypt", str(vault / "report.csv.kms"), "-o", into_back)
    assert result.status == 0, result.err
    assert (back / "report.csv").read_bytes() == PLAINTEXT
    assert f"-> {back / 'report.csv'} " in result.out


def test_output_directory_needs_a_name_to_keep(
    run: Run, plain: Path, tmp_path: Path, key_id: str
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    odd = tmp_path / "odd.bin"
    assert run("encrypt", str(plain), "-o", str(odd), "-k", key_id).status == 0
    result = run("decrypt", str(odd), "-o", f"{folder}/")
    assert result.status == 1
    assert "does not end in .kms" in result.err
    assert f"-o {folder / 'NAME'}" in result.err
    assert os.listdir(folder) == []


def test_output_directory_that_does_not_exist_is_an_error(
    run: Run, plain: Path, tmp_path: Path, key_id: str
) -> None:
    """``-o missing/`` fails as ``cp`` does; it never writes a file named ``missing``."""
    missing = tmp_path / "missing"
    result = run("encrypt", str(plain), "-o", f"{missing}/", "-k", key_id)
    assert result.status == 1
    assert "No such file or directory" in result.err
    assert not missing.exists()


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"), (1024, "1.0 KiB"),
     (1536, "1.5 KiB"), (1073741824, "1.0 GiB"), (5 * 1024**5, "5.0 PiB")],
)  # fmt: skip
def test_format_size(size: int, shown: str) -> None:
    """The CLI's messages use the notebook's size rule (kmsnb._render), brief form."""
    assert shown == format_size_brief(size)


def test_sizes_are_readable(run: Run, plain: Path, tmp_path: Path, key_id: str) -> None:
    encrypted = tmp_path / "x.kms"
    made = run("encrypt", str(plain), "-o", str(encrypted), "-k", key_id)
    assert f"(3.0 MiB, master key {key_id})" in made.out
    human = run("inspect", str(encrypted)).out
    assert f"3.0 MiB ({len(PLAINTEXT)} bytes)" in human
    assert json.loads(run("inspect", "--json", str(encrypted)).out)["plaintext_size"] == len(
        PLAINTEXT
    )  # JSON keeps the number
    assert "(3.0 MiB)" in run("decrypt", str(encrypted), "-o", str(tmp_path / "b")).out


def test_kms_error_names_the_key_the_kms_and_what_to_try(
    run: Run, plain: Path, tmp_path: Path, key_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file made with one KMS, decrypted with another (issue 12), and a missing key."""
    encrypted = tmp_path / "x.kms"
    assert run("encrypt", str(plain), "-o", str(encrypted), "-k", key_id).status == 0
    other = tmp_path / "other-kms"
    status = main(["--kms", f"local:{other}", "decrypt", str(encrypted), "-o", str(tmp_path / "o")])
    note, error, hint = capsys.readouterr().err.splitlines()
    assert status == 1
    # The mistyped --kms made a keystore; said first, once (issue 12).
    assert note == (
        f"kmsnb: note: a new keystore at {other}: no keys yet "
        "(a mistyped local: path makes one too)"
    )
    assert error.startswith("kmsnb: error: ")
    assert f"'{key_id}' in local emulator at {other}" in error
    assert hint.startswith("kmsnb: hint: ")
    assert "--kms" in hint
    assert "KMSNB_KMS" in hint
    assert not (tmp_path / "o").exists()
    missing = run("encrypt", str(plain), "-o", str(tmp_path / "y.kms"), "-k", "alias/nowhere")
    assert missing.status == 1
    assert "'alias/nowhere' in local emulator at " in missing.err
    assert "--kms" in missing.err


def test_key_create_checks_the_alias_first(run: Run, kms: KmsClient, key_id: str) -> None:
    """``alias/sales`` taken: exit 1 and no new key (an orphan CMK is billed on Alibaba)."""
    kms.create_alias("alias/sales", key_id)
    before = {key.key_id for key in kms.list_keys()}
    for alias in ("sales", "alias/sales"):
        result = run("key", "create", "--alias", alias)
        assert result.status == 1
        assert "alias/sales exists in local emulator at " in result.err
        assert f"points to key {key_id}; no key was created" in result.err
        # The advice in the CLI's words, not the Python call the library's message names.
        assert "kmsnb: hint: choose another alias, or move this one with kmsnb alias " in result.err
        assert "kmsnb alias update alias/sales KEY" in result.err
        assert "point_alias" not in result.err
        assert result.out == ""
    assert before == {key.key_id for key in kms.list_keys()}
    made = run("key", "create", "--alias", "fresh")
    assert made.status == 0
    assert {made.out.strip()} == {key.key_id for key in kms.list_keys()} - before


def _command_paths() -> list[list[str]]:
    """Every ``kmsnb GROUP COMMAND`` path, found through the lazy subparsers."""
    from kmsnb.cli import build_parser
    from kmsnb.cli._parser import LazyCommands

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
        found = [path]
        for action in parser._actions:
            if isinstance(action, LazyCommands):
                for name in list(action.choices or ()):
                    found += walk(action.parser_for(name), [*path, name])
        return found

    return walk(build_parser(), [])


def test_every_command_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Each parser is built only when chosen; every one of them still builds and helps."""
    paths = _command_paths()
    assert ["key", "create"] in paths
    assert ["emulator", "serve"] in paths
    assert len(paths) > 30
    for path in paths:
        assert main([*path, "--help"]) == 0, path
        assert capsys.readouterr().out.startswith(f"usage: {' '.join(['kmsnb', *path])} ")


def test_a_bare_key_name_is_an_alias(run: Run, plain: Path, tmp_path: Path, key_id: str) -> None:
    """Issue 11: ``--key sales`` means ``alias/sales`` in every command that names a key."""
    assert run("alias", "create", "sales", key_id).status == 0
    encrypted = tmp_path / "x.kms"
    made = run("encrypt", str(plain), "-o", str(encrypted), "--key", "sales")
    assert (made.status, f"master key {key_id}" in made.out) == (0, True), made.err
    assert run("key", "describe", "sales").out.startswith("key_id:")
    assert key_id in run("key", "describe", "sales").out
    allowed = run("decrypt", str(encrypted), "-o", str(tmp_path / "b"), "--allowed-key", "sales")
    assert allowed.status == 0, allowed.err
    missing = run("key", "describe", "nowhere")
    assert (missing.status, "master key alias/nowhere" in missing.err) == (1, True)


def test_a_new_keystore_is_said_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--kms local:/typo`` used to make an empty keystore silently (issue 12)."""
    typo = tmp_path / "kesytore"
    assert main(["--kms", f"local:{typo}", "key", "list"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"kmsnb: note: a new keystore at {typo}: no keys yet "
        "(a mistyped local: path makes one too)\n"
    )
    assert "NewKeystoreWarning" not in captured.out + captured.err  # not Python's display
    assert main(["--kms", f"local:{typo}", "key", "list"]) == 0
    assert capsys.readouterr().err == ""
