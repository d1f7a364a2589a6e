"""Widgets to pick the default key and to encrypt a value: :class:`KeyPicker` and
:class:`EncryptPanel` (needs ``ipywidgets``: ``pip install 'kmsnb[notebook]'``).

Each is an ``ipywidgets`` container (a ``VBox``), so it displays as a widget in a kernel and
composes with others (``ipywidgets.VBox([KeyPicker(), EncryptPanel(df)])``). The logic is
plain Python, so they work (and are tested) without a browser: set ``.value``, call
``.button.click()``; outside a kernel (a terminal, a script) they display as a text
summary. Widget state is synced to the browser and saved into the notebook, so it holds only
key ids, aliases, paths and receipts: the value to encrypt stays in the kernel, and there is
no password field.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from kmsnb import keys, session
from kmsnb.ipython import _actions
from kmsnb.ipython._error_lines import USER_ERRORS, explain

try:
    import ipywidgets
except ImportError:
    raise ImportError(
        "kmsnb's widgets need ipywidgets: pip install 'kmsnb[notebook]'; without it, use "
        "%kms keys, %kms use KEY and %encrypt VAR PATH"
    ) from None

if TYPE_CHECKING:
    from kmsnb._save import Saved
    from kmsnb.kms import Kms, KmsClient

__all__ = ["EncryptPanel", "KeyPicker", "key_options"]

# A dropdown as wide as its longest label ("alias/sales (a5ef9f53-...)"): the default
# width cuts the key id off.
_FIT = {"width": "max-content", "min_width": "300px"}
_STYLE = {"description_width": "initial"}


def _in_kernel() -> bool:
    """True in a Jupyter kernel, where a widget view can be shown."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def key_options(client: KmsClient) -> list[tuple[str, str]]:
    """(label, value) for each enabled key: its aliases, or its id when it has none.

    Aliases come first, sorted, then the keys without one.
    """
    options: list[tuple[str, str]] = []
    for record in keys.list_keys(kms=client):
        if record.state != "Enabled":
            continue  # nothing can be encrypted under it
        if record.aliases:
            options.extend((f"{name} ({record.key_id})", name) for name in record.aliases)
        else:
            label = (
                f"{record.key_id} ({record.description})" if record.description else record.key_id
            )
            options.append((label, record.key_id))
    return sorted(options, key=lambda option: (not option[1].startswith("alias/"), option))


def _initial(options: list[tuple[str, str]], wanted: str | None) -> str | None:
    values = [value for _, value in options]
    return wanted if wanted in values else None


def _key_dropdown(options: list[tuple[str, str]]) -> Any:
    return ipywidgets.Dropdown(
        options=options,
        value=_initial(options, session.get_default_key()),
        description="Key",
        layout=ipywidgets.Layout(**_FIT),
        style=_STYLE,
    )


class KeyPicker(ipywidgets.VBox):  # type: ignore[misc]
    """A dropdown of the KMS's keys; choosing one makes it the session's default key.

    Args:
        kms: the KMS client to list keys from; ``None``: the session's.

    Attributes:
        dropdown: the ``ipywidgets.Dropdown``; its ``value`` is an alias or a key id.
    """

    def __init__(self, kms: Kms | None = None, **options: Any) -> None:
        self._kms = kms
        self.dropdown = _key_dropdown(key_options(self._client()))
        super().__init__([self.dropdown], **options)
        self.dropdown.observe(self._chosen, names="value")

    def _client(self) -> KmsClient:
        return _actions.management_client(self._kms or session.get_kms())

    @property
    def value(self) -> str | None:
        """The chosen key (an alias or a key id), or ``None``."""
        value: str | None = self.dropdown.value
        return value

    def refresh(self) -> None:
        """List the keys again (after creating one, say)."""
        options = key_options(self._client())
        self.dropdown.options = options
        self.dropdown.value = _initial(options, session.get_default_key())

    def _chosen(self, change: dict[str, Any]) -> None:
        if change["new"]:
            session.set_default_key(change["new"])

    def __repr__(self) -> str:
        choices = ", ".join(value for _, value in self.dropdown.options) or "none"
        return f"KeyPicker(default key: {self.value or 'none'}; keys: {choices})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if _in_kernel():
            bundle: dict[str, Any] = super()._repr_mimebundle_(include=include, exclude=exclude)
            return bundle
        return {"text/plain": repr(self)}


class EncryptPanel(ipywidgets.VBox):  # type: ignore[misc]
    """Encrypt one value to a file: a key dropdown, a path, a format, and a button.

    The button encrypts ``value`` (a DataFrame, bytes or str) as ``%encrypt`` does and
    shows the receipt, or a one-line error, in ``output``. The value itself is never
    shown nor put in widget state.

    Args:
        value: what to encrypt.
        path: the initial output path.
        kms: the KMS; ``None``: the session's (with its data-key cache).

    Attributes:
        key, path, format, overwrite, button, output: the widgets.
        receipt: the last receipt, or ``None``.
        error: the last error message, or ``None``.

    Raises:
        TypeError: ``value`` is not a DataFrame, bytes or str.
    """

    def __init__(
        self, value: object, *, path: str = "", kms: Kms | None = None, **options: Any
    ) -> None:
        if _actions.is_dataframe(value):
            formats = ["parquet", "csv"]
        elif isinstance(value, str):
            formats = ["text"]
        elif isinstance(value, bytes | bytearray | memoryview):
            formats = ["bytes"]
        else:
            raise TypeError(
                f"cannot encrypt a {type(value).__name__}; give a DataFrame, bytes or str"
            )
        self._value = value
        self._kms = kms
        self.receipt: Saved | None = None
        self.error: str | None = None
        self.key = _key_dropdown(key_options(_actions.management_client(self._session_kms())))
        self.path = ipywidgets.Text(value=path, description="Path", placeholder="data.kms")
        self.format = ipywidgets.Dropdown(options=formats, value=formats[0], description="Format")
        self.overwrite = ipywidgets.Checkbox(value=False, description="Overwrite")
        self.button = ipywidgets.Button(description="Encrypt", icon="lock")
        self.output = ipywidgets.Output()
        children = [self.key, self.path, self.format, self.overwrite, self.button, self.output]
        super().__init__(children, **options)
        self.button.on_click(lambda _button: self.encrypt())

    @property
    def widget(self) -> EncryptPanel:
        """The panel itself (it is the container; kept for code written for 0.x)."""
        return self

    def _session_kms(self) -> Kms:
        return self._kms or session.get_kms()

    def encrypt(self) -> Saved | None:
        """Encrypt with the current choices; what the button does. Never raises for the
        user's mistakes or the KMS's refusals: they go to ``error`` and the output."""
        try:
            self.receipt = _actions.encrypt_value(
                self._value,
                self.path.value,
                self.key.value,
                kms=self._session_kms(),
                file_format=self.format.value,
                overwrite=self.overwrite.value,
            )
        except USER_ERRORS as error:
            self.receipt, self.error = None, explain(error, "widget")
            self._show({"text/plain": f"not encrypted: {self.error}"})
            return None
        self.error = None
        self._show({"text/plain": str(self.receipt), "text/html": self.receipt._repr_html_()})
        return self.receipt

    def _show(self, data: dict[str, str]) -> None:
        # Set as the Output's state directly: `with output:` capture needs a kernel.
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def __repr__(self) -> str:
        kind = type(self._value).__name__
        last = ""
        if self.receipt is not None:
            last = f"; wrote {self.receipt.path}"
        elif self.error is not None:
            last = f"; not encrypted: {self.error}"
        return (
            f"EncryptPanel({kind} -> {self.path.value or '?'} as {self.format.value}, "
            f"key {self.key.value or '?'}{last})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if _in_kernel():
            bundle: dict[str, Any] = super()._repr_mimebundle_(include=include, exclude=exclude)
            return bundle
        return {"text/plain": repr(self)}
