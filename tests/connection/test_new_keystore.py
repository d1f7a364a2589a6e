"""Opening a ``local:`` KMS that has no keystore yet says so once (issue 12: ``--kms
local:/typo`` silently made a new, empty keystore): a ``NewKeystoreWarning`` from
:func:`kmsnb.connect`, which the faces show in their own place."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from kmsnb.connection import connect, connect_noting_new_keystore
from kmsnb.errors import KmsnbWarning, NewKeystoreWarning
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


def test_a_new_keystore_is_warned_of_once(tmp_path: Path) -> None:
    store = tmp_path / "typo"
    with pytest.warns(NewKeystoreWarning) as caught:
        connect(f"local:{store}").close()
    assert len(caught) == 1
    warning = caught[0].message
    assert isinstance(warning, NewKeystoreWarning)
    assert isinstance(warning, KmsnbWarning)
    assert isinstance(warning, UserWarning)  # shown by Python's default filters
    assert warning.path == str(store)
    assert str(warning) == (
        f"a new keystore at {store}: no keys yet (a mistyped local: path makes one too)"
    )
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connect(f"local:{store}").close()  # it exists now: nothing to say


def test_an_existing_empty_folder_is_a_new_keystore_too(tmp_path: Path) -> None:
    with pytest.warns(NewKeystoreWarning):
        connect(f"local:{tmp_path}").close()  # e.g. a tempfile.mkdtemp() of the tutorials


def test_a_client_or_a_server_is_never_warned_of(kms: InMemoryKms) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert connect(kms) is kms


def test_the_faces_get_it_returned_instead_of_shown(tmp_path: Path) -> None:
    store = tmp_path / "new"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches Python's display
        client, notice = connect_noting_new_keystore(f"local:{store}")
    client.close()
    assert notice is not None
    assert notice.path == str(store)
    client, notice = connect_noting_new_keystore(f"local:{store}")
    client.close()
    assert notice is None


def test_other_warnings_still_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kmsnb.connection

    real = kmsnb.connection.connect

    def noisy(*args: object, **kwargs: object) -> object:
        warnings.warn("something else", UserWarning, stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kmsnb.connection, "connect", noisy)
    with pytest.warns(UserWarning, match="something else"):
        client, notice = connect_noting_new_keystore(f"local:{tmp_path / 'x'}")
    client.close()
    assert notice is not None
