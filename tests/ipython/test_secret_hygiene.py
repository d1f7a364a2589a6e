"""No secret leaves the kernel: a notebook run through every way of encrypting, then searched.

A real kernel (nbclient + ipykernel) with its IPython history on disk and outputs logged
into it runs a notebook that builds a DataFrame with a secret column and encrypts it with
``%%encrypt``, ``%encrypt``, the ``df.kms`` accessor and the widget panel (its button
clicked in code), then loads it back, inspects, rewraps and makes a few mistakes; then it
fetches a Secrets Manager secret (``%kms secret -o``, ``kmsnb.secrets.get``) and uses it
as a notebook would (display, print, log, widget, SQLAlchemy URL). The
session's KMS is wrapped by a recorder that writes each plaintext data key to a side
file. Then the saved ``.ipynb`` (all but the cell sources: outputs, metadata, widget
state), the history database and every log are searched for the data keys (raw, hex,
base64), the AccessKey secret in the kernel's environment, the secret column's values and
the secret's value (raw, base64, hex). The values are computed in the kernel or stored by
the test beforehand, so the sources never contain them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import nbclient
import nbformat
import pytest

from kmsnb.kms.local import LocalKms

pytestmark = pytest.mark.notebook  # about 2 s: a kernel starts

ROW_COUNT = 4

RECORDER = '''\
from kmsnb import session


class Recording:
    """Appends the hex of every data key the session's KMS hands out to a side file."""

    def __init__(self, inner, side):
        self._inner, self._side = inner, side

    def _record(self, key):
        with open(self._side, "a") as side:
            side.write(bytes(key).hex() + "\\n")

    def generate_data_key(self, key_id, encryption_context=None, **options):
        data_key = self._inner.generate_data_key(key_id, encryption_context, **options)
        self._record(data_key.plaintext)
        return data_key

    def decrypt_data_key(self, blob, encryption_context=None):
        key = self._inner.decrypt_data_key(blob, encryption_context)
        self._record(key.plaintext)
        return key

    def __getattr__(self, name):
        return getattr(self._inner, name)


session.set_kms(Recording(session.get_kms(), os.environ["KMSNB_TEST_KEYS"]), cache=False)
'''

CELLS = [
    "import logging, os\n"
    "logging.basicConfig(filename=os.environ['KMSNB_TEST_LOG'], level=logging.DEBUG, force=True)\n"
    "%load_ext kmsnb",
    RECORDER,
    "%kms create-key --alias hygiene --description 'hygiene test'",
    "%kms use alias/hygiene",
    "import hashlib\n"
    "import pandas as pd\n"
    "out = os.environ['KMSNB_TEST_OUT']\n"
    "secrets = [hashlib.sha256(f'kmsnb-row-{i}'.encode()).hexdigest()[:24]"
    f" for i in range({ROW_COUNT})]\n"
    f"df = pd.DataFrame({{'id': range({ROW_COUNT}), 'secret': secrets}})\n"
    "df.shape",
    "%%encrypt {out}/cell.kms\nframe = df.copy()\nframe",
    "%encrypt df {out}/line.kms --context purpose=test",
    "%encrypt df {out}/frame.csv.kms --format csv",
    "df.kms.to_parquet(f'{out}/accessor.kms')",
    "from kmsnb.widgets import EncryptPanel, KeyPicker\n"
    "panel = EncryptPanel(df, path=f'{out}/widget.kms')\n"
    "panel.button.click()\n"
    "assert panel.receipt is not None, panel.error\n"
    "panel",
    "KeyPicker()",
    "%decrypt {out}/line.kms -o back\nassert back.equals(df)",
    "%decrypt {out}/frame.csv.kms --columns id",
    "%kms status",
    "%kms keys",
    "%kms inspect {out}/line.kms",
    "%kms rewrap {out}/line.kms --key alias/hygiene",
    "%decrypt {out}/line.kms --context purpose=wrong",
    "%kms create-key --alias hygiene",
    "%config Kmsnb",
    # A Secrets Manager secret (made by the test, so no source holds its value), used the
    # ways a notebook would: bound, displayed, printed, logged, put in a widget, turned into
    # a database URL, and fetched again as a cell's value.
    "%kms secret db/password -o pw",
    "pw",
    "print(pw, repr(pw), f'{pw}', str(pw))",
    "logging.getLogger('app').warning('connecting with %s', pw)",
    "%kms secrets",
    "url = pw.sqlalchemy_url('postgresql+psycopg', username='app', host='db')\nprint(url)\nurl",
    "import ipywidgets\nipywidgets.Text(value=str(pw))",
    "len(pw.reveal())",
    "import kmsnb.secrets\nkmsnb.secrets.get('db/password', version_stage='ACSCurrent')",
    "%kms secret no/such/secret -o nothing",
]


def encodings(data_key: bytes) -> list[bytes]:
    """The forms a leaked data key could take."""
    b64 = base64.b64encode(data_key)
    return [
        data_key,
        data_key.hex().encode(),
        data_key.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(data_key).rstrip(b"="),
    ]


def test_no_secret_in_the_notebook_the_history_or_the_logs(
    tmp_path, monkeypatch, capfd, access_key_secret
):
    side_file = tmp_path / "data-keys.txt"  # the recorder's; outside the searched set
    log_file = tmp_path / "kernel.log"
    out = tmp_path / "out"
    out.mkdir()
    history = tmp_path / "ipython" / "profile_default" / "history.sqlite"
    secret_value = "pw-" + secrets.token_urlsafe(18)  # never in a cell's source
    with LocalKms(tmp_path / "keys") as keys:  # the keystore KMSNB_KMS names in the kernel
        keys.create_secret("db/password", secret_value)
    monkeypatch.setenv("KMSNB_TEST_KEYS", str(side_file))
    monkeypatch.setenv("KMSNB_TEST_LOG", str(log_file))
    monkeypatch.setenv("KMSNB_TEST_OUT", str(out))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS]
    )

    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=60,
        # The mistakes made on purpose: a wrong context, a taken alias, a missing secret.
        allow_error_names=["ContextMismatchError", "AliasExistsError", "KmsAccessDeniedError"],
        resources={"metadata": {"path": str(tmp_path)}},
        ipython_hist_file=str(history),  # on disk, as in an interactive Jupyter session
        extra_arguments=["--HistoryManager.db_log_output=True"],
    )
    client.execute()
    saved = tmp_path / "hygiene.ipynb"
    nbformat.write(notebook, saved)

    # What the test relies on did happen: files written, keys recorded, state saved.
    assert sorted(path.name for path in out.iterdir()) == [
        "accessor.kms", "cell.kms", "frame.csv.kms", "line.kms", "widget.kms",
    ]  # fmt: skip
    data_keys = [bytes.fromhex(line) for line in side_file.read_text().split()]
    assert len(set(data_keys)) >= 5
    reloaded = nbformat.read(saved, as_version=4)
    assert "widgets" in reloaded.metadata
    outputs = [output for cell in reloaded.cells for output in cell.outputs]
    assert any("sha256" in str(output) for output in outputs)
    errors = [output for output in outputs if output.output_type == "error"]
    assert [error.ename for error in errors] == [
        "ContextMismatchError",
        "AliasExistsError",
        "KmsAccessDeniedError",
    ]
    # In a kernel too, each is one line headed by its class, without a traceback.
    assert all(len(error.traceback) == 1 for error in errors), errors
    assert all(error.traceback[0].startswith(f"{error.ename}: ") for error in errors)
    for cell in reloaded.cells:
        cell.source = ""  # the sources are the user's; everything else is searched
    history_bytes = b"".join(path.read_bytes() for path in history.parent.glob("history.sqlite*"))
    assert b"run_cell_magic" in history_bytes  # the sources, and with db_log_output...
    assert b"Saved(" in history_bytes  # ...the receipts: the database was written
    captured = capfd.readouterr()
    searched = {
        "notebook": nbformat.writes(reloaded).encode(),
        "history": history_bytes,
        "kernel log": log_file.read_bytes() if log_file.exists() else b"",
        "kernel output": (captured.out + captured.err).encode(),
    }

    secret_values = [
        hashlib.sha256(f"kmsnb-row-{i}".encode()).hexdigest()[:24].encode()
        for i in range(ROW_COUNT)
    ]
    forbidden = {"AccessKey secret": [access_key_secret.encode()], "secret column": secret_values}
    forbidden["secret value"] = [
        secret_value.encode(),
        base64.b64encode(secret_value.encode()),
        secret_value.encode().hex().encode(),
    ]
    assert any("Secret('db/password', ••••)" in str(output) for output in outputs)
    assert any("postgresql+psycopg://app:***@db" in str(output) for output in outputs)
    forbidden["data keys"] = [form for key in data_keys for form in encodings(key)]
    for where, blob in searched.items():
        for what, needles in forbidden.items():
            leaked = [needle for needle in needles if needle in blob]
            assert not leaked, f"{what} found in the {where}"
