"""Fixtures that run the emulator's HTTP server on 127.0.0.1 for the SDK tests.

Each test gets its own keystore directory and a server on a free port, stopped afterwards.
The proxy variables are cleared: both Alibaba SDKs send even 127.0.0.1 traffic to
``HTTP_PROXY`` and ignore ``NO_PROXY`` (``docs/kms-api.md``, "Reaching an endpoint").
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kmsnb.emulator.faults import FaultConfig
from kmsnb.emulator.server import EmulatorServer
from kmsnb.emulator.service import KmsService
from kmsnb.emulator.store import KeyStore
from kmsnb.errors import KmsError

ACCESS_KEY_ID = "LTAI5tFakeAccessKeyId01"
ACCESS_KEY_SECRET = "FakeAccessKeySecret0123456789abc"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@dataclass
class RunningEmulator:
    """A started server and the ways the tests talk to it."""

    server: EmulatorServer
    service: KmsService
    store_path: Path
    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = field(default=ACCESS_KEY_SECRET, repr=False)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def netloc(self) -> str:
        return self.server.endpoint.removeprefix("http://")

    def new_sdk(self, *, secret: str | None = None, **config: Any) -> Any:
        """An ``alibabacloud_kms20160120`` client; ``config`` picks the signing mode."""
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.models import Config

        return Client(
            Config(
                access_key_id=config.pop("access_key_id", self.access_key_id),
                access_key_secret=secret or self.access_key_secret,
                region_id="cn-hangzhou",
                endpoint=self.netloc,
                protocol="http",
                **config,
            )
        )

    def sdk(self, kind: str, *, secret: str | None = None, access_key_id: str | None = None) -> Any:
        """A client of one of :data:`SDK_KINDS`, with ``call(action, **params)``.

        Error responses raise :class:`KmsError` with the code, HTTP status and request id.
        """
        if kind == "old-sdk":
            return self.old_sdk(secret=secret, access_key_id=access_key_id)
        config = {"acs3": {}, "rpc-v2": {"signature_algorithm": "v2"}}.get(
            kind, {"signature_version": "v4"}
        )
        if access_key_id:
            config["access_key_id"] = access_key_id
        return NewSdk(self.new_sdk(secret=secret, **config), kind)

    def old_sdk(self, *, secret: str | None = None, access_key_id: str | None = None) -> OldSdk:
        return OldSdk(
            self.endpoint,
            access_key_id or self.access_key_id,
            secret or self.access_key_secret,
        )

    def aliyun_kms(self, **options: Any) -> Any:
        from alibabacloud_credentials.client import Client
        from alibabacloud_credentials.models import Config

        from kmsnb.kms.aliyun import AliyunKms

        credential = options.pop("credential", None) or Client(
            Config(
                type="access_key",
                access_key_id=self.access_key_id,
                access_key_secret=options.pop("secret", self.access_key_secret),
            )
        )
        return AliyunKms(endpoint=self.endpoint, credential=credential, **options)


class OldSdk:
    """``aliyunsdkcore`` + ``aliyunsdkkms``: ``call("GenerateDataKey", KeyId=...)`` → dict.

    Maps and lists are sent as ``json.dumps`` text (spaces, ``\\u`` escapes), as users of
    the old SDK write them: different bytes from the new SDK's for the same context.
    """

    name = "old-sdk"

    def __init__(self, endpoint: str, access_key_id: str, secret: str) -> None:
        from aliyunsdkcore.client import AcsClient

        self._endpoint = endpoint
        self.client = AcsClient(access_key_id, secret, "cn-hangzhou")

    def call(self, action: str, **params: Any) -> Any:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        module = importlib.import_module(f"aliyunsdkkms.request.v20160120.{action}Request")
        request = getattr(module, f"{action}Request")()
        request.set_endpoint(self._endpoint)
        for name, value in params.items():
            if isinstance(value, dict | list):
                value = json.dumps(value)
            getattr(request, f"set_{name}")(value)
        try:
            return json.loads(self.client.do_action_with_exception(request))
        except ServerException as error:
            raise _api_error(
                error.get_error_code(), error.get_http_status(), error.get_request_id()
            ) from error


class NewSdk:
    """``alibabacloud_kms20160120`` through its typed methods and models; bodies as dicts."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def call(self, action: str, **params: Any) -> Any:
        from alibabacloud_kms20160120 import models
        from Tea.exceptions import TeaException

        snake = _snake_case(action)
        request = getattr(models, f"{action}Request")(
            **{_snake_case(name): value for name, value in params.items()}
        )
        try:
            return getattr(self.client, snake)(request).body.to_map()
        except TeaException as error:
            data = error.data if isinstance(error.data, dict) else {}
            raise _api_error(
                str(error.code), data.get("statusCode"), data.get("RequestId")
            ) from error


def _api_error(code: str, http_status: int | None, request_id: str | None) -> KmsError:
    # KmsError only as a carrier of code, status and request id, whichever SDK got them;
    # it keeps tests free of "from conftest import", which pytest may resolve to another
    # directory's conftest.
    return KmsError(code, code=code, http_status=http_status, request_id=request_id)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: The SDK configurations a test taking the ``sdk_kind`` argument runs under.
SDK_KINDS = ("acs3", "rpc-v2", "acs4", "old-sdk")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdk_kind" in metafunc.fixturenames:
        metafunc.parametrize("sdk_kind", SDK_KINDS)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def start_emulator(tmp_path: Path, no_proxy: None) -> Iterator[Callable[..., RunningEmulator]]:
    """Start servers (``faults=``, ``service=``, other EmulatorServer options); all stop
    after the test."""
    running: list[RunningEmulator] = []

    def start(
        *, faults: FaultConfig | None = None, service: KmsService | None = None, **options: Any
    ) -> RunningEmulator:
        store_path = tmp_path / f"store{len(running)}"
        service = service or KmsService(KeyStore(store_path))
        server = EmulatorServer(
            service, credentials={ACCESS_KEY_ID: ACCESS_KEY_SECRET}, faults=faults, **options
        ).start()
        emulator = RunningEmulator(server=server, service=service, store_path=store_path)
        running.append(emulator)
        return emulator

    yield start
    for emulator in running:
        emulator.server.stop()
        emulator.service.store.close()


@pytest.fixture
def emulator(start_emulator: Callable[..., RunningEmulator]) -> RunningEmulator:
    """A running emulator server with an empty keystore."""
    return start_emulator()
