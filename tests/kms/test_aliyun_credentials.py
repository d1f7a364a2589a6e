"""No Alibaba Cloud credentials: one kmsnb error, a hint that says how to give them, and
none of the SDK's own tracebacks on stderr (issue 12); the log filter stays scoped.

Offline: the credential chain fails locally. The child process that connects to
``aliyun:cn-hangzhou`` runs with an empty environment and an empty HOME, behind a guard
that refuses, before any packet, every connection and name lookup that is not loopback
(the chain's ECS RAM role provider tries 100.100.100.200).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kmsnb._hints import FACES, hint_for
from kmsnb.errors import KmsAccessDeniedError
from kmsnb.kms._errors import credentials_missing
from kmsnb.kms._sdk_logs import SDK_LOGGER_NAMES, quiet_sdk_logs

pytestmark = [pytest.mark.unit]

_NO_CREDENTIALS = r"""
import json, socket, sys

refused = []
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
LOOPBACK = ("127.0.0.1", "::1", "localhost")

def connect(self, address):
    if address[0] not in LOOPBACK:
        refused.append(address[0])
        raise ConnectionRefusedError(f"offline test: no connection to {address[0]}")
    return _connect(self, address)

def getaddrinfo(host, *args, **kwargs):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, host)
    except (OSError, TypeError):
        if host not in LOOPBACK:
            refused.append(host)
            raise socket.gaierror(f"offline test: no lookup of {host}")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

from kmsnb._hints import FACES, hint_for
from kmsnb.connection import connect as connect_kms

kms = connect_kms("aliyun:cn-hangzhou")
try:
    kms.generate_data_key("alias/sales")
except Exception as error:
    print(json.dumps({
        "class": type(error).__name__,
        "code": getattr(error, "code", None),
        "message": str(error),
        "hints": {face: hint_for(error, face) for face in FACES},
        "refused": refused,
    }))
"""


@pytest.fixture(scope="module")
def no_credentials(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], str]:
    """What the child printed (its error) and its stderr."""
    home = tmp_path_factory.mktemp("empty-home")
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _NO_CREDENTIALS],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout), result.stderr


def test_no_credentials_is_one_access_denied_error(
    no_credentials: tuple[dict[str, object], str],
) -> None:
    found, _ = no_credentials
    assert (found["class"], found["code"]) == ("KmsAccessDeniedError", "InvalidCredentials")
    message = str(found["message"])
    assert "found no Alibaba Cloud credentials" in message
    assert "Alibaba Cloud KMS cn-hangzhou" in message
    assert "ECS RAM role" in message  # the places the chain looked, named
    assert "100.100.100.200" not in message  # not the providers' long reasons
    assert set(found["refused"]) == {"100.100.100.200"}  # the guard stopped it; nothing else


def test_the_sdk_tracebacks_do_not_reach_stderr(
    no_credentials: tuple[dict[str, object], str],
) -> None:
    _, stderr = no_credentials
    assert "Traceback" not in stderr
    assert stderr.strip() == ""


def test_the_hint_says_how_to_give_credentials_or_use_the_emulator(
    no_credentials: tuple[dict[str, object], str],
) -> None:
    hints = no_credentials[0]["hints"]
    assert isinstance(hints, dict)
    emulator = {
        "python": "kms='local:PATH'",
        "cli": "--kms local:PATH",
        "magic": "%config Kmsnb.kms = 'local:PATH'",
        "widget": "%config Kmsnb.kms = 'local:PATH'",
    }
    for face in FACES:
        hint = hints[face]
        assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in hint
        assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in hint
        assert "profile" in hint
        assert "RAM role" in hint
        assert emulator[face] in hint
        assert "state" not in hint  # not "check the key's state"


def test_credentials_missing_without_a_provider_list() -> None:
    """A chain message kmsnb does not recognise still gives the error, without a list."""
    error = credentials_missing("Alibaba Cloud KMS cn-beijing", "something else")
    assert isinstance(error, KmsAccessDeniedError)
    assert str(error).startswith("found no Alibaba Cloud credentials to call Alibaba Cloud KMS")
    assert "looked at" not in str(error)
    assert "--kms local:PATH" in (hint_for(error, "cli") or "")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_filter_drops_only_kmsnb_calls_records_on_the_sdk_loggers() -> None:
    """Inside quiet_sdk_logs the SDK loggers' records are dropped; outside it, in another
    thread meanwhile, and on any other logger, they pass; no level or handler changes."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    loggers = [logging.getLogger(name) for name in SDK_LOGGER_NAMES]
    levels = [(logger.level, list(logger.handlers)) for logger in loggers]
    records, other = _Records(), logging.getLogger("user.code")
    for logger in [*loggers, other]:
        logger.addHandler(records)
    try:
        with quiet_sdk_logs():
            for logger in loggers:
                logger.warning("inside %s", logger.name)
            other.warning("user inside")
            thread = threading.Thread(target=loggers[0].warning, args=("other thread",))
            thread.start()
            thread.join()
        loggers[0].warning("after")
    finally:
        for logger in [*loggers, other]:
            logger.removeHandler(records)
    assert records.messages == ["user inside", "other thread", "after"]
    assert (root.level, list(root.handlers)) == before
    assert [(logger.level, list(logger.handlers)) for logger in loggers] == levels
