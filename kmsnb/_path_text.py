"""Local paths as strings spelled as :class:`pathlib.Path` spells them, without pathlib.

pathlib imports ``urllib.parse`` (and with it ``ipaddress``) and builds an object per
path: on a ``local:`` CLI call that was ~7 ms of start-up, and on a 4 KiB
``encrypt_file`` or ``decrypt_file`` several ``Path`` parses per file (issue 16). The
keystore and :mod:`kmsnb._files` keep strings, spelled here as a Path's ``str`` would be,
so that messages and parent folders read as they did.
"""

from __future__ import annotations

import os

__all__ = ["anchored", "as_path_text", "spelled_as_a_path"]


def spelled_as_a_path(path: str) -> str:
    """``path`` as ``str(pathlib.Path(path))`` spells it: no empty or ``.`` parts, no
    trailing slash, so that messages and the parent directory read as a Path's did. ``..``
    stays, as in a Path: resolving it in the string would be wrong past a symbolic link."""
    if "//" not in path and "/." not in path and not path.endswith("/") and path[:2] != "./":
        return path or "."  # already as a Path spells it: the common case, no splitting
    slashes = len(path) - len(path.lstrip("/"))
    root = "//" if slashes == 2 else "/" if slashes else ""  # POSIX keeps exactly two
    return root + "/".join(part for part in path.split("/") if part not in ("", ".")) or "."


def as_path_text(path: str | os.PathLike[str]) -> str:
    """``str(pathlib.Path(path))``, with the ``TypeError`` a Path gives for what is not a
    ``str`` path (bytes, a number: ``open`` would take a number for a descriptor)."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(
            "argument should be a str or an os.PathLike object where __fspath__ returns "
            f"a str, not {type(text).__name__!r}"
        )
    return spelled_as_a_path(text)


def anchored(path: str) -> str:
    """``path`` joined to the current folder if it is relative: the file it names now,
    whatever ``os.chdir`` happens later (an output's block runs the caller's code, and
    other threads run meanwhile). Not normalised: ``link/../x`` is left for the kernel,
    which takes ``..`` from the link's target, as ``realpath`` does.

    Raises:
        FileNotFoundError: the current folder was removed (a relative path names nothing).
    """
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)
