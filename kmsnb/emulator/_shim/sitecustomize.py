"""Sends every Alibaba KMS and Secrets Manager call of this interpreter to the emulator.

``kmsnb emulator exec`` puts this folder first on ``PYTHONPATH`` and names the emulator in
``KMSNB_EXEC_EMULATOR`` (``http://127.0.0.1:PORT``); Python's ``site`` module imports this
file at start-up, in every Python process of the command's tree (virtual environments
included) and in no other. Without the variable it does nothing but hand over to the next
``sitecustomize`` on ``sys.path``, which it would otherwise shadow.

Nothing is imported eagerly: an import hook patches each module below right after it has
run, so a program that never touches an Alibaba SDK pays only for this file.

========================================================  =============================
module                                                    what is patched
========================================================  =============================
``alibabacloud_kms20160120.client`` (new SDK; also the    ``Client.get_endpoint``: every
KMS 3.0 SDK's TransferClient and the Secrets Manager      client, whatever its region,
client, which subclass or wrap it)                        network or explicit endpoint,
                                                          speaks HTTP to the emulator
``aliyunsdkcore.endpoint.default_endpoint_resolver``      ``resolve`` for product kms:
(old SDK)                                                 any region string, so the
                                                          Location service
                                                          (location-readonly.aliyuncs.com)
                                                          is never asked
``urllib3.poolmanager`` and the old SDK's vendored copy   ``connection_from_host`` for a
                                                          KMS host name: a request that
                                                          names kms[-vpc|-share].REGION.
                                                          aliyuncs.com itself, over HTTPS
                                                          or HTTP, goes to the emulator
``http.client``                                           ``connect`` for a KMS host name
``alibabacloud_secretsmanager_client_v2...builder``       its ICMP ``ping`` of the real
                                                          endpoints (region ranking)
========================================================  =============================

A request redirected below the SDK keeps the ``Host`` header it was signed with; the
emulator checks signatures against the Host it receives. Standard library only; written
for Python 3.
"""

import importlib.machinery
import importlib.util
import os
import re
import socket
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_ENDPOINT_VARIABLE = "KMSNB_EXEC_EMULATOR"
# Host names of the KMS API: public, VPC and shared-gateway endpoints of every region.
_KMS_HOST = re.compile(r"kms(?:-vpc|-share)?(?:\.[A-Za-z0-9_-]+)?\.aliyuncs\.com\.?", re.I)


def _emulator_address() -> tuple[str, int] | None:
    value = os.environ.get(_ENDPOINT_VARIABLE, "")
    match = re.fullmatch(r"http://(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})/?", value)
    if match is None:
        return None
    return match.group(1).strip("[]"), int(match.group(2))


def _is_kms_host(host: object) -> bool:
    return isinstance(host, str) and _KMS_HOST.fullmatch(host) is not None


def _install(emulator_host: str, emulator_port: int) -> None:
    netloc = (
        f"[{emulator_host}]:{emulator_port}"
        if ":" in emulator_host
        else f"{emulator_host}:{emulator_port}"
    )
    endpoint = f"http://{netloc}"

    def patch_new_sdk(module: ModuleType) -> None:
        def get_endpoint(self: Any, *args: Any, **kwargs: Any) -> str:
            self._protocol = "http"
            return netloc

        module.Client.get_endpoint = get_endpoint

    def patch_old_sdk(module: ModuleType) -> None:
        resolve = module.DefaultEndpointResolver.resolve

        def resolve_kms(self: Any, request: Any) -> Any:
            if getattr(request, "product_code_lower", "") == "kms":
                return endpoint
            return resolve(self, request)

        module.DefaultEndpointResolver.resolve = resolve_kms

    def patch_pool_manager(module: ModuleType) -> None:
        connection_from_host = module.PoolManager.connection_from_host

        def redirect(
            self: Any, host: Any, port: Any = None, scheme: Any = "http", pool_kwargs: Any = None
        ) -> Any:
            if _is_kms_host(host):
                return connection_from_host(
                    self, emulator_host, emulator_port, "http", pool_kwargs=pool_kwargs
                )
            return connection_from_host(self, host, port, scheme, pool_kwargs=pool_kwargs)

        module.PoolManager.connection_from_host = redirect

    def patch_http_client(module: ModuleType) -> None:
        for connection_class in (module.HTTPConnection, module.HTTPSConnection):
            connection_class.connect = _redirected_connect(connection_class.connect)

    def _redirected_connect(connect: Callable[[Any], None]) -> Callable[[Any], None]:
        def redirected(self: Any) -> None:
            if _is_kms_host(self.host):
                self.sock = socket.create_connection(
                    (emulator_host, emulator_port), self.timeout, self.source_address
                )
                return
            connect(self)

        return redirected

    def patch_secrets_manager_client(module: ModuleType) -> None:
        # Every region is the emulator, so every region is reachable: no ping leaves.
        setattr(module, "ping_host", lambda hostname, timeout=2: 1)  # noqa: B010

    patches: dict[str, Callable[[ModuleType], None]] = {
        "alibabacloud_kms20160120.client": patch_new_sdk,
        "aliyunsdkcore.endpoint.default_endpoint_resolver": patch_old_sdk,
        "aliyunsdkcore.vendored.requests.packages.urllib3.poolmanager": patch_pool_manager,
        "urllib3.poolmanager": patch_pool_manager,
        "http.client": patch_http_client,
        "alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder": (
            patch_secrets_manager_client
        ),
    }
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchingFinder(patches))


class _PatchingFinder:
    """Finds a patched module with the other finders, then patches it once it has run."""

    def __init__(self, patches: dict[str, Callable[[ModuleType], None]]) -> None:
        self._patches = patches

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = self._patches.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader: Any = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            patch(module)

        # The loader object is this module's alone (one per file found).
        loader.exec_module = exec_and_patch
        return spec


def _run_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_address = _emulator_address()
if _address is not None:
    _install(*_address)
_run_next_sitecustomize()
