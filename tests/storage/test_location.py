"""resolve(): what kmsnb reads and writes, and the clear refusals of the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmsnb.errors import KmsnbError, UnsupportedStorageError
from kmsnb.storage import is_url, open_input, open_output, resolve

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("data/x.kms", "local"),
        ("file:///tmp/x.kms", "local"),
        ("s3://bucket/x.kms", "s3"),
        ("oss://bucket/x.kms", "oss"),
        ("memory://bucket/x.kms", "memory"),
    ],
)
def test_writable_stores_resolve_to_their_writer(url: str, kind: str) -> None:
    assert resolve(url, writing=True).kind == kind


def test_a_file_url_becomes_its_path(tmp_path: Path) -> None:
    assert resolve(f"file://{tmp_path}/x.kms", writing=True).path == f"{tmp_path}/x.kms"


def test_the_refusal_is_a_kmsnb_error() -> None:
    assert issubclass(UnsupportedStorageError, KmsnbError)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(UnsupportedStorageError, match=r"nosuch:// is not a protocol"):
        resolve("nosuch://bucket/x", writing=False)


def test_a_protocol_whose_package_is_missing_names_what_to_install() -> None:
    with pytest.raises(UnsupportedStorageError, match=r"no gcs:// implementation is installed"):
        open_input("gcs://bucket/x.kms")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/x.kms", "ftp://127.0.0.1/x.kms"])
def test_a_store_that_cannot_be_written_atomically_is_refused_before_writing(url: str) -> None:
    writer = open_output(url)
    with pytest.raises(UnsupportedStorageError, match=r"cannot write .* atomically"):
        writer.__enter__()  # refused before the block could run


def test_a_chained_url_is_refused_for_writing() -> None:
    with pytest.raises(UnsupportedStorageError, match="chained URLs are not writable"):
        resolve("simplecache::s3://bucket/x.kms", writing=True)


def test_an_s3fs_without_a_real_exclusive_create_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import s3fs

    monkeypatch.setattr(s3fs, "__version__", "2025.5.0")
    with pytest.raises(UnsupportedStorageError, match="silently overwrites"):
        resolve("s3://bucket/x.kms", writing=True)
    assert resolve("s3://bucket/x.kms", writing=False).kind == "s3"


def test_storage_options_with_a_local_path_are_misuse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only for fsspec URLs"):
        resolve(tmp_path / "x", storage_options={"key": "k"}, writing=True)


def test_a_part_smaller_than_s3_allows_is_misuse() -> None:
    writer = open_output("memory://bucket/x", part_size=1024)
    with pytest.raises(ValueError, match="part_size"):
        writer.__enter__()


def test_what_is_a_url() -> None:
    assert is_url("s3://b/k")
    assert is_url("simplecache::s3://b/k")
    assert not is_url("data/s3:/b/k")
    assert not is_url(Path("s3://b"))


def test_reading_works_for_any_installed_protocol(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"abc")
    with open_input(f"file://{tmp_path / 'x'}") as source:
        assert source.read() == b"abc"


def test_importing_the_storage_layer_imports_no_store_library() -> None:
    """Faces import kmsnb.storage eagerly; fsspec, s3fs and the OSS SDK load on first use."""
    import subprocess
    import sys

    code = (
        "import sys, kmsnb.storage\n"
        "heavy = {'fsspec', 's3fs', 'alibabacloud_oss_v2', 'alibabacloud_credentials'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
