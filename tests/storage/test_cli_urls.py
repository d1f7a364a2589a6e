"""``kmsnb encrypt | decrypt | inspect`` on s3:// URLs against a real S3-protocol server
(moto, 127.0.0.1), configured the way a shell user does it: fsspec's own environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...) plus ``--storage-option KEY=VALUE``; a URL
kmsnb cannot write gets its own exit status and a hint, and nothing is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kmsnb.cli import EXIT_OK, EXIT_UNSUPPORTED_STORAGE, EXIT_USAGE, main
from kmsnb.kms.local import LocalKms

from .conftest import object_keys, pending_uploads

pytestmark = pytest.mark.integration


@pytest.fixture
def shell(tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A shell's environment: a local emulator KMS with a key, AWS credentials for the
    S3 server in the environment, and the working directory a fresh folder."""
    store = tmp_path / "kms"
    with LocalKms(store) as kms:
        key = kms.create_key("cli").key_id
        kms.create_alias("alias/cli", key)
    monkeypatch.setenv("KMSNB_KMS", f"local:{store}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "sales.csv").write_bytes(b"region,amount\nnorth,1.5\n" * 50_000)
    return {"endpoint": s3_endpoint}


def test_encrypt_inspect_decrypt_with_the_endpoint_as_a_storage_option(
    shell: dict[str, str],
    bucket: str,
    s3_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    option = ["--storage-option", f"endpoint_url={shell['endpoint']}"]
    url = f"s3://{bucket}/in/sales.csv.kms"
    assert main(["encrypt", "sales.csv", "-o", url, "-k", "cli", *option]) == EXIT_OK
    assert object_keys(s3_client, bucket) == ["in/sales.csv.kms"]
    capsys.readouterr()
    assert main(["inspect", url, "--json", *option]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    size = s3_client.head_object(Bucket=bucket, Key="in/sales.csv.kms")["ContentLength"]
    assert shown["file_size"] == size
    assert main(["decrypt", url, "-o", "back.csv", *option]) == EXIT_OK
    assert Path("back.csv").read_bytes() == Path("sales.csv").read_bytes()
    # Object to object, and into a "directory" of the bucket as cp does.
    assert main(["decrypt", url, "-o", f"s3://{bucket}/out/", *option]) == EXIT_OK
    assert object_keys(s3_client, bucket) == ["in/sales.csv.kms", "out/sales.csv"]
    assert pending_uploads(s3_client, bucket) == []


def test_fsspecs_own_environment_is_enough(
    shell: dict[str, str],
    bucket: str,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", shell["endpoint"])
    url = f"s3://{bucket}/sales.csv.kms"
    assert main(["encrypt", "sales.csv", "-o", url, "-k", "cli"]) == EXIT_OK
    assert main(["encrypt", "sales.csv", "-o", url, "-k", "cli"]) == 1  # exists
    assert main(["decrypt", url, "-o", "back.csv"]) == EXIT_OK
    assert Path("back.csv").read_bytes() == Path("sales.csv").read_bytes()


def test_a_url_kmsnb_cannot_write_has_its_own_status_and_a_hint(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["encrypt", "sales.csv", "-o", "ftp://127.0.0.1:9/x.kms", "-k", "cli"])
    assert status == EXIT_UNSUPPORTED_STORAGE
    err = capsys.readouterr().err
    assert "kmsnb: error: cannot write ftp://127.0.0.1:9/x.kms atomically" in err
    assert "kmsnb: hint: " in err
    assert "--storage-option KEY=VALUE" in err
    assert sorted(os.listdir()) == ["sales.csv"]  # no ./ftp:/ folder


def test_storage_options_are_checked_as_arguments(
    shell: dict[str, str], bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://{bucket}/x.kms"
    for bad, said in [
        ("endpoint_url", "KEY=VALUE"),
        ("secret=abc", "hold credentials"),
        ("key=testing", "hold credentials"),
    ]:
        status = main(["encrypt", "sales.csv", "-o", url, "-k", "cli", "--storage-option", bad])
        assert status == EXIT_USAGE
        err = capsys.readouterr().err
        assert said in err
        assert "abc" not in err  # a value is never repeated
    status = main(["encrypt", "sales.csv", "-o", "x.kms", "-k", "cli", "--storage-option", "a=b"])
    assert status == 1
    assert "applies to URLs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["rewrap", "s3://bucket/x.kms", "-k", "cli"], ["convert", "x.cipher", "-o", "s3://b/x"]],
)
def test_rewrap_and_convert_refuse_urls_loudly(
    shell: dict[str, str], command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command) == EXIT_UNSUPPORTED_STORAGE
    assert "works on local files" in capsys.readouterr().err
