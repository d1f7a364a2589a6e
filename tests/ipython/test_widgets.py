"""The widgets, headless: set values, click, observe, and read the state a notebook saves."""

from __future__ import annotations

import base64
import importlib
import json
import sys

import ipywidgets
import pandas as pd
import pytest

import kmsnb.widgets
from kmsnb import session
from kmsnb.widgets import EncryptPanel, KeyPicker

pytestmark = pytest.mark.notebook

SECRET_VALUES = ["s3cr3t-value-one", "s3cr3t-value-two"]


@pytest.fixture(autouse=True)
def _close_widgets():
    yield
    ipywidgets.Widget.close_all()


@pytest.fixture
def keys(shell, local_kms):
    """alias/a (the default) and alias/b, an unaliased key, and a disabled one."""
    shell.run("%kms create-key --alias a")
    shell.run("%kms create-key --alias b")
    plain = shell.run("%kms create-key --description plain").key_id
    disabled = shell.run("%kms create-key --alias off").key_id
    local_kms.disable_key(disabled)
    shell.run("%kms use alias/a")
    return plain


@pytest.fixture
def frame():
    return pd.DataFrame({"id": [1, 2], "secret": SECRET_VALUES})


def owned_widgets(*owners):
    """The owners (containers) and every widget they hold."""
    return [
        *owners,
        *(
            value
            for owner in owners
            for value in vars(owner).values()
            if isinstance(value, ipywidgets.Widget)
        ),
    ]


def all_states(*owners):
    """JSON of the state of every widget the owners hold, as a notebook would save it."""
    return json.dumps([widget.get_state() for widget in owned_widgets(*owners)], default=str)


def test_the_widgets_are_containers_that_compose(keys, frame):
    picker, panel = KeyPicker(), EncryptPanel(frame)
    assert isinstance(picker, ipywidgets.VBox)
    assert isinstance(panel, ipywidgets.VBox)
    box = ipywidgets.VBox([picker, panel])  # a TraitError before
    assert box.children == (picker, panel)
    assert picker.children == (picker.dropdown,)
    assert panel.widget is panel


def test_key_labels_are_not_cut(keys):
    """The dropdown is as wide as its longest label ("alias/a (key id)")."""
    picker = KeyPicker()
    assert picker.dropdown.layout.width == "max-content"
    assert all(keys_id in label for label, keys_id in [(picker.dropdown.options[2][0], keys)])


def test_key_picker_lists_enabled_keys_and_sets_the_default(keys):
    picker = KeyPicker()

    values = [value for _, value in picker.dropdown.options]
    assert values == ["alias/a", "alias/b", keys]  # the disabled key is not offered
    assert picker.value == "alias/a"
    picker.dropdown.value = "alias/b"
    assert session.get_default_key() == "alias/b"
    assert "KeyPicker(default key: alias/b" in repr(picker)
    assert picker._repr_mimebundle_() == {"text/plain": repr(picker)}  # no kernel here


def test_a_default_key_set_by_its_bare_name_shows_its_alias_selected(keys):
    """``sales`` means ``alias/sales`` everywhere a key is named, the widgets included."""
    session.set_default_key("b")
    assert KeyPicker().dropdown.value == "alias/b"


def test_a_default_key_chosen_with_kms_use_and_a_bare_name_shows_its_alias(keys, shell):
    shell.run("%kms use b")
    assert KeyPicker().dropdown.value == "alias/b"


def test_key_picker_refresh_sees_new_keys(keys, shell):
    picker = KeyPicker()
    shell.run("%kms create-key --alias c")
    picker.refresh()
    assert "alias/c" in [value for _, value in picker.dropdown.options]


def test_encrypt_panel_click_encrypts_and_shows_the_receipt(keys, frame, tmp_path, local_kms):
    path = tmp_path / "panel.kms"
    panel = EncryptPanel(frame, path=str(path))
    assert list(panel.format.options) == ["parquet", "csv"]
    panel.key.value = "alias/b"
    panel.format.value = "csv"

    panel.button.click()

    assert panel.error is None
    assert panel.receipt is not None
    assert (panel.receipt.key_alias, panel.receipt.shape) == ("alias/b", (2, 2))
    (shown,) = panel.output.outputs
    assert str(path) in shown["data"]["text/plain"]
    assert "<table" in shown["data"]["text/html"]
    back = kmsnb.dataframe.read_csv(path, kms=local_kms)
    assert list(back["secret"]) == SECRET_VALUES


def test_encrypt_panel_shows_errors_instead_of_raising(keys, frame, tmp_path):
    path = tmp_path / "exists.kms"
    path.write_bytes(b"")
    panel = EncryptPanel(frame, path=str(path))

    panel.button.click()

    assert panel.receipt is None
    assert "tick Overwrite" in panel.error  # the widget's control, not the magic's option
    assert "--overwrite" not in panel.error
    assert "overwrite=True" not in panel.error
    assert panel.output.outputs[0]["data"]["text/plain"].startswith("not encrypted: ")
    panel.overwrite.value = True
    assert panel.encrypt() is not None
    assert "wrote" in repr(panel)


def test_encrypt_panel_for_bytes_and_refusal_of_other_types(keys, tmp_path):
    panel = EncryptPanel(b"raw bytes", path=str(tmp_path / "b.kms"))
    assert list(panel.format.options) == ["bytes"]
    assert panel.encrypt().plaintext_size == 9
    with pytest.raises(TypeError, match="cannot encrypt a list"):
        EncryptPanel([1, 2])


def test_no_secret_in_any_widget_state(keys, frame, tmp_path, recording, access_key_secret):
    picker = KeyPicker()
    panel = EncryptPanel(frame, path=str(tmp_path / "s.kms"))
    panel.button.click()
    panel.button.click()  # an error (the file exists) is rendered too
    picker.dropdown.value = "alias/b"

    state = all_states(picker, panel)

    assert panel.receipt is None
    assert panel.error
    assert recording.data_keys
    forbidden = [access_key_secret, *SECRET_VALUES]
    for data_key in recording.data_keys:
        forbidden += [
            data_key.hex(),
            base64.b64encode(data_key).decode(),
            data_key.decode("latin-1"),
        ]
    for secret in forbidden:
        assert secret not in state
    assert len(owned_widgets(picker, panel)) == 9
    assert not any(isinstance(w, ipywidgets.Password) for w in owned_widgets(picker, panel))


def test_missing_ipywidgets_gives_a_clear_import_error(keys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "kmsnb.widgets")
    with pytest.raises(ImportError, match=r"pip install 'kmsnb\[notebook\]'.*%kms use KEY"):
        importlib.import_module("kmsnb.widgets")


def test_in_a_kernel_the_widgets_display_as_widget_views(keys, frame, monkeypatch):
    monkeypatch.setattr("kmsnb.widgets._in_kernel", lambda: True)
    view = "application/vnd.jupyter.widget-view+json"
    picker, panel = KeyPicker(), EncryptPanel(frame)
    assert picker._repr_mimebundle_()[view]["model_id"] == picker.model_id
    assert panel._repr_mimebundle_()[view]["model_id"] == panel.model_id


def test_a_default_key_set_as_a_bare_name_shows_its_alias_selected(keys, shell, frame):
    shell.run("%kms use b")
    assert KeyPicker().value == "alias/b"
    assert EncryptPanel(frame).key.value == "alias/b"
