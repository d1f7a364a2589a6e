"""``storage_options`` from text (the CLI's and the magics' ``--storage-option KEY=VALUE``),
and the rule that credentials never travel as options where others would see them.

A command line is seen by every user of the machine (``ps``) and kept in shell history and
notebook sources; a Dask task graph is pickled and sent to every worker, and shows in the
dashboard. So ``key``/``secret``/``token`` (and the other names that hold a credential)
are refused there: the stores' own credential chains supply them instead (for s3fs,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, an instance role; for
``oss://``, the Alibaba Cloud chain of :mod:`kmsnb.storage._oss`), as does fsspec's own
configuration (``AWS_ENDPOINT_URL``, ``FSSPEC_S3_*``, ``~/.config/fsspec``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kmsnb._context import parse_pairs

__all__ = ["CREDENTIAL_OPTIONS", "check_no_credentials", "parse_storage_options"]

#: The ``storage_options`` that hold a credential (s3fs's and kmsnb's ``oss://``).
CREDENTIAL_OPTIONS: Final = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "credential",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    }
)
#: Text values that mean a boolean (``anon=true``): anything else stays a string.
_BOOLEANS: Final = {"true": True, "false": False}


def check_no_credentials(storage_options: Mapping[str, Any] | None, *, where: str) -> None:
    """Refuse credentials in ``storage_options`` that would be seen ``where``.

    Raises:
        ValueError: naming the options, never their values.
    """
    if not storage_options:
        return
    found = sorted(name for name in storage_options if name.lower() in CREDENTIAL_OPTIONS)
    nested = storage_options.get("client_kwargs")
    if isinstance(nested, Mapping):
        found += sorted(f"client_kwargs.{name}" for name in nested if name in CREDENTIAL_OPTIONS)
    if found:
        raise ValueError(
            f"storage option(s) {', '.join(found)} hold credentials, which {where}; leave "
            "them to the store's credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or ~/.aws for s3://, ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, a profile or a RAM "
            "role for oss://)"
        )


def parse_storage_options(pairs: Iterable[str] | None) -> dict[str, Any] | None:
    """``["KEY=VALUE", ...]`` as ``storage_options``, by the one ``KEY=VALUE`` rule.

    ``true``/``false`` (any case) become booleans; every other value stays a string.

    Raises:
        ValueError: a malformed pair (named), or a credential (see
            :func:`check_no_credentials`).
    """
    options = parse_pairs(pairs, what="storage option")
    if options is None:
        return None
    check_no_credentials(options, where="a command line shows to other users and keeps")
    return {name: _BOOLEANS.get(value.lower(), value) for name, value in options.items()}
