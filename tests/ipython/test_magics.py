"""The IPython extension through a real InteractiveShell: loading, settings, the magics,
their displays and errors; and what the magics added to the library: rewrap and the
progress helper."""

from __future__ import annotations

import io
import os

import pandas as pd
import pytest
from IPython.core.error import UsageError
from traitlets.config import Config

from kmsnb import _progress, decrypt_bytes, encrypt_bytes, inspect, session
from kmsnb.errors import ContextMismatchError, IntegrityError
from kmsnb.ipython._display import Details, Receipt, Table
from kmsnb.kms.caching import CachingKms
from kmsnb.rewrap import rewrap_file

pytestmark = pytest.mark.notebook


@pytest.fixture
def frame(shell, key):
    """``df`` (3 rows x 2 columns) defined in the shell, with pandas as ``pd``."""
    shell.run("import pandas as pd")
    shell.run("df = pd.DataFrame({'name': ['ann', 'bob', 'cy'], 'score': [1.5, 2.5, 3.5]})")
    return shell.user_ns["df"]


def assert_one_line_usage_error(error, *words):
    assert isinstance(error, UsageError), repr(error)
    assert "\n" not in str(error)
    for word in words:
        assert word in str(error)


# -- loading and settings ---------------------------------------------------------------


def test_load_ext_registers_everything_and_prints_one_line(bare_shell, keystore, capsys):
    bare_shell.run("%load_ext kmsnb")

    expected = (
        f"kmsnb: KMS local emulator at {keystore}; default key none (set one with %kms use KEY)\n"
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
        f"kmsnb: KMS local emulator at {tmp_path / 'configured'}; default key alias/configured\n"
    )
    kms = session.get_kms()
    assert isinstance(kms, CachingKms)
    assert (kms.max_age, kms.max_messages) == (60.0, 5)
    assert session.get_default_key() == "alias/configured"
    assert _progress.get_progress_threshold() == 1024


def test_config_magic_reconnects_and_sets_the_default_key(shell, tmp_path, capsys):
    shell.run(f"%config Kmsnb.kms = 'local:{tmp_path / 'other'}'")
    assert capsys.readouterr().out.startswith(f"kmsnb: KMS local emulator at {tmp_path / 'other'};")

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
    assert capsys.readouterr().out.startswith("kmsnb: KMS local emulator")
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
    assert isinstance(created, Details)
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

    assert shell.run(f"%kms disable {key_id}").key_state == "Disabled"
    assert shell.run(f"%kms enable {key_id}").key_state == "Enabled"
    rotated = shell.run(f"%kms rotate {key_id}")
    assert rotated.key_version_id == local_kms.describe_key(key_id).primary_key_version
    assert shell.run(f"%kms describe {key_id}").fields[6] == ("versions", "2")
    assert shell.run(f"%kms schedule-deletion {key_id} --days 7").key_state == "PendingDeletion"
    assert shell.run(f"%kms cancel-deletion {key_id}").key_state in ("Enabled", "Disabled")


def test_status_and_silencing(shell, key, keystore, capsys):
    status = shell.run("%kms")
    assert status.value["default key"] == "alias/test"
    assert str(keystore) in str(status)

    capsys.readouterr()
    shell.run("%kms keys;")
    assert capsys.readouterr().out == ""


def test_kms_errors_are_one_line_usage_errors(shell, capsys):
    assert_one_line_usage_error(
        shell.fails("%kms describe alias/missing"), "hint:", "%kms describe"
    )
    assert_one_line_usage_error(shell.fails("%kms frobnicate"), "invalid choice")
    assert_one_line_usage_error(shell.fails("%kms schedule-deletion k"), "--days")
    assert_one_line_usage_error(shell.fails("%kms inspect /no/such/file"), "check the path")
    assert_one_line_usage_error(shell.fails("%kms create-key --description 'open"), "quotation")

    capsys.readouterr()
    shell.run_cell("%kms describe alias/missing")  # what a user sees: one stderr line
    err = capsys.readouterr().err
    assert err.startswith("UsageError: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_create_key_refuses_a_taken_alias_before_creating(shell, key, local_kms):
    before = len(local_kms.list_keys())
    assert_one_line_usage_error(shell.fails("%kms create-key --alias test"), "exists")
    assert len(local_kms.list_keys()) == before


def test_inspect_and_rewrap(shell, key, local_kms, tmp_path):
    path = tmp_path / "data.kms"
    shell.user_ns["blob"] = b"x" * 50_000
    shell.run(f"%encrypt blob -o {path} --context team=a")
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
    assert_one_line_usage_error(
        shell.fails(f"%kms rewrap {path} --key {new_key} --context team=b"), "context"
    )


# -- %%encrypt, %encrypt, %decrypt ----------------------------------------------------------


def test_cell_encrypt_runs_the_cell_and_never_shows_the_value(shell, frame, tmp_path, capsys):
    path = tmp_path / "cell.kms"
    shell.user_ns["out"] = str(path)

    receipt = shell.run("%%encrypt -o {out}\nextra = df.assign(n=[1, 2, 3])\nlabel = 'x'\nextra\n")

    assert isinstance(receipt, Receipt)
    assert (receipt.rows, receipt.columns, receipt.path) == (3, 3, str(path))
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
    receipt = shell.run(f"%%encrypt -o {tmp_path / 'b.kms'}\npayload = bytes(range(10))\n")
    assert (receipt.kind, receipt.plaintext_size) == ("bytes", 10)
    assert shell.user_ns["payload"] == bytes(range(10))

    shell.run(f"%%encrypt -o {tmp_path / 't.kms'}\n'héllo'\n")
    assert shell.run(f"%decrypt {tmp_path / 't.kms'}") == "héllo"
    assert shell.run(f"%decrypt {tmp_path / 'b.kms'}") == bytes(range(10))


def test_cell_encrypt_errors(shell, key, tmp_path):
    path = tmp_path / "never.kms"
    # An error in the user's code is theirs: a normal exception, and no file.
    assert isinstance(
        shell.fails(f"%%encrypt -o {path}\nvalue = 1 / 0\nvalue\n"), ZeroDivisionError
    )
    assert_one_line_usage_error(
        shell.fails(f"%%encrypt -o {path}\nfor i in []: pass\n"), "end the cell"
    )
    assert_one_line_usage_error(shell.fails(f"%%encrypt x -o {path}\n1\n"), "takes no variable")
    assert_one_line_usage_error(
        shell.fails(f"%%encrypt -o {path}\n[1, 2]\n"), "cannot encrypt a list"
    )
    assert not path.exists()


def test_line_encrypt_formats_and_expansion(shell, frame, tmp_path):
    shell.user_ns["target"] = str(tmp_path / "frame.csv.kms")
    receipt = shell.run("%encrypt df -o {target} --format csv")
    assert receipt.content_type == "text/csv"
    back = shell.run(f"%decrypt {tmp_path / 'frame.csv.kms'} --columns name")
    assert list(back.columns) == ["name"]

    parquet = shell.run(f"%encrypt df -o {tmp_path / 'frame.kms'} -k alias/test --context a=1 b=2")
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
    assert_one_line_usage_error(shell.fails(f"%encrypt missing -o {path}"), "no variable")
    assert_one_line_usage_error(shell.fails(f"%encrypt -o {path}"), "needs a variable")
    assert_one_line_usage_error(
        shell.fails(f"%encrypt df -o {path} --format bytes"), "parquet or csv"
    )
    assert_one_line_usage_error(shell.fails(f"%encrypt df -o {path} --context nope"), "KEY=VALUE")
    assert_one_line_usage_error(shell.fails(f"%encrypt df -o {path} -k alias/nope"), "hint:")
    shell.run(f"%encrypt df -o {path}")
    assert_one_line_usage_error(shell.fails(f"%encrypt df -o {path}"), "--overwrite")
    shell.run(f"%encrypt df -o {path} --overwrite")

    session.set_default_key(None)
    assert_one_line_usage_error(shell.fails(f"%encrypt df -o {path} --overwrite"), "%kms use KEY")


def test_line_encrypt_sees_function_locals(shell, key, tmp_path):
    shell.run(
        "def save(path):\n"
        "    local_value = b'inside'\n"
        "    return get_ipython().run_line_magic('encrypt', f'local_value -o {path}')\n"
    )
    assert shell.run(f"save({str(tmp_path / 'l.kms')!r}).plaintext_size") == 6


def test_decrypt_to_a_variable_returns_nothing(shell, frame, tmp_path):
    shell.run(f"%encrypt df -o {tmp_path / 'd.kms'} --context team=a")
    assert shell.run(f"%decrypt {tmp_path / 'd.kms'} -o loaded") is None
    pd.testing.assert_frame_equal(shell.user_ns["loaded"], frame)
    assert all(value is not shell.user_ns["loaded"] for value in shell.user_ns["Out"].values())

    assert_one_line_usage_error(shell.fails(f"%decrypt {tmp_path / 'd.kms'} -o 'not a name'"), "-o")
    error = shell.fails(f"%decrypt {tmp_path / 'd.kms'} --context team=b")
    assert_one_line_usage_error(error, "hint:", "%kms inspect")
    assert_one_line_usage_error(shell.fails(f"%decrypt {tmp_path / 'nothing'}"), "check the path")


def test_decrypt_errors_for_damaged_and_foreign_files(shell, key, tmp_path):
    shell.user_ns["blob"] = b"abc" * 100
    path = tmp_path / "x.kms"
    shell.run(f"%encrypt blob -o {path}")
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    assert_one_line_usage_error(shell.fails(f"%decrypt {path}"), "hint:")
    (tmp_path / "plain.txt").write_text("hello")
    assert_one_line_usage_error(shell.fails(f"%decrypt {tmp_path / 'plain.txt'}"), "kmsnb file")
    assert_one_line_usage_error(shell.fails(f"%decrypt {path} --columns a"), "--columns applies")


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
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    _progress.set_progress_threshold(0)
    with _progress.progress_bar(2048, "big") as advance:
        advance(2048)
    assert capsys.readouterr().err == ""
