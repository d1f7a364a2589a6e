"""Notebook widgets: :class:`KeyPicker` and :class:`EncryptPanel` (needs ``ipywidgets``)."""

from kmsnb.ipython.widgets import EncryptPanel, KeyPicker, key_options

__all__ = ["EncryptPanel", "KeyPicker", "key_options"]
