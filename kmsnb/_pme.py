"""Column-level encryption: Parquet Modular Encryption (PME) keyed by a kmsnb KMS.

pyarrow does the column work (``pyarrow.parquet.encryption``): a random data key (DEK) per
column and for the footer, AES-GCM per page. With double wrapping each DEK is wrapped by a
local key-encryption key (KEK), and only the KEKs go to the KMS: once per master key per
cache lifetime (a :class:`~kmsnb.kms.CachingKms`'s ``max_age``, else 300 s) per
``CryptoFactory``. This module keeps one factory per KMS object, so a thousand writes wrap
a handful of KEKs. The price is the same as the data-key cache's: pyarrow keeps unwrapped
KEKs for that lifetime, so a key disabled meanwhile still reads what was read before;
:func:`clear_factories` (called by ``kmsnb.session.reset``) forgets them.

:class:`ParquetKmsClient` wraps each KEK with the KMS's own Encrypt under the master key
and unwraps it with Decrypt, checking the key the answer names (:mod:`kmsnb._pme_wrap`);
the footer's key material records which KMS (``kmsInstanceID``, ``kmsInstanceURL``), so
Spark, parquet-java and plain pyarrow read kmsnb's files with a small KMS client of their
own (``docs/column-keys.md``). How kmsnb's DataFrame readers and writers use this, the
encryption context included, is :mod:`kmsnb._pme_io`.

pyarrow 26 lets a Python exception raised in a ``KmsClient`` propagate unchanged; builds
that turn it into ``OSError`` text lose the class, so the client also records the kmsnb
error for the calling thread and :func:`translated_errors` raises it again.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import hashlib
import io
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kmsnb import session
from kmsnb._context import check_encryption_context
from kmsnb._key_check import AllowedKeys, resolve_allowed_keys
from kmsnb._pme_wrap import unwrap_kek, wrap_kek
from kmsnb._text import check_no_control_characters
from kmsnb.errors import FormatError, IntegrityError, KmsnbError
from kmsnb.kms._base import Kms, WrappingKms
from kmsnb.kms.caching import DEFAULT_MAX_AGE, CachingKms

_MISSING_PME = (
    "this pyarrow build has no Parquet modular encryption (it was built without "
    "PARQUET_REQUIRE_ENCRYPTION, as some conda and minimal builds are); install the PyPI "
    "wheel (pip install pyarrow), or write without columns= to encrypt the whole file"
)
#: The oldest pyarrow (major version) column mode works on, the floor in pyproject.toml:
#: pyarrow 21 added uniform encryption, and before 26 a read of some columns unwrapped the
#: keys of the others too, so a reader without one column's key could read no column.
PYARROW_MIN_VERSION = 26

try:
    import pyarrow.parquet.encryption as pe
except ImportError as _error:  # pragma: no cover - the PyPI wheel has it
    raise ImportError(_MISSING_PME) from _error

__all__ = [
    "PYARROW_MIN_VERSION",
    "Failures",
    "ParquetKmsClient",
    "check_support",
    "clear_factories",
    "crypto_factory",
    "decryption_properties",
    "encryption_properties",
    "kms_instance",
    "translated_errors",
]

_CONTEXT_CONF = "kmsnb.encryption_context"
_CHECK_CONF = "kmsnb.check_context"
_ALLOWED_CONF = "kmsnb.allowed_keys"
_FACTORY_CACHE_SIZE = 8
# Parquet's name for "not said" (parquet-java's KmsClient.KMS_INSTANCE_ID_DEFAULT).
_INSTANCE_DEFAULT = "DEFAULT"
# The access token of writes: it names pyarrow's KEK cache, it is not a credential.
_WRITE_TOKEN = "kmsnb-write"  # noqa: S105


class _EchoClient(pe.KmsClient):  # type: ignore[misc]
    """Wraps nothing: only for the capability probe."""

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return base64.b64encode(key_bytes).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return base64.b64decode(wrapped_key)


def _too_old(version: str) -> str | None:
    """The error for a pyarrow older than :data:`PYARROW_MIN_VERSION` (``None``: new enough,
    or a version string this cannot read, which the round trip then tests)."""
    major = re.match(r"\d+", version)
    if major is None or int(major[0]) >= PYARROW_MIN_VERSION:
        return None
    return (
        f"column-level encryption needs pyarrow >= {PYARROW_MIN_VERSION}, and this is "
        f"pyarrow {version} (pyarrow 21 added uniform encryption; from 26 a reader needs only "
        f"the keys of the columns it reads); pip install 'pyarrow>={PYARROW_MIN_VERSION}', or "
        "write without columns= to encrypt the whole file"
    )


@functools.cache
def check_support() -> None:
    """Check, once, that this pyarrow can write and read an encrypted file.

    First its version (:data:`PYARROW_MIN_VERSION`); then, since
    ``pyarrow.parquet.encryption`` can import and still fail at run time in builds
    without the C++ side, a one-row file makes the round trip in memory.

    Raises:
        ImportError: the installed pyarrow is too old, or lacks Parquet modular
            encryption. (An ``ImportError``, as for a missing optional dependency, because
            the fix is an install; whole-file encryption works without it.)
    """
    too_old = _too_old(pa.__version__)
    if too_old is not None:
        raise ImportError(too_old)
    try:
        factory = pe.CryptoFactory(lambda _config: _EchoClient())
        config = pe.KmsConnectionConfig()
        sink = io.BytesIO()
        table = pa.table({"probe": [1]})
        properties = factory.file_encryption_properties(
            config, pe.EncryptionConfiguration(footer_key="probe", uniform_encryption=True)
        )
        pq.write_table(table, sink, encryption_properties=properties)
        read = pq.read_table(
            pa.BufferReader(sink.getvalue()),
            decryption_properties=factory.file_decryption_properties(
                config, pe.DecryptionConfiguration()
            ),
        )
    except (OSError, NotImplementedError, TypeError, ValueError) as error:
        raise ImportError(_MISSING_PME) from error
    if not read.equals(table):
        raise ImportError(_MISSING_PME + " (an encrypted round trip changed the data)")


# -- errors ---------------------------------------------------------------------------------

_holder = threading.local()


@dataclass
class Failures:
    """What the KMS client refused in a :func:`translated_errors` block, last first."""

    errors: list[tuple[KmsnbError, str | None]]

    @property
    def master_key_id(self) -> str | None:
        """The master key whose unwrap failed last (``None``: none did)."""
        return self.errors[-1][1] if self.errors else None


@contextlib.contextmanager
def translated_errors() -> Iterator[Failures]:
    """Turn what pyarrow raises around PME into kmsnb errors, keeping the KMS's own."""
    failures = Failures([])
    _holder.failures = failures
    try:
        yield failures
    except KmsnbError:
        raise
    except (OSError, pa.ArrowException) as error:
        if failures.errors:
            raise failures.errors[-1][0] from error
        text = str(error)
        lowered = text.lower()
        if ("decryption" in lowered or "signature verification" in lowered) and (
            "failed" in lowered
        ):
            raise IntegrityError(
                "encrypted Parquet data or metadata failed authentication; the file is "
                "corrupted or was tampered with"
            ) from error
        if "no decryption found" in text or "not encrypted" in text.lower():
            raise FormatError(f"{text}; check the file is column-encrypted by kmsnb") from error
        raise
    finally:
        _holder.failures = None


def _record(error: KmsnbError, master_key_id: str | None = None) -> None:
    failures = getattr(_holder, "failures", None)
    if failures is not None:
        failures.errors.append((error, master_key_id))


# -- the KMS client pyarrow calls -----------------------------------------------------------


class ParquetKmsClient(pe.KmsClient):  # type: ignore[misc]
    """A ``pyarrow.parquet.encryption.KmsClient`` that wraps KEKs with a kmsnb KMS.

    Hand it to pyarrow's ``CryptoFactory`` to read kmsnb's column-encrypted files with
    plain pyarrow::

        factory = pe.CryptoFactory(lambda config: ParquetKmsClient(kms))
        properties = factory.file_decryption_properties(
            pe.KmsConnectionConfig(), pe.DecryptionConfiguration())
        table = pq.read_table(path, decryption_properties=properties)

    It wraps a KEK as the KMS's Encrypt of its base64 text, with no encryption context
    (what Spark's and parquet-java's ``KmsClient.wrapKey`` do), and unwraps with Decrypt,
    checking the master key the answer names (:mod:`kmsnb._pme_wrap`). It also unwraps the
    envelopes of kmsnb 0.1 and of the development builds after it.

    Args:
        kms: the KMS (:class:`~kmsnb.kms.WrappingKms`; a plain
            :class:`~kmsnb.kms.Kms` reads only the older envelopes).
        encryption_context: when unwrapping an older envelope, the context it must carry
            (``None``: whatever it carries, which the KMS checks). Files kmsnb writes now
            keep the context in their metadata, which ``kmsnb.read_parquet`` checks.
        allowed_keys: when unwrapping, the master keys (ids, aliases or ARNs) a column
            key may be under; ``None`` accepts the key the file names for it.
    """

    def __init__(
        self,
        kms: Kms | WrappingKms,
        encryption_context: Mapping[str, str] | None = None,
        allowed_keys: Iterable[str] | AllowedKeys | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(kms, Kms | WrappingKms):
            raise TypeError("kms must be a KMS client (encrypt and decrypt)")
        self._kms = kms
        self._expected = check_encryption_context(encryption_context)
        self._allowed = resolve_allowed_keys(kms, allowed_keys)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"ParquetKmsClient({self._kms!r})"

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        try:
            if not isinstance(self._kms, WrappingKms):
                raise TypeError(
                    f"column-level encryption wraps its keys with the KMS's Encrypt; "
                    f"{type(self._kms).__name__} has no encrypt (kmsnb.kms.WrappingKms)"
                )
            return wrap_kek(self._kms, key_bytes, master_key_identifier)
        except KmsnbError as error:
            _record(error, master_key_identifier)
            raise

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        try:
            return unwrap_kek(
                self._kms,  # type: ignore[arg-type]
                wrapped_key,
                master_key_identifier,
                expected_context=self._expected,
                allowed=self._allowed,
            )
        except KmsnbError as error:
            _record(error, master_key_identifier)
            raise


# -- factories and properties ---------------------------------------------------------------

_factories_lock = threading.Lock()
_factories: OrderedDict[int, tuple[object, Any]] = OrderedDict()


def crypto_factory(kms: Kms | WrappingKms) -> pe.CryptoFactory:
    """The process's ``CryptoFactory`` for ``kms``: one per KMS, so its KEK cache is reused."""
    with _factories_lock:
        found = _factories.get(id(kms))
        if found is not None and found[0] is kms:
            _factories.move_to_end(id(kms))
            return found[1]

    def make_client(config: pe.KmsConnectionConfig) -> ParquetKmsClient:
        conf = config.custom_kms_conf
        context = json.loads(conf.get(_CONTEXT_CONF, "{}"))
        allowed = conf.get(_ALLOWED_CONF)
        return ParquetKmsClient(
            kms,
            context if conf.get(_CHECK_CONF) == "1" else None,
            None if allowed is None else AllowedKeys(tuple((n, k) for n, k in json.loads(allowed))),
        )

    factory = pe.CryptoFactory(make_client)
    with _factories_lock:
        _factories[id(kms)] = (kms, factory)
        while len(_factories) > _FACTORY_CACHE_SIZE:
            _factories.popitem(last=False)
    return factory


def clear_factories() -> None:
    """Forget every factory (and so pyarrow's cached KEKs); for tests and session resets."""
    with _factories_lock:
        factories = [factory for _, factory in _factories.values()]
        _factories.clear()
    for factory in factories:
        factory.remove_cache_entries_for_all_tokens()


# pyarrow's KEK cache is per KMS: forget it when the session's KMS is replaced.
session.on_kms_change(clear_factories)


def kms_instance(kms: object) -> tuple[str, str]:
    """``(kmsInstanceID, kmsInstanceURL)`` for the footer's key material: the region (or
    ``emulator``) and the endpoint, ``local`` for the in-process emulator, Parquet's
    ``DEFAULT`` for a KMS that does not say (the data-key cache says what it wraps)."""
    instance_id = getattr(kms, "kms_instance_id", None)
    instance_url = getattr(kms, "kms_instance_url", None)
    if isinstance(instance_id, str) and isinstance(instance_url, str):
        return instance_id, instance_url
    return _INSTANCE_DEFAULT, _INSTANCE_DEFAULT


def _connection_config(
    context: dict[str, str] | None, allowed: AllowedKeys | None = None
) -> pe.KmsConnectionConfig:
    # pyarrow caches clients and KEKs per access token, so the token names what the
    # client was built with: the same context, check and allowed keys share a cache,
    # others don't (a KEK unwrapped without allowed_keys must not serve a read with them).
    encoded = json.dumps(dict(sorted((context or {}).items())), separators=(",", ":"))
    check = "0" if context is None else "1"
    conf = {_CONTEXT_CONF: encoded, _CHECK_CONF: check}
    if allowed is not None:
        conf[_ALLOWED_CONF] = json.dumps(sorted(allowed.entries), separators=(",", ":"))
    token_source = "\x00".join([check, encoded, conf.get(_ALLOWED_CONF, "")])
    token = hashlib.sha256(token_source.encode()).hexdigest()[:32]
    return pe.KmsConnectionConfig(key_access_token=token, custom_kms_conf=conf)


def _cache_lifetime(kms: object) -> datetime.timedelta:
    max_age = kms.max_age if isinstance(kms, CachingKms) else DEFAULT_MAX_AGE
    return datetime.timedelta(seconds=max_age)


def encryption_properties(
    kms: WrappingKms,
    footer_key_id: str,
    column_keys: Mapping[str, Sequence[str]],
    encryption_context: Mapping[str, str] | None = None,
    *,
    uniform: bool = False,
) -> Any:
    """New ``FileEncryptionProperties`` for one file (never reuse them: they hold DEKs).

    Args:
        kms: the KMS.
        footer_key_id: the master key of the (encrypted) footer.
        column_keys: master key → Parquet column paths, as pyarrow wants it.
        encryption_context: the context the file will carry (checked here; the caller
            stores it in the file's metadata, :mod:`kmsnb._pme_io`).
        uniform: one key for the footer and every column (``column_keys`` is ignored):
            what DuckDB and ``polars`` can read with the footer's data key alone.
    """
    check_encryption_context(encryption_context)  # the caller stores it; refuse it first
    check_no_control_characters(footer_key_id, "the footer's key id")
    keys = {key: list(paths) for key, paths in column_keys.items() if paths}
    configuration = pe.EncryptionConfiguration(
        footer_key=footer_key_id,
        # pyarrow wants one or the other; a frame without columns has only a footer.
        **({"column_keys": keys} if keys and not uniform else {"uniform_encryption": True}),
        encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False,
        double_wrapping=True,
        cache_lifetime=_cache_lifetime(kms),
        internal_key_material=True,
        data_key_length_bits=256,
    )
    instance_id, instance_url = kms_instance(kms)
    # The KEK wrap takes no context, so writes under every context share the KEK cache.
    config = pe.KmsConnectionConfig(
        kms_instance_id=instance_id, kms_instance_url=instance_url, key_access_token=_WRITE_TOKEN
    )
    return crypto_factory(kms).file_encryption_properties(config, configuration)


def decryption_properties(
    kms: Kms | WrappingKms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | AllowedKeys | None = None,
) -> Any:
    """``FileDecryptionProperties`` that unwrap through ``kms``.

    Args:
        encryption_context: the context older envelopes must carry (see
            :class:`ParquetKmsClient`); ``None`` accepts the file's.
        allowed_keys: the master keys the column keys may be under, resolved through the
            KMS now; ``None`` accepts the key the file names for each.
    """
    context = check_encryption_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)  # type: ignore[arg-type]
    return crypto_factory(kms).file_decryption_properties(
        _connection_config(context, allowed),
        pe.DecryptionConfiguration(cache_lifetime=_cache_lifetime(kms)),
    )
