"""``--help`` for every magic and ``%kms`` subcommand, ``%kms help``, and tab completion
(subcommands, options, key names from the session's KMS, paths) through IPython's own
completer."""

from __future__ import annotations

import warnings

import pytest
from IPython.core.completer import provisionalcompleter

from kmsnb import session
from kmsnb.ipython import _completion
from kmsnb.ipython.kms_magic import SUBCOMMANDS

pytestmark = pytest.mark.notebook


def completions(shell, line):
    """What Tab offers at the end of ``line``: [(replaced text, completion)]."""
    with provisionalcompleter():
        found = list(shell.Completer.completions(line, len(line)))
    return [(line[item.start : item.end], item.text) for item in found]


def texts(shell, line):
    return [text for _, text in completions(shell, line)]


@pytest.mark.parametrize("line", ["--help", "-h", "help"])
def test_kms_help_lists_every_subcommand(shell, capsys, line):
    assert shell.run(f"%kms {line}") is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %kms")
    for name in SUBCOMMANDS:
        assert name in out
    assert "a bare NAME means alias/NAME" in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_answers_help(shell, capsys, name):
    assert shell.run(f"%kms {name} --help") is None
    out = capsys.readouterr().out
    assert out.startswith(f"usage: %kms {name}")
    assert SUBCOMMANDS[name] in " ".join(out.split())
    if name != "help":
        shell.run(f"%kms help {name}")
        assert capsys.readouterr().out == out


def test_help_wins_over_missing_arguments_and_runs_nothing(shell, capsys, local_kms):
    before = len(local_kms.list_keys())
    assert shell.run("%kms schedule-deletion --help") is None  # KEY and --days missing
    assert "--days" in capsys.readouterr().out
    shell.run("%kms create-key --alias new --help")
    assert len(local_kms.list_keys()) == before


@pytest.mark.parametrize("magic", ["%encrypt", "%decrypt"])
def test_file_magics_answer_help(shell, capsys, magic):
    assert shell.run(f"{magic} --help") is None
    out = capsys.readouterr().out
    assert "usage:" in out
    assert "--context" in out


def test_deprecated_output_path_still_writes_and_warns(shell, key, tmp_path):
    shell.user_ns["blob"] = b"abc"
    with pytest.warns(FutureWarning, match="%encrypt VAR PATH") as record:
        receipt = shell.run(f"%encrypt blob -o {tmp_path / 'old.kms'}")
    # Attributed to the user's cell, not to kmsnb or IPython.
    assert record[0].filename.startswith("<ipython-input-"), record[0].filename
    assert receipt.path == str(tmp_path / "old.kms")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run(f"%encrypt blob --to {tmp_path / 'new.kms'}")
    assert shell.run(f"%decrypt {tmp_path / 'new.kms'}") == b"abc"


def test_completion_of_subcommands_and_options(shell):
    assert texts(shell, "%kms de") == ["describe"]
    assert set(texts(shell, "%kms ")) == set(SUBCOMMANDS)
    assert "--days" in texts(shell, "%kms schedule-deletion k --")
    assert texts(shell, "%kms help rew") == ["rewrap"]


def test_completion_of_key_names_offers_no_other_magic(shell, key, local_kms):
    local_kms.create_alias("alias/sales", local_kms.create_key().key_id)
    found = completions(shell, "%kms use al")
    assert ("al", "alias/sales") in found
    assert ("al", "alias/test") in found
    assert not [text for _, text in found if text.startswith("%")]  # no %alias
    # A "/" ends IPython's token; the whole word is replaced all the same.
    assert completions(shell, "%kms describe alias/sa") == [("alias/sa", "alias/sales")]
    assert texts(shell, "%kms disable sa") == ["sales"]
    assert "alias/sales" in texts(shell, "%encrypt df out.kms -k alias/s")
    assert "alias/sales" in texts(shell, "%%encrypt out.kms --key alias/s")


def test_key_names_are_cached_for_a_few_seconds(shell, key, monkeypatch):
    client = session.get_kms()
    calls = []
    original = client.list_aliases

    def counting(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(client, "list_aliases", counting)
    texts(shell, "%kms use al")
    texts(shell, "%kms use ali")
    assert len(calls) == 1
    monkeypatch.setattr(_completion, "KEY_NAMES_MAX_AGE", 0.0)
    texts(shell, "%kms use alias/t")
    assert len(calls) == 2


def test_a_kms_that_fails_gives_no_key_names_and_no_error(shell, monkeypatch):
    client = session.get_kms()

    def unreachable(*args):
        from kmsnb.errors import KmsUnavailableError

        raise KmsUnavailableError("could not reach the KMS")

    monkeypatch.setattr(client, "list_aliases", unreachable)
    assert _completion.key_names() == []
    # Nothing of kmsnb's to offer, and nothing of IPython's either (no %alias): the line is
    # kmsnb's (issue 12).
    assert not [text for text in texts(shell, "%kms use al") if text.startswith("alias/")]
    assert texts(shell, "%kms use al") == []


def test_completion_of_paths_and_variables(shell, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.parquet.kms").write_bytes(b"")
    (tmp_path / "data" / "notes.txt").write_bytes(b"")
    folder = f"{tmp_path}/da"
    assert texts(shell, f"%kms inspect {folder}") == [f"{tmp_path}/data/"]
    assert texts(shell, f"%decrypt {tmp_path}/data/s") == [f"{tmp_path}/data/sales.parquet.kms"]
    assert texts(shell, f"%kms rewrap {tmp_path}/data/n") == [f"{tmp_path}/data/notes.txt"]
    shell.user_ns["frame_one"] = b""
    assert texts(shell, "%encrypt frame_") == ["frame_one"]
    assert texts(shell, f"%encrypt frame_one {tmp_path}/data/s") == [
        f"{tmp_path}/data/sales.parquet.kms"
    ]
    assert texts(shell, "%encrypt frame_one x --format c") == ["csv"]


@pytest.mark.parametrize(
    "line",
    ["%kms use zz", "%kms describe zz", "%kms zz", "%kms rotate --zz", "%encrypt zz",
     "%encrypt zz_value out.kms -k zz", "%%encrypt out.kms --format zz", "%decrypt zz",
     "%kms inspect zz"],
)  # fmt: skip
def test_a_kmsnb_line_with_nothing_to_offer_gets_nothing_from_ipython(
    shell, tmp_path, monkeypatch, line
):
    """kmsnb owns its magics' lines (issue 12): no magic, Python name or file of IPython's
    where kmsnb has no candidate, though each of those starts with ``zz``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zz_file.txt").write_bytes(b"")
    shell.user_ns["zz_value"] = 1
    shell.register_magic_function(lambda line: None, magic_name="zzmagic")
    assert "zz_value" in texts(shell, "zz")  # what IPython itself would offer
    assert "%zzmagic" in texts(shell, "%zz")
    # Where kmsnb completes paths or variables, its own candidates, and nothing else.
    own = {"%encrypt zz": ["zz_value"], "%decrypt zz": ["zz_file.txt"]}
    own["%kms inspect zz"] = own["%decrypt zz"]
    assert texts(shell, line) == own.get(line, [])


def test_a_path_kmsnb_cannot_read_is_left_to_ipythons_file_completion(shell, tmp_path):
    """Where kmsnb completes paths and finds none (a quoted path), IPython's file matcher
    still answers, and nothing else of IPython's does."""
    (tmp_path / "data").mkdir()
    shell.user_ns["data_value"] = 1
    offered = texts(shell, f'%decrypt "{tmp_path}/da')
    assert offered
    assert all(f"{tmp_path}/data" in text for text in offered), offered


def test_other_lines_are_left_to_ipython(shell):
    shell.user_ns["kms_value"] = 1
    assert "kms_value" in texts(shell, "kms_v")
    assert _completion.complete_magic_line("print(1)") is None
