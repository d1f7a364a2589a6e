"""Run an unchanged program against the emulator: ``kmsnb emulator exec -- CMD ARGS...``.

The goal is LocalStack's for AWS: a script written for Alibaba Cloud, such as the
envelope-encryption tutorial's (``AcsClient(ak, secret, 'Region-Id')`` and
``kms.<region>.aliyuncs.com`` over HTTPS), runs as it is and talks to a local emulator.

**How.** A ``sitecustomize`` module (:mod:`kmsnb.emulator._shim`, standard library only)
goes first on the child's ``PYTHONPATH``; it hooks the SDKs' endpoint resolution, and for
clients that name a KMS host themselves the HTTP connection, so that every KMS and Secrets
Manager request of every Python process in the child's tree goes to the emulator over
plain HTTP. The alternative, an HTTPS listener with a generated CA handed over through
``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE``, was not chosen: it still needs the host names
to resolve to 127.0.0.1 (an ``/etc/hosts`` change, for every process on the machine, or a
hook anyway), port 443 (root), a certificate for every ``kms.<region>.aliyuncs.com`` name
minted on the fly, and each SDK honouring a CA variable (the old SDK ships its own
bundle). The hook needs none of that, is undone by the child's exit, and was verified
against both SDKs, the KMS 3.0 SDK, the Secrets Manager client and the tutorial.

**What it does not reach:** interpreters started with ``-I``, ``-E`` or ``-S`` (they skip
``PYTHONPATH`` or ``site``), programs that are not Python (the Go ``aliyun`` CLI, Java),
the KMS-instance gateway protocol (``<instance>.cryptoservice.kms.aliyuncs.com``,
protobuf), and async ``aiohttp`` requests that name a KMS host themselves.

**The environment of the child:**

* ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``: the emulator's AccessKey, for the SDKs'
  default credentials chain and ``os.getenv``. An emulator started here gets a pair made
  for this run, so a request that escaped the redirection would reach Alibaba Cloud signed
  with a key it does not know and fail, instead of acting on a real account. Other
  credential variables (STS token, profile, RAM role, OIDC) are removed.
* ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``: the chain would otherwise query
  100.100.100.200.
* The Secrets Manager client's own variables (``cache_client_region_id``,
  ``credentials_type=ak`` and its key pair), and ``KMSNB_KMS`` for kmsnb itself.
* The proxy variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, lower case too) are
  removed: both SDKs send even 127.0.0.1 through a proxy and ignore ``NO_PROXY``.

Nothing outside the child's process tree changes. The emulator runs on a thread of this
process; signals (SIGINT, SIGTERM, SIGHUP) are passed on to the child, the emulator is
stopped when the child exits, and the child's exit status is returned (128 + N when a
signal N ended it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final

__all__ = [
    "ENDPOINT_VARIABLE",
    "SHIM_DIR",
    "EmulatorTarget",
    "child_environment",
    "run_child",
]

#: The folder holding the ``sitecustomize`` the child runs.
SHIM_DIR: Final = Path(__file__).resolve().parent / "_shim"
#: Names the emulator for the shim: ``http://127.0.0.1:PORT``.
ENDPOINT_VARIABLE: Final = "KMSNB_EXEC_EMULATOR"

PROXY_VARIABLES: Final = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
# Credentials of the default chain that would win over, or sit beside, the AccessKey pair.
_OTHER_CREDENTIALS: Final = (
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_CREDENTIALS_FILE",
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_ROLE_SESSION_NAME",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_CREDENTIALS_URI",
    "credentials_role_name",
    "credentials_role_arn",
    "credentials_oidc_provider_arn",
    "credentials_oidc_token_file_path",
)
_FORWARDED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WAIT_STEP_S: Final = 0.2


@dataclass(frozen=True)
class EmulatorTarget:
    """Where the child's KMS calls go, and the AccessKey they are signed with."""

    endpoint: str  # http://127.0.0.1:PORT
    access_key_id: str
    access_key_secret: str = field(repr=False)
    region_id: str = "cn-hangzhou"


def child_environment(environ: Mapping[str, str], target: EmulatorTarget) -> dict[str, str]:
    """``environ`` with the redirection to ``target`` set up (see the module docstring)."""
    env = {
        name: value
        for name, value in environ.items()
        if name not in PROXY_VARIABLES and name not in _OTHER_CREDENTIALS
    }
    region = [{"regionId": target.region_id, "endpoint": target.endpoint}]
    env.update(
        {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": target.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": target.access_key_secret,
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "cache_client_region_id": json.dumps(region),
            "credentials_type": "ak",
            "credentials_access_key_id": target.access_key_id,
            "credentials_access_secret": target.access_key_secret,
            "KMSNB_KMS": target.endpoint,
            ENDPOINT_VARIABLE: target.endpoint,
        }
    )
    python_path = environ.get("PYTHONPATH")
    env["PYTHONPATH"] = str(SHIM_DIR) + (os.pathsep + python_path if python_path else "")
    return env


def run_child(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command`` with ``env``, passing signals on; return its exit status.

    Raises:
        FileNotFoundError: the command does not exist (the caller says so in one line).
    """
    child: subprocess.Popen[bytes] | None = None
    # Signals that came while the child was being started, passed on once it exists.
    pending: list[int] = []
    # Keys typed at the terminal reach the whole foreground process group, the child
    # included: passing SIGINT on as well would interrupt it twice.
    in_foreground = _in_terminal_foreground()

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and in_foreground:
            return
        if child is None:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    with _signals_handled_by(forward):
        child = subprocess.Popen(list(command), env=dict(env))  # noqa: S603 (the user's)
        while pending:
            forward(pending.pop(0), None)
        # Wait in short steps: the kernel may hand a signal to another thread (the
        # emulator's), and CPython runs Python handlers in the main thread only, between
        # steps; a single blocking wait could then sleep through SIGTERM for good.
        while True:
            try:
                status = child.wait(timeout=_WAIT_STEP_S)
                break
            except subprocess.TimeoutExpired:
                continue
    return 128 - status if status < 0 else status


def _in_terminal_foreground() -> bool:
    try:
        return sys.stdin.isatty() and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _signals_handled_by(handler: signal.Handlers | object) -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in _FORWARDED_SIGNALS}
    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, handler)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
