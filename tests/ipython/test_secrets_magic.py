"""``%kms secret NAME -o VAR`` and ``%kms secrets``: masked secrets in a real shell."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from IPython.core.error import UsageError

from kmsnb.kms.local import LocalKms

Shell = Any  # tests/ipython/conftest.py's Shell: run() returns the value, fails() the error

pytestmark = pytest.mark.notebook

VALUE = "pw-4b1d-never-shown"


@pytest.fixture
def secret(local_kms: LocalKms) -> str:
    local_kms.create_secret("db/password", VALUE, version_id="v1")
    return "db/password"


def test_secret_is_bound_masked_and_nothing_is_shown(
    shell: Shell, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run(f"%kms secret {secret} -o pw") is None
    pw = shell.user_ns["pw"]
    assert repr(pw) == "Secret('db/password', ••••)"
    for cell in ("pw", "print(pw)", "str(pw)", "f'{pw}'", "[pw]", "{'password': pw}"):
        shell.run(cell)
    shown = capsys.readouterr().out + str(shell.user_ns["Out"])
    assert VALUE not in shown
    assert "Secret('db/password', ••••)" in shown
    assert shell.run("pw.reveal()") == VALUE  # only when asked for by name
    assert pw._repr_html_() == "<code>Secret(&#x27;db/password&#x27;, ••••)</code>"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(pw)


def test_secret_stage_and_the_displayed_form(
    shell: Shell, local_kms: LocalKms, secret: str
) -> None:
    local_kms.put_secret_value(secret, "second", version_id="v2")
    shown = shell.run(f"%kms secret {secret} --stage ACSPrevious")
    assert repr(shown) == "Secret('db/password', ••••)"
    assert shown.reveal() == VALUE
    assert shown.version_stages == ("ACSPrevious",)


def test_secrets_lists_names_and_dates_only(shell: Shell, secret: str) -> None:
    table = shell.run("%kms secrets")
    text = str(table) + table._repr_html_()
    assert "db/password" in text
    assert VALUE not in text
    assert "created" in text


def test_mistakes_are_one_line_errors(shell: Shell, secret: str) -> None:
    shown = shell.one_line_error("%kms secret nope -o x", "Forbidden.ResourceNotFound")
    assert shown.startswith("Kms")  # headed by the KMS error's class, not UsageError
    assert isinstance(shell.fails("%kms secret db/password -o 1x"), UsageError)


def test_sqlalchemy_url_hides_the_password(shell: Shell, secret: str) -> None:
    shell.run(f"%kms secret {secret} -o pw")
    url = shell.run("pw.sqlalchemy_url('postgresql+psycopg', username='app', host='db')")
    assert url.password == VALUE
    assert VALUE not in repr(url)
    assert VALUE not in str(url)
    assert str(url) == "postgresql+psycopg://app:***@db"


def test_a_missing_secret_gets_a_hint_about_secrets(shell: Shell, secret: str) -> None:
    shown = shell.one_line_error(
        "%kms secret nope -o x",
        "secret 'nope' in local emulator at ",
        "(hint: this KMS has no such secret",
    )
    assert "%kms secrets" in shown
    assert "key's state" not in shown
