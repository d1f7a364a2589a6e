"""``kmsnb.connection``: the KMS URI grammar, a client passed through, and naming a KMS in
messages. (The URI forms reaching each backend: tests/kms/test_connect.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import kmsnb
from kmsnb.connection import KmsUri, connect, default_kms_uri, describe_kms, parse_kms_uri
from kmsnb.kms import CachingKms
from kmsnb.kms.local import LocalKms
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


def test_a_client_passes_through_unchanged(kms: InMemoryKms) -> None:
    assert connect(kms) is kms
    cached = CachingKms(kms)
    assert connect(cached) is cached


def test_kmsnb_connect_is_this_connect() -> None:
    assert kmsnb.connect is connect


def test_neither_client_nor_uri_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="KMS URI"):
        connect(42)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("local:/keys", KmsUri("local", store_path=Path("/keys"))),
        ("local:", KmsUri("local")),
        ("LOCAL:rel/keys", KmsUri("local", store_path=Path("rel/keys"))),
        ("aliyun:cn-hangzhou", KmsUri("sdk", region_id="cn-hangzhou")),
        ("http://127.0.0.1:8765", KmsUri("sdk", endpoint="http://127.0.0.1:8765")),
        (
            "https://kms.cn-beijing.aliyuncs.com/",
            KmsUri("sdk", region_id="cn-beijing", endpoint="https://kms.cn-beijing.aliyuncs.com"),
        ),
        (" aliyun:cn-shanghai ", KmsUri("sdk", region_id="cn-shanghai")),
    ],
)
def test_the_grammar(uri: str, parsed: KmsUri) -> None:
    assert parsed == parse_kms_uri(uri)


def test_credentials_in_a_uri_are_refused_and_never_quoted() -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        parse_kms_uri("https://LTAIid:TopSecret@kms.cn-hangzhou.aliyuncs.com")
    assert "TopSecret" not in str(caught.value)


def test_pinned_uris_are_what_a_worker_can_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert f"local:{tmp_path / 'rel'}" == parse_kms_uri("local:rel").pinned()
    monkeypatch.setenv("KMSNB_EMULATOR_DIR", str(tmp_path / "default"))
    assert f"local:{tmp_path / 'default'}" == parse_kms_uri("local:").pinned()
    assert parse_kms_uri("aliyun:cn-hangzhou").pinned() == "aliyun:cn-hangzhou"
    assert parse_kms_uri("http://127.0.0.1:1/").pinned() == "http://127.0.0.1:1"


def test_default_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSNB_KMS", raising=False)
    assert default_kms_uri() == "local:"
    monkeypatch.setenv("KMSNB_KMS", "aliyun:cn-hangzhou")
    assert default_kms_uri() == "aliyun:cn-hangzhou"


def test_describe_kms_names_the_kms(tmp_path: Path, kms: InMemoryKms) -> None:
    local = LocalKms(tmp_path)
    assert f"local emulator at {tmp_path}" == describe_kms(local)
    assert describe_kms(CachingKms(local)) == describe_kms(local)  # through the cache
    assert describe_kms(kms) == "in-memory test KMS"
    assert describe_kms(_Bare()) == "the KMS client _Bare"


class _Bare:
    """A user's own KMS, which says nothing of where it is."""
