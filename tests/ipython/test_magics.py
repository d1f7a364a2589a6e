"""The IPython extension through a real InteractiveShell: loading, settings, the magics,
their displays and errors; and what the magics added to the library: rewrap and the
progress helper."""

from __future__ import annotations

import io
import os

import pandas as pd
import pytest
from traitlets.config import Config

from kmsnb import Saved, _progress, decrypt_bytes, encrypt_bytes, inspect, session
from kmsnb.errors import ContextMismatchError, IntegrityError, KmsAccessDeniedError
from kmsnb.ipython._display import Table
from kmsnb.keys import KeyRecord
from kmsnb.kms.caching import CachingKms
from kmsnb.rewrap import rewrap_file

pytestmark = pytest.mark.notebook


@pytest.fixture
def frame(shell, key):
    """``df`` (3 rows x 2 columns) defined in the shell, with pandas as ``pd``."""
    shell.run("import pandas as pd")
    shell.run("df = pd.DataFrame({'name': ['ann', 'bob', 'cy'], 'score': [1.5, 2.5, 3.5]})")
    return shell.user_ns["df"]


# -- loading and settings ---------------------------------------------------------------

#: What the load line adds when opening a local: KMS made its keystore.
NEW = " (a new keystore: no keys yet)"


def test_a_new_keystore_is_said_once_when_it_is_made(shell, keystore, tmp_path, capsys):
    typo = tmp_path / "typo"
    shell.run(f"%config Kmsnb.kms = 'local:{typo}'")
    shown = capsys.readouterr()
    assert shown.out == (
        f"kmsnb: local emulator at {typo}{NEW}; default key none (set one with %kms use KEY)\n"
    )
    assert "NewKeystoreWarning" not in shown.err  # said on the load line only
    shell.run(f"%config Kmsnb.kms = 'local:{keystore}'")  # made when the test loaded kmsnb
    assert NEW not in capsys.readouterr().out
    shell.run("%config Kmsnb.kms = 'aliyun:cn-hangzhou'")  # not a local keystore
    assert "new keystore" not in capsys.readouterr().out


def test_load_ext_registers_everything_and_prints_one_line(bare_shell, keystore, capsys):
    bare_shell.run("%load_ext kmsnb")

    expected = (
        f"kmsnb: local emulator at {keystore}{NEW}; default key none (set one with %kms use KEY)\n"
    )
    assert expected == capsys.readouterr().out
    magics = bare_shell.magics_manager.magics
    assert {"kms", "encrypt", "decrypt"} <= set(magics["line"])
    assert "encrypt" in magics["cell"]
    assert hasattr(pd.DataFrame, "kms")
    kms = session.get_kms()
    assert isinstance(kms, CachingKms)
    assert (kms.max_age, kms.max_messages) == (300.0, 1000)


def test_ipython_config_sets_kms_default_key_cache_and_progress(make_shell, tmp_path, capsys):
    """c.Kmsnb.* in ipython_config.py wins over $KMSNB_KMS."""
    config = Config()
    config.Kmsnb.kms = f"local:{tmp_path / 'configured'}"
    config.Kmsnb.default_key = "alias/configured"
    config.Kmsnb.cache_max_age = 60.0
    config.Kmsnb.cache_max_messages = 5
    config.Kmsnb.progress_threshold = 1024
    shell = make_shell(config)

    shell.run("%load_ext kmsnb")

    assert capsys.readouterr().out == (
        f"kmsnb: local emulator at {tmp_path / 'configured'}{NEW}; default key alias/configured\n"
    )
    kms = session.get_kms()
    assert isinstance(kms, CachingKms)
    assert (kms.max_age, kms.max_messages) == (60.0, 5)
    assert session.get_default_key() == "alias/configured"
    assert _progress.get_progress_threshold() == 1024


def test_config_magic_reconnects_and_sets_the_default_key(shell, tmp_path, capsys):
    shell.run(f"%config Kmsnb.kms = 'local:{tmp_path / 'other'}'")
    assert capsys.readouterr().out.startswith(f"kmsnb: local emulator at {tmp_path / 'other'}")

    shell.run("%config Kmsnb.cache_max_age = 0")
    assert not isinstance(session.get_kms(), CachingKms)  # 0 turns the cache off

    shell.run("%config Kmsnb.default_key = 'alias/x'")
    assert session.get_default_key() == "alias/x"


def test_a_bad_kms_uri_is_reported_and_can_be_fixed(bare_shell, monkeypatch, keystore, capsys):
    monkeypatch.setenv("KMSNB_KMS", "nonsense:thing")
    bare_shell.run("%load_ext kmsnb")
    captured = capsys.readouterr()
    assert captured.err.startswith("kmsnb: could not open the KMS: unrecognized KMS URI")
    assert captured.err.count("\n") == 1

    bare_shell.run(f"%config Kmsnb.kms = 'local:{keystore}'")
    assert "local emulator" in capsys.readouterr().out


def test_an_impossible_limit_is_refused(shell, caplog):
    shell.run("%config Kmsnb.cache_max_messages = 0")  # %config logs errors, never raises
    assert "Kmsnb.cache_max_messages must be > 0" in caplog.text
    assert session.get_kms().max_messages == 1000


def test_reload_and_unload(shell, capsys):
    shell.run("%reload_ext kmsnb")
    assert capsys.readouterr().out.startswith("kmsnb: local emulator")
    assert [type(c).__name__ for c in shell.configurables].count("Kmsnb") == 1

    shell.run("%unload_ext kmsnb")
    assert "kms" not in shell.magics_manager.magics["line"]
    assert "encrypt" not in shell.magics_manager.magics["cell"]
    assert session.get_default_key() is None


# -- %kms ---------------------------------------------------------------------------------


def test_kms_help_lists_every_subcommand(shell, capsys):
    shell.run("%kms?")
    help_text = capsys.readouterr().out
    for command in (
        "status", "keys", "aliases", "create-key", "alias NAME KEY", "use KEY", "describe",
        "enable", "disable", "rotate", "schedule-deletion KEY --days N", "cancel-deletion",
        "inspect PATH", "rewrap PATH --key NEW",
    ):  # fmt: skip
        assert command in help_text


def test_key_lifecycle_through_the_magics(shell, local_kms):
    created = shell.run("%kms create-key --alias team --description 'Team data'")
    assert isinstance(created, KeyRecord)  # kmsnb.keys' record, shown as a table
    key_id = created.key_id
    assert created.description == "Team data"  # quotes group words, and are removed
    assert [a.alias_name for a in local_kms.list_aliases(key_id)] == ["alias/team"]

    keys = shell.run("%kms keys")
    assert isinstance(keys, Table)
    assert [info.key_id for info in keys] == [key_id]
    assert "alias/team" in str(keys)
    assert "<table" in keys._repr_html_()

    shell.run("%kms use alias/team")
    assert session.get_default_key() == "alias/team"
    assert "*" in str(shell.run("%kms keys"))

    other = shell.run("%kms create-key").key_id
    shell.run(f"%kms alias team {other}")  # moves the alias
    assert shell.run("%kms aliases")[0].key_id == other

    assert shell.run(f"%kms disable {key_id}").state == "Disabled"
    assert shell.run(f"%kms enable {key_id}").state == "Enabled"
    rotated = shell.run(f"%kms rotate {key_id}")
    assert rotated.key_version_id == local_kms.describe_key(key_id).primary_key_version
    assert len(shell.run(f"%kms describe {key_id}").versions) == 2
    assert shell.run(f"%kms schedule-deletion {key_id} --days 7").state == "PendingDeletion"
    assert shell.run(f"%kms cancel-deletion {key_id}").state in ("Enabled", "Disabled")


def test_status_and_silencing(shell, key, keystore, capsys):
    status = shell.run("%kms")
    assert status.value["default key"] == "alias/test"
    assert str(keystore) in str(status)

    capsys.readouterr()
    shell.run("%kms keys;")
    assert capsys.readouterr().out == ""


def test_kms_errors_are_one_line_headed_by_their_class(shell, capsys):
    shell.one_line_error(
        "%kms describe alias/missing", "hint:", "%kms keys", head="KmsAccessDeniedError"
    )
    shell.one_line_error("%kms frobnicate", "invalid choice", head="UsageError")
    shell.one_line_error("%kms schedule-deletion k", "--days", head="UsageError")
    shell.one_line_error("%kms inspect /no/such/file", "check the path", head="FileNotFoundError")
    shell.one_line_error("%kms create-key --description 'open", "quotation", head="UsageError")

    capsys.readouterr()
    result = shell.run_cell("%kms describe alias/missing")  # what a user sees: one line
    out = capsys.readouterr().out
    assert out.startswith("KmsAccessDeniedError: ")
    assert out.count("\n") == 1
    assert "Traceback" not in out
    # The error keeps its class and its frames, for code that catches it.
    assert isinstance(result.error_in_exec, KmsAccessDeniedError)
    assert result.error_in_exec.__traceback__ is not None


def test_short_errors_false_shows_the_full_traceback(shell):
    shell.run("%config Kmsnb.short_errors = False")
    shown = shell.shown("%kms describe alias/missing")
    assert "Traceback" in shown
    assert "kms_magic.py" in shown  # kmsnb's frames, for a bug report
    assert "KmsAccessDeniedError" in shown
    shell.run("%config Kmsnb.short_errors = True")
    shell.one_line_error("%kms describe alias/missing", head="KmsAccessDeniedError")


def test_an_error_in_a_cell_body_shows_the_users_frames_and_lines(shell, key, tmp_path):
    """The traceback names the cell's number and line as the user sees them, and has no
    kmsnb frame; ``Cell In[N]`` is the number of the cell that ran."""
    shell.run("1")  # so that the cell numbers are not all 1
    number = shell.execution_count
    shown = shell.shown(
        f"%%encrypt {tmp_path / 'never.kms'}\n\nx = 1\nvalue = 1 / x.missing\nvalue\n"
    )
    assert "AttributeError" in shown
    assert f"Cell In[{number}], line 4" in shown
    assert "value = 1 / x.missing" in shown
    assert "kmsnb" not in shown.replace(str(tmp_path), "")
    assert "run_cell_magic" not in shown
    assert not (tmp_path / "never.kms").exists()


def test_create_key_refuses_a_taken_alias_before_creating(shell, key, local_kms):
    before = len(local_kms.list_keys())
    shown = shell.one_line_error(
        "%kms create-key --alias test",
        "exists",
        "(hint: choose another alias, or move this one with %kms alias alias/test KEY)",
        head="AliasExistsError",
    )
    assert "point_alias" not in shown  # the magic's words, not the Python call
    assert len(local_kms.list_keys()) == before


def test_inspect_and_rewrap(shell, key, local_kms, tmp_path):
    path = tmp_path / "data.kms"
    shell.user_ns["blob"] = b"x" * 50_000
    shell.run(f"%encrypt blob {path} --context team=a")
    info = shell.run(f"%kms inspect {path}")
    assert info.value == inspect(path)
    assert "team=a" in str(info)

    new_key = shell.run("%kms create-key").key_id
    before = path.read_bytes()
    rewrapped = shell.run(f"%kms rewrap {path} --key {new_key} --context team=a")

    after = path.read_bytes()
    assert rewrapped.key_id == new_key == inspect(path).key_id
    old_header, new_header = inspect(io.BytesIO(before)).header_size, rewrapped.header_size
    assert before[old_header:] == after[new_header:]  # the payload is copied, not re-encrypted
    assert decrypt_bytes(after, kms=local_kms) == b"x" * 50_000
    shell.one_line_error((f"%kms rewrap {path} --key {new_key} --context team=b"), "context")


# -- %%encrypt, %encrypt, %decrypt ----------------------------------------------------------


def test_cell_encrypt_runs_the_cell_and_never_shows_the_value(shell, frame, tmp_path, capsys):
    path = tmp_path / "cell.kms"
    shell.user_ns["out"] = str(path)

    receipt = shell.run("%%encrypt {out}\nextra = df.assign(n=[1, 2, 3])\nlabel = 'x'\nextra\n")

    assert isinstance(receipt, Saved)
    assert (receipt.shape, receipt.path) == ((3, 3), str(path))
    assert receipt.key_alias == "alias/test"
    assert receipt.ciphertext_size == path.stat().st_size
    # The cell's variables exist as after an ordinary cell...
    assert shell.user_ns["label"] == "x"
    extra = shell.user_ns["extra"]
    # ...but its value was neither displayed nor kept in Out / _.
    assert all(value is not extra for value in shell.user_ns["Out"].values())
    assert shell.user_ns["_"] is receipt
    assert "ann" not in capsys.readouterr().out
    back = shell.run(f"%decrypt {path}")
    pd.testing.assert_frame_equal(back, extra)


def test_cell_encrypt_of_an_assignment_bytes_and_text(shell, key, tmp_path):
    receipt = shell.run(f"%%encrypt {tmp_path / 'b.kms'}\npayload = bytes(range(10))\n")
    assert (receipt.content, receipt.plaintext_size) == ("bytes", 10)
    assert shell.user_ns["payload"] == bytes(range(10))

    shell.run(f"%%encrypt {tmp_path / 't.kms'}\n'héllo'\n")
    assert shell.run(f"%decrypt {tmp_path / 't.kms'}") == "héllo"
    assert shell.run(f"%decrypt {tmp_path / 'b.kms'}") == bytes(range(10))


def test_cell_encrypt_errors(shell, key, tmp_path):
    path = tmp_path / "never.kms"
    # An error in the user's code is theirs: a normal exception, and no file.
    assert isinstance(shell.fails(f"%%encrypt {path}\nvalue = 1 / 0\nvalue\n"), ZeroDivisionError)
    shell.one_line_error(f"%%encrypt {path}\nfor i in []: pass\n", "end the cell")
    shell.one_line_error(f"%%encrypt x {path}\n1\n", "one PATH and no variable")
    shell.one_line_error(f"%%encrypt {path}\n[1, 2]\n", "cannot save a list", head="TypeError")
    shell.one_line_error(f"%%encrypt {tmp_path}\nb'x'\n", "is a directory")
    assert not path.exists()


def test_line_encrypt_formats_and_expansion(shell, frame, tmp_path):
    shell.user_ns["target"] = str(tmp_path / "frame.csv.kms")
    receipt = shell.run("%encrypt df {target} --format csv")
    assert receipt.content == "csv"
    back = shell.run(f"%decrypt {tmp_path / 'frame.csv.kms'} --columns name")
    assert list(back.columns) == ["name"]

    parquet = shell.run(f"%encrypt df {tmp_path / 'frame.kms'} -k alias/test --context a=1 b=2")
    assert dict(parquet.encryption_context) == {"a": "1", "b": "2"}
    assert (
        parquet.sha256
        == __import__("hashlib").sha256((tmp_path / "frame.kms").read_bytes()).hexdigest()
    )
    assert "ann" not in str(parquet) + parquet._repr_html_()
    names = shell.run(f"%decrypt {tmp_path / 'frame.kms'} --columns name --context a=1 b=2")
    assert list(names.columns) == ["name"]


def test_line_encrypt_errors(shell, frame, tmp_path):
    path = tmp_path / "e.kms"
    shell.one_line_error(f"%encrypt missing {path}", "no variable")
    shell.one_line_error("%encrypt", "needs a variable")
    shell.one_line_error("%encrypt df", "give the file to write once")
    shell.one_line_error(f"%encrypt df {path} --to {path}", "give the file to write once")
    shell.one_line_error(f"%encrypt df {path} --format bytes", "parquet or csv")
    shell.one_line_error(f"%encrypt df {path} --context nope", "KEY=VALUE")
    shell.one_line_error(f"%encrypt df {path} -k alias/nope", "hint:")
    shell.run(f"%encrypt df {path}")
    shown = shell.one_line_error(f"%encrypt df {path}", "--overwrite", head="FileExistsError")
    assert "overwrite=True" not in shown  # the magic's option, not the Python argument
    shell.run(f"%encrypt df {path} --overwrite")

    session.set_default_key(None)
    shell.one_line_error(f"%encrypt df {path} --overwrite", "%kms use KEY")


def test_line_encrypt_sees_function_locals(shell, key, tmp_path):
    shell.run(
        "def save(path):\n"
        "    local_value = b'inside'\n"
        "    return get_ipython().run_line_magic('encrypt', f'local_value {path}')\n"
    )
    assert shell.run(f"save({str(tmp_path / 'l.kms')!r}).plaintext_size") == 6


def test_decrypt_to_a_variable_returns_nothing(shell, frame, tmp_path):
    shell.run(f"%encrypt df {tmp_path / 'd.kms'} --context team=a")
    assert shell.run(f"%decrypt {tmp_path / 'd.kms'} -o loaded") is None
    pd.testing.assert_frame_equal(shell.user_ns["loaded"], frame)
    assert all(value is not shell.user_ns["loaded"] for value in shell.user_ns["Out"].values())

    shell.one_line_error(f"%decrypt {tmp_path / 'd.kms'} -o 'not a name'", "-o")
    shell.one_line_error(f"%decrypt {tmp_path / 'd.kms'} --context team=b", "hint:", "%kms inspect")
    shell.one_line_error(f"%decrypt {tmp_path / 'nothing'}", "check the path")


def test_decrypt_errors_for_damaged_and_foreign_files(shell, key, tmp_path):
    shell.user_ns["blob"] = b"abc" * 100
    path = tmp_path / "x.kms"
    shell.run(f"%encrypt blob {path}")
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    shell.one_line_error(f"%decrypt {path}", "hint:")
    (tmp_path / "plain.txt").write_text("hello")
    shell.one_line_error(f"%decrypt {tmp_path / 'plain.txt'}", "kmsnb file")
    shell.one_line_error(f"%decrypt {path} --columns a", "apply to Parquet and CSV")


# -- rewrap and progress, directly -------------------------------------------------------------


def test_rewrap_file_keeps_the_payload_and_mode_and_refuses_a_tampered_slot(local_kms, tmp_path):
    old = local_kms.create_key().key_id
    new = local_kms.create_key().key_id
    path = tmp_path / "f.kms"
    path.write_bytes(
        encrypt_bytes(b"payload" * 1000, old, kms=local_kms, encryption_context={"a": "b"})
    )
    os.chmod(path, 0o640)

    info = rewrap_file(path, new, kms=local_kms)

    assert (info.key_id, dict(info.encryption_context)) == (new, {"a": "b"})
    assert os.stat(path).st_mode & 0o777 == 0o640
    local_kms.disable_key(old)  # the file no longer needs the old key
    assert decrypt_bytes(path.read_bytes(), kms=local_kms) == b"payload" * 1000
    with pytest.raises(ContextMismatchError):
        rewrap_file(path, old, kms=local_kms, encryption_context={"a": "c"})

    tampered = bytearray(path.read_bytes())
    tampered[info.header_size - 259] ^= 1  # the slot MAC's last byte (2 + 256 reserved after it)
    path.write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError):
        rewrap_file(path, new, kms=local_kms)
    assert path.read_bytes() == bytes(tampered)  # untouched after an error


def test_progress_bar_only_above_the_threshold(capsys):
    updates = []
    with _progress.progress_bar(10, "small") as advance:
        advance(10)
        updates.append(advance)
    assert capsys.readouterr().err == ""
    with _progress.progress_bar(None, "unknown size") as advance:
        advance(5)
    assert capsys.readouterr().err == ""

    _progress.set_progress_threshold(0)
    with _progress.progress_bar(2048, "big") as advance:
        advance(2048)
    assert "big" in capsys.readouterr().err
    with pytest.raises(ValueError, match=">= 0"):
        _progress.set_progress_threshold(-1)


def test_progress_bar_without_tqdm_is_a_no_op(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tqdm.autonotebook", None)
    _progress.set_progress_threshold(0)
    with _progress.progress_bar(2048, "big") as advance:
        advance(2048)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_encrypt_and_decrypt_of_a_frame_follow_the_session_threshold(
    shell, frame, local_kms, bars, tmp_path, suffix
):
    """A frame's bars are its writer's and reader's: none under the default threshold,
    one each way, named after the file, once ``%config Kmsnb.progress_threshold = 0``."""
    path = tmp_path / f"f.{suffix}.kms"
    shell.run(f"%encrypt df {path}")
    shell.run(f"%decrypt {path} -o back")
    assert (len(bars), bars.lookups) == (0, 0)

    shell.run("%config Kmsnb.progress_threshold = 0")
    shell.run(f"%encrypt df {path} --overwrite")
    shell.run(f"%decrypt {path} -o back")

    size = len(decrypt_bytes(path.read_bytes(), kms=local_kms))
    assert [(bar.desc, bar.n, bar.total, bar.closed) for bar in bars] == [
        (f"encrypt {path.name}", size, size, True),
        (f"decrypt {path.name}", size, size, True),
    ]
    assert shell.user_ns["back"].shape == frame.shape


# -- one rule for naming keys ------------------------------------------------------------------


def test_a_bare_name_means_its_alias_in_every_magic(shell, local_kms, tmp_path):
    sales = shell.run("%kms create-key --alias sales").key_id
    shell.run("%kms create-key --alias pii")

    assert shell.run("%kms use sales").key_id == sales
    assert session.get_default_key() == "alias/sales"
    receipt = shell.run(f"%%encrypt -k sales {tmp_path / 'bare.kms'}\nb'abc'\n")
    assert (receipt.key_id, receipt.key_alias) == (sales, "alias/sales")
    assert shell.run("%kms describe sales").key_id == sales
    assert shell.run("%kms disable pii").state == "Disabled"
    assert shell.run("%kms enable pii").state == "Enabled"
    # A key id passes unchanged (a KMS 3.0 id is never taken for an alias).
    assert shell.run(f"%kms describe {sales}").key_id == sales
    shell.one_line_error(
        "%kms describe key-abcdefghijklmnop0123", "hint:", head="KmsAccessDeniedError"
    )
    assert "Forbidden.KeyNotFound" in shell.shown("%kms describe key-abcdefghijklmnop0123")


def test_a_file_info_shows_as_a_table_and_a_short_line(shell, key, tmp_path):
    """``kmsnb.inspect(path)`` as a cell's value: HTML in Jupyter, one line in a terminal,
    from the record itself (no formatter of the extension's), so the same once unloaded."""
    shell.user_ns["blob"] = b"x" * 2048
    path = tmp_path / "info.kms"
    shell.run(f"%encrypt blob {path}")
    info = inspect(path)

    data, _ = shell.display_formatter.format(info)

    assert data["text/plain"] == (
        f"FileInfo(application/octet-stream, 2.0 KiB (2048 bytes), key {info.key_id}, "
        "context keys: none)"
    )
    assert data["text/html"] == info._repr_html_()
    assert info.key_id in data["text/html"]
    shell.run("%unload_ext kmsnb")
    assert shell.display_formatter.format(info)[0] == data
