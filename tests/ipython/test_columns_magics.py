"""%encrypt --columns / --uniform and %kms inspect of column-encrypted Parquet (issue 14,
item 5), through a real InteractiveShell."""

from __future__ import annotations

import pandas as pd
import pytest

import kmsnb
from kmsnb.ipython._display import Details

pytestmark = pytest.mark.notebook


@pytest.fixture
def people(shell, key):
    """``people`` in the shell, and a second key ``alias/pii``."""
    shell.run("%kms create-key --alias pii")
    shell.run("import pandas as pd")
    shell.run(
        "people = pd.DataFrame({'name': ['ann', 'bob'], 'ssn': ['1-2', '3-4'], 'age': [31, 40]})"
    )
    return shell.user_ns["people"]


def test_encrypt_columns_writes_column_level_parquet(shell, people, tmp_path):
    path = tmp_path / "people.parquet"
    receipt = shell.run(f"%encrypt people {path} --columns ssn=alias/pii --context team=hr")
    assert isinstance(receipt, kmsnb.Saved)
    assert receipt.column_mode
    assert "parquet, column mode" in str(receipt)
    assert path.read_bytes()[:4] == b"PARE"
    info = kmsnb.inspect(path, kms=kmsnb.session.get_kms())
    assert isinstance(info, kmsnb.ParquetInfo)
    assert info.keys == {"alias/test": ["name", "age"], "alias/pii": ["ssn"]}
    assert info.encryption_context == {"team": "hr"}
    pd.testing.assert_frame_equal(people, shell.run(f"%decrypt {path} --context team=hr"))


def test_cell_encrypt_takes_columns_and_uniform(shell, people, tmp_path):
    columns, uniform = tmp_path / "c.parquet", tmp_path / "u.parquet"
    shell.run_cell_magic("encrypt", f"{columns} --columns ssn=alias/pii name", "people")
    info = kmsnb.inspect(columns, kms=kmsnb.session.get_kms())
    assert info.keys == {"alias/test": ["name", "age"], "alias/pii": ["ssn"]}
    receipt = shell.run_cell_magic("encrypt", f"{uniform} --uniform", "people")
    assert receipt.column_mode
    assert kmsnb.inspect(uniform, kms=kmsnb.session.get_kms()).uniform is True


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("--columns ssn=", ["COL=KEY"]),
        ("--columns ssn=alias/pii ssn", ["twice"]),
        ("--columns nope=alias/pii", ["'nope'", "not in the DataFrame"]),
        ("--columns ssn --format csv", ["parquet"]),
        ("--columns ssn --uniform", ["uniform"]),
    ],
)
def test_encrypt_columns_errors_are_one_line(shell, people, tmp_path, options, words):
    shell.one_line_error(f"%encrypt people {tmp_path / 'x'} {options}", *words)
    assert not (tmp_path / "x").exists()


def test_encrypt_columns_is_for_dataframes(shell, key, tmp_path):
    shell.user_ns["blob"] = b"abc"
    error = shell.fails(f"%encrypt blob {tmp_path / 'x'} --columns a")
    assert "DataFrame" in str(error)


def test_kms_inspect_shows_what_the_file_reveals(shell, people, tmp_path):
    path = tmp_path / "people.parquet"
    shell.run(f"%encrypt people {path} --columns ssn=alias/pii")
    plain = shell.run(f"%kms inspect {path}")
    assert isinstance(plain, Details)
    assert isinstance(plain.value, kmsnb.ParquetInfo)
    text = str(plain)
    assert "alias/test" in text
    assert "ssn" not in text  # the column names are in the encrypted footer
    assert "inspect with the KMS" in text
    with_kms = shell.run(f"%kms inspect {path} --with-kms")
    assert "column ssn" in str(with_kms)
    assert "alias/pii" in str(with_kms)
    assert "alias/pii" in with_kms._repr_html_()
    # A colleague without the PII key sees which columns need it.
    shell.run("%kms disable alias/pii")
    assert with_kms.value == shell.run(f"%kms inspect {path} --with-kms").value
    error = shell.fails(f"%decrypt {path} --columns name ssn")
    assert "'alias/pii' protects column(s) 'ssn'" in str(error)
    assert "columns=['name', 'age']" in str(error)
