"""Column-level encryption: Parquet Modular Encryption (PME) keyed by a kmsnb KMS.

pyarrow does the column work (``pyarrow.parquet.encryption``): a random data key (DEK) per
column and for the footer, AES-GCM per page. With double wrapping each DEK is wrapped by a
local key-encryption key (KEK), and only the KEKs go to the KMS: once per master key per
cache lifetime (a :class:`~kmsnb.kms.CachingKms`'s ``max_age``, else 300 s) per
``CryptoFactory``. This module keeps one factory per KMS object, so a thousand writes wrap
a handful of KEKs. The price is the same as the data-key cache's: pyarrow keeps unwrapped
KEKs for that lifetime, so a key disabled meanwhile still reads what was read before;
:func:`clear_factories` (called by ``kmsnb.session.reset``) forgets them.

The :class:`~kmsnb.kms.Kms` protocol has no Encrypt/Decrypt of caller bytes, so
:class:`ParquetKmsClient` wraps a KEK with an envelope of its own::

    data key     = kms.generate_data_key(master_key_id, encryption_context)
    wrapping key = HKDF-SHA-256(data key, salt = none, info = "kmsnb/v2 column key wrap", 32)
    sealed       = AES-256-GCM(wrapping key, nonce, KEK,
                               aad = "kmsnb-pme-kek-v2" 0x00 master_key_id 0x00 context JSON)
    wrapped KEK  = base64(JSON {"v": 2, "blob": CiphertextBlob, "context": {...},
                                "nonce": base64, "sealed": base64})

The data key is never used raw: the data-key cache may hand one data key to a column-key
wrap and to a whole file, whose payload key Cobblestone derives with its own HKDF labels,
so the wrap derives a subkey under a label of its own (version 1 used the data key itself
and is no longer read).

Unwrapping checks the stored context against the reader's (``ContextMismatchError``),
asks ``kms.decrypt_data_key(blob, context)`` (the KMS authenticates blob and context),
checks that the master key the KMS's answer names is ``master_key_id`` and one of the
reader's ``allowed_keys`` (:mod:`kmsnb._key_check`; ``WrongKeyError`` otherwise), and only
then opens ``sealed``. The wrapped KEK sits in the file's key material, readable without
keys, like a kmsnb header: it names the context, never a secret. Everything is
``cryptography`` and pyarrow; the data key is wiped after each use.

pyarrow 26 lets a Python exception raised in a ``KmsClient`` propagate unchanged; builds
that turn it into ``OSError`` text lose the class, so the client also records the kmsnb
error for the calling thread and :func:`translated_errors` raises it again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import functools
import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsnb._key_check import AllowedKeys, resolve_allowed_keys, unwrap_data_key
from kmsnb._text import check_context_has_no_control_characters, check_no_control_characters
from kmsnb.errors import ContextMismatchError, FormatError, IntegrityError, KmsnbError
from kmsnb.kms._base import Kms, canonical_context, for_message
from kmsnb.kms.caching import DEFAULT_MAX_AGE, CachingKms

_MISSING_PME = (
    "this pyarrow build has no Parquet modular encryption (it was built without "
    "PARQUET_REQUIRE_ENCRYPTION, as some conda and minimal builds are); install the PyPI "
    "wheel (pip install pyarrow), or write without columns= to encrypt the whole file"
)

try:
    import pyarrow.parquet.encryption as pe
except ImportError as _error:  # pragma: no cover - the PyPI wheel has it
    raise ImportError(_MISSING_PME) from _error

__all__ = [
    "ColumnKeys",
    "ParquetKmsClient",
    "check_context_size",
    "check_support",
    "clear_factories",
    "crypto_factory",
    "decryption_properties",
    "encryption_properties",
    "plan_column_keys",
    "translated_errors",
]

#: What ``to_parquet(columns=...)`` takes: names under ``key_id``, or names → master keys.
ColumnKeys = Sequence[str] | Mapping[str, str]

_WRAP_VERSION = 2
_AAD_LABEL = b"kmsnb-pme-kek-v2\x00"
_WRAPPING_KEY_INFO = b"kmsnb/v2 column key wrap"
_NONCE_SIZE = 12
_MAX_WRAPPED_SIZE = 16384  # a 4 KiB blob, a context of a few pairs, a KEK: far below this
_MAX_KEK_SIZE = 32
_CONTEXT_CONF = "kmsnb.encryption_context"
_CHECK_CONF = "kmsnb.check_context"
_ALLOWED_CONF = "kmsnb.allowed_keys"
_FACTORY_CACHE_SIZE = 8


class _EchoClient(pe.KmsClient):  # type: ignore[misc]
    """Wraps nothing: only for the capability probe."""

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return base64.b64encode(key_bytes).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return base64.b64decode(wrapped_key)


@functools.cache
def check_support() -> None:
    """Check, once, that this pyarrow can write and read an encrypted file.

    ``pyarrow.parquet.encryption`` can import and still fail at run time in builds
    without the C++ side, so a one-row file makes the round trip in memory.

    Raises:
        ImportError: the installed pyarrow lacks Parquet modular encryption. (An
            ``ImportError``, as for a missing optional dependency, because the fix is an
            install; whole-file encryption works without it.)
    """
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


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn what pyarrow raises around PME into kmsnb errors, keeping the KMS's own."""
    errors: list[Exception] = []
    _holder.errors = errors
    try:
        yield
    except KmsnbError:
        raise
    except OSError as error:
        if errors:
            raise errors[-1] from error
        text = str(error)
        if "decryption" in text.lower() and "failed" in text.lower():
            raise IntegrityError(
                "encrypted Parquet data or metadata failed authentication; the file is "
                "corrupted or was tampered with"
            ) from error
        if "no decryption found" in text or "not encrypted" in text.lower():
            raise FormatError(f"{text}; check the file is column-encrypted by kmsnb") from error
        raise
    finally:
        _holder.errors = None


def _record(error: Exception) -> None:
    errors = getattr(_holder, "errors", None)
    if errors is not None:
        errors.append(error)


# -- the KMS client pyarrow calls -----------------------------------------------------------


class ParquetKmsClient(pe.KmsClient):  # type: ignore[misc]
    """A ``pyarrow.parquet.encryption.KmsClient`` that wraps KEKs with a kmsnb KMS.

    Hand it to pyarrow's ``CryptoFactory`` to read kmsnb's column-encrypted files with
    plain pyarrow::

        factory = pe.CryptoFactory(lambda config: ParquetKmsClient(kms))
        properties = factory.file_decryption_properties(
            pe.KmsConnectionConfig(), pe.DecryptionConfiguration())
        table = pq.read_table(path, decryption_properties=properties)

    Args:
        kms: the KMS.
        encryption_context: sent to the KMS when wrapping; when unwrapping, the context
            the file must carry (``None``: whatever it carries, which the KMS checks).
        allowed_keys: when unwrapping, the master keys (ids, aliases or ARNs) a column
            key may be under; ``None`` accepts the key the file names for it.
    """

    def __init__(
        self,
        kms: Kms,
        encryption_context: Mapping[str, str] | None = None,
        allowed_keys: Iterable[str] | AllowedKeys | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(kms, Kms):
            raise TypeError("kms must be a KMS client (generate_data_key, decrypt_data_key)")
        self._kms = kms
        self._expected = (
            None if encryption_context is None else canonical_context(encryption_context)
        )
        self._allowed = resolve_allowed_keys(kms, allowed_keys)

    def __repr__(self) -> str:
        return f"ParquetKmsClient({self._kms!r})"

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        try:
            return _wrap(self._kms, key_bytes, master_key_identifier, self._expected or {})
        except (KmsnbError, ValueError) as error:
            _record(error)
            raise

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        try:
            return _unwrap(
                self._kms, wrapped_key, master_key_identifier, self._expected, self._allowed
            )
        except KmsnbError as error:
            _record(error)
            raise


def _associated_data(master_key_identifier: str, context: Mapping[str, str]) -> bytes:
    encoded_context = json.dumps(dict(sorted(context.items())), separators=(",", ":"))
    return (
        _AAD_LABEL
        + master_key_identifier.encode("utf-8")
        + b"\x00"
        + encoded_context.encode("utf-8")
    )


def _wrapping_key(data_key: bytearray) -> bytes:
    """The AES-256-GCM key of a column-key wrap: a subkey, never the data key itself."""
    derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAPPING_KEY_INFO)
    return derive.derive(bytes(data_key))


def _wrap(kms: Kms, kek: bytes, master_key_identifier: str, context: dict[str, str]) -> str:
    data_key = for_message(kms, len(kek)).generate_data_key(master_key_identifier, context)
    nonce = os.urandom(_NONCE_SIZE)
    with data_key:
        sealed = AESGCM(_wrapping_key(data_key.plaintext)).encrypt(
            nonce, kek, _associated_data(master_key_identifier, context)
        )
        blob = data_key.ciphertext_blob
    wrapped = _encode_wrapped(blob, context, nonce, sealed)
    if len(wrapped) > _MAX_WRAPPED_SIZE:
        raise _context_too_large(len(wrapped))
    return wrapped


def _encode_wrapped(blob: str, context: Mapping[str, str], nonce: bytes, sealed: bytes) -> str:
    document = {
        "v": _WRAP_VERSION,
        "blob": blob,
        "context": context,
        "nonce": base64.b64encode(nonce).decode("ascii"),
        "sealed": base64.b64encode(sealed).decode("ascii"),
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def _context_too_large(wrapped_size: int) -> ValueError:
    # A ValueError, as whole-file mode raises for a context over its own bound.
    return ValueError(
        f"the encryption context is too large for column-level encryption: each wrapped "
        f"column key would take {wrapped_size} characters, and readers accept at most "
        f"{_MAX_WRAPPED_SIZE}; shorten the context, or encrypt the whole file (columns=None)"
    )


def check_context_size(encryption_context: Mapping[str, str]) -> None:
    """Refuse, before any KMS call, a context whose wrapped keys could never be read back.

    The wrapped KEK embeds the context (see the module's docstring); this is its size with
    an empty CiphertextBlob, a lower bound. :func:`_wrap` checks the exact size.

    Raises:
        ValueError: the context is too large for column-level encryption.
    """
    # The smallest sealed KEK _parse_wrapped accepts: one byte and the 16-byte tag.
    smallest = len(_encode_wrapped("", encryption_context, bytes(_NONCE_SIZE), bytes(17)))
    if smallest > _MAX_WRAPPED_SIZE:
        raise _context_too_large(smallest)


def _malformed(what: str) -> FormatError:
    return FormatError(f"malformed column key material: {what}; the file was damaged")


def _parse_wrapped(wrapped_key: str) -> tuple[str, dict[str, str], bytes, bytes]:
    """Parse a wrapped KEK (unverified until the KMS and AES-GCM have spoken)."""
    if not isinstance(wrapped_key, str) or len(wrapped_key) > _MAX_WRAPPED_SIZE:
        raise _malformed("the wrapped key is too long")
    try:
        document = json.loads(base64.b64decode(wrapped_key, validate=True))
        nonce = base64.b64decode(document["nonce"], validate=True)
        sealed = base64.b64decode(document["sealed"], validate=True)
        blob = document["blob"]
        context = canonical_context(document["context"])
        version = document["v"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        # RecursionError: crafted JSON nested deeper than the parser's recursion limit.
        raise _malformed("the wrapped key does not parse (not written by kmsnb?)") from None
    if version == 1:
        raise FormatError(
            "this file's column keys use wrapping version 1 of kmsnb's development builds, "
            "which used the data key without a derived subkey and is no longer read; "
            "re-encrypt the data with the kmsnb that wrote it"
        )
    if version != _WRAP_VERSION:
        raise FormatError(f"unsupported column key wrapping version {version!r}; upgrade kmsnb")
    if not isinstance(blob, str) or not blob or len(nonce) != _NONCE_SIZE:
        raise _malformed("bad blob or nonce")
    if not 16 < len(sealed) <= _MAX_KEK_SIZE + 16:
        raise _malformed("bad sealed key size")
    return blob, context, nonce, sealed


def _unwrap(
    kms: Kms,
    wrapped_key: str,
    master_key_identifier: str,
    expected: dict[str, str] | None,
    allowed: AllowedKeys | None = None,
) -> bytes:
    blob, context, nonce, sealed = _parse_wrapped(wrapped_key)
    if expected is not None and expected != context:
        differing = sorted(
            k for k in expected.keys() | context.keys() if expected.get(k) != context.get(k)
        )
        raise ContextMismatchError(
            "the file's encryption context differs from the one given, at key(s) "
            f"{', '.join(repr(k) for k in differing)}; check which file this is"
        )
    opened: list[bytes] = []

    def open_sealed(data_key: bytearray) -> None:
        # The tag is checked before the key checks (damage is an IntegrityError, a forgery
        # a WrongKeyError); the KEK is returned only after both.
        try:
            opened.append(
                AESGCM(_wrapping_key(data_key)).decrypt(
                    nonce, sealed, _associated_data(master_key_identifier, context)
                )
            )
        except InvalidTag:
            raise IntegrityError(
                f"the wrapped column key for {master_key_identifier!r} failed authentication; "
                "the file's key material was altered"
            ) from None

    with unwrap_data_key(
        kms,
        blob,
        context,
        claimed_key_id=master_key_identifier,
        allowed=allowed,
        authenticate=open_sealed,
    ):
        return opened[0]


# -- factories and properties ---------------------------------------------------------------

_factories_lock = threading.Lock()
_factories: OrderedDict[int, tuple[Kms, Any]] = OrderedDict()


def crypto_factory(kms: Kms) -> pe.CryptoFactory:
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


def _cache_lifetime(kms: Kms) -> datetime.timedelta:
    max_age = kms.max_age if isinstance(kms, CachingKms) else DEFAULT_MAX_AGE
    return datetime.timedelta(seconds=max_age)


def encryption_properties(
    kms: Kms,
    footer_key_id: str,
    column_keys: Mapping[str, Sequence[str]],
    encryption_context: Mapping[str, str] | None = None,
) -> Any:
    """New ``FileEncryptionProperties`` for one file (never reuse them: they hold DEKs).

    Args:
        kms: the KMS.
        footer_key_id: the master key of the (encrypted) footer.
        column_keys: master key → Parquet column paths, as pyarrow wants it.
        encryption_context: sent to the KMS with each KEK.
    """
    context = canonical_context(encryption_context)
    check_no_control_characters(footer_key_id, "the footer's key id")
    check_context_has_no_control_characters(context)
    check_context_size(context)
    keys = {key: list(paths) for key, paths in column_keys.items() if paths}
    configuration = pe.EncryptionConfiguration(
        footer_key=footer_key_id,
        # pyarrow wants one or the other; a frame without columns has only a footer.
        **({"column_keys": keys} if keys else {"uniform_encryption": True}),
        encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False,
        double_wrapping=True,
        cache_lifetime=_cache_lifetime(kms),
        internal_key_material=True,
        data_key_length_bits=256,
    )
    return crypto_factory(kms).file_encryption_properties(
        _connection_config(context), configuration
    )


def decryption_properties(
    kms: Kms,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Iterable[str] | AllowedKeys | None = None,
) -> Any:
    """``FileDecryptionProperties`` that unwrap through ``kms``.

    Args:
        encryption_context: the context the file must carry; ``None`` accepts the file's.
        allowed_keys: the master keys the column keys may be under, resolved through the
            KMS now; ``None`` accepts the key the file names for each.
    """
    context = None if encryption_context is None else canonical_context(encryption_context)
    allowed = resolve_allowed_keys(kms, allowed_keys)
    return crypto_factory(kms).file_decryption_properties(
        _connection_config(context, allowed),
        pe.DecryptionConfiguration(cache_lifetime=_cache_lifetime(kms)),
    )


# -- which columns get which key ------------------------------------------------------------


def _leaf_count(data_type: pa.DataType) -> int:
    if pa.types.is_struct(data_type):
        return sum(_leaf_count(data_type.field(i).type) for i in range(data_type.num_fields))
    if pa.types.is_map(data_type):
        return _leaf_count(data_type.key_type) + _leaf_count(data_type.item_type)
    if (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
        or pa.types.is_list_view(data_type)
        or pa.types.is_large_list_view(data_type)
    ):
        return _leaf_count(data_type.value_type)
    if isinstance(data_type, pa.ExtensionType):
        return _leaf_count(data_type.storage_type)
    return 1


def plan_column_keys(
    schema: pa.Schema, leaf_paths: Sequence[str], key_id: str, columns: ColumnKeys
) -> dict[str, list[str]]:
    """Map master keys to the Parquet leaf paths they protect.

    Every leaf is encrypted: those of the named columns under their keys, the rest
    under ``key_id``. Nested columns are named by their top-level name.

    Raises:
        TypeError: ``columns`` is neither a list of names nor a mapping of names to keys.
        ValueError: a named column is not in the frame, or a key is empty.
    """
    if isinstance(columns, str) or not isinstance(columns, Sequence | Mapping):
        raise TypeError(
            "columns must be a list of column names, or a mapping of column names to "
            "master keys, such as {'ssn': 'alias/pii'}"
        )
    wanted = dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns, key_id)
    for name, master_key in wanted.items():
        if not isinstance(name, str):
            raise TypeError(f"column names must be str, not {type(name).__name__}")
        if not isinstance(master_key, str) or not master_key:
            raise ValueError(f"the key for column {name!r} must be a non-empty str")
        check_no_control_characters(master_key, f"the key for column {name!r}")
    names = schema.names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(
            f"column(s) {', '.join(repr(n) for n in unknown)} not in the DataFrame "
            f"(its columns: {', '.join(repr(n) for n in names)})"
        )
    plan: dict[str, list[str]] = {}
    paths = iter(leaf_paths)
    for field in schema:
        master_key = wanted.get(field.name, key_id)
        for _ in range(_leaf_count(field.type)):
            plan.setdefault(master_key, []).append(next(paths))
    if next(paths, None) is not None:
        raise AssertionError("kmsnb: internal error: Parquet has more leaves than the schema")
    return plan
