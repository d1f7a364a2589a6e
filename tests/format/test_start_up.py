"""What the file format and the envelope import (issue 16, start-up): checked in a subprocess.

Not a timer: the modules a fresh interpreter loads. The format builds no dataclass (the
``dataclasses`` module imports ``inspect``, ``ast`` and ``tokenize``), and hashes and MACs
with ``cryptography``, which HKDF and Cobblestone load anyway, so the standard ``hashlib``
and ``hmac`` (and OpenSSL a second time, ``_hashlib``) stay out. The seekable reader loads
on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.unit]

#: What the sequential read and write paths of the format must not load.
NOT_FOR_A_STREAM = frozenset({"dataclasses", "inspect", "ast", "hashlib", "_hashlib", "hmac"})


def _loaded(statement: str) -> set[str]:
    script = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout))


def test_the_format_loads_no_dataclasses_and_no_stdlib_hashing() -> None:
    """Header, writer and reader import neither dataclasses nor hashlib/hmac."""
    loaded = _loaded("import kmsnb._format.header, kmsnb._format.stream, kmsnb._format.writer")
    assert set() == loaded & NOT_FOR_A_STREAM
    assert "kmsnb._format.seekable" not in loaded


def test_the_envelope_loads_the_seekable_reader_on_first_use() -> None:
    """``import kmsnb.envelope`` leaves out the seekable reader and the standard hashing;
    asking for the reader loads it."""
    loaded = _loaded("import kmsnb.envelope")
    assert set() == loaded & {"kmsnb._format.seekable", "hashlib", "_hashlib", "hmac"}
    used = _loaded("from kmsnb.envelope import SeekableDecryptReader")
    assert "kmsnb._format.seekable" in used


def test_a_round_trip_loads_no_stdlib_hashing() -> None:
    """Encrypting and decrypting a small message keeps hashlib and hmac out."""
    loaded = _loaded(
        "from kmsnb.testing import InMemoryKms; from kmsnb import envelope; "
        "kms = InMemoryKms(); key = kms.create_key(); "
        "blob = envelope.encrypt_bytes(b'x' * 5000, key, kms=kms); "
        "assert envelope.decrypt_bytes(blob, kms=kms) == b'x' * 5000"
    )
    assert set() == loaded & {"hashlib", "_hashlib", "hmac", "kmsnb._format.seekable"}
