"""The small KMS interface that the envelope layer depends on.

The envelope never imports a concrete backend: it takes any object with these two methods.
Backends (the local emulator, Alibaba Cloud KMS, the in-memory fake in :mod:`kmsnb.testing`,
the data-key cache) implement them and import only this module and :mod:`kmsnb.errors`.
Column-level encryption also needs :class:`WrappingKms`: the API's Encrypt and Decrypt of a
small key that kmsnb made itself (a Parquet key-encryption key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, TypeGuard, cast, runtime_checkable

# wipe lives below kms/ and emulator/ so that neither imports the other for it; it stays
# importable from here, where the key types that use it are.
from kmsnb._wipe import wipe

if TYPE_CHECKING:
    from kmsnb.kms._info import AliasInfo, KeyInfo, KeyVersionInfo, WrappedKey

__all__ = [
    "DATA_KEY_SIZE",
    "MAX_WRAPPED_PLAINTEXT_SIZE",
    "AliasInfo",
    "DataKey",
    "KeyInfo",
    "KeyVersionInfo",
    "Kms",
    "KmsClient",
    "SizeAwareKms",
    "UnwrappedKey",
    "WrappedKey",
    "WrappingKms",
    "canonical_context",
    "for_message",
    "is_kms",
    "wipe",
]

#: Size of the data keys kmsnb asks the KMS for (``KeySpec=AES_256``).
DATA_KEY_SIZE = 32

#: Largest plaintext :meth:`WrappingKms.encrypt` takes: its base64 text must fit the 6 KB
#: the API's Encrypt accepts.
MAX_WRAPPED_PLAINTEXT_SIZE = 4096


def canonical_context(encryption_context: Mapping[str, str] | None) -> dict[str, str]:
    """Return a plain ``dict`` copy of an encryption context after checking its types.

    Raises:
        TypeError: if the context is not a mapping of ``str`` to ``str``.
    """
    if encryption_context is None:
        return {}
    if not isinstance(encryption_context, Mapping):
        raise TypeError(
            f"encryption_context must be a mapping of str to str, "
            f"not {type(encryption_context).__name__}"
        )
    context: dict[str, str] = {}
    for key, value in encryption_context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("encryption_context keys and values must be str")
        context[key] = value
    return context


class DataKey:
    """A data key returned by the KMS's GenerateDataKey: in plaintext and wrapped.

    The plaintext is a ``bytearray`` so that it can be wiped in place; use the instance as
    a context manager, or call :meth:`wipe`, when done. ``repr`` never shows it.

    Attributes:
        key_id: the id of the master key (CMK) that wrapped it, as the KMS resolved it.
        key_version_id: the version of that master key.
        plaintext: the data key itself.
        ciphertext_blob: the wrapped data key, the KMS's opaque base64 ``CiphertextBlob``.
    """

    __slots__ = ("ciphertext_blob", "key_id", "key_version_id", "plaintext")

    def __init__(
        self, key_id: str, key_version_id: str, plaintext: bytearray, ciphertext_blob: str
    ) -> None:
        if not isinstance(plaintext, bytearray):
            raise TypeError("DataKey.plaintext must be a bytearray so that it can be wiped")
        self.key_id = key_id
        self.key_version_id = key_version_id
        self.plaintext = plaintext
        self.ciphertext_blob = ciphertext_blob

    def wipe(self) -> None:
        """Zero the plaintext key in place."""
        wipe(self.plaintext)

    def __enter__(self) -> DataKey:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return (
            f"DataKey(key_id={self.key_id!r}, key_version_id={self.key_version_id!r}, "
            f"plaintext=<{len(self.plaintext)} bytes, hidden>, "
            f"ciphertext_blob=<{len(self.ciphertext_blob)} chars>)"
        )


class UnwrappedKey:
    """A key as the KMS's Decrypt returned it, and which master key unwrapped it.

    A data key (:meth:`Kms.decrypt_data_key`), or a key that :meth:`WrappingKms.encrypt`
    wrapped (:meth:`WrappingKms.decrypt`).

    A file's header says which master key wrapped its data key, but the writer chose what
    it says; the KMS's Decrypt answer names the key that really did (``KeyId`` and
    ``KeyVersionId``), and readers compare the two before they release any plaintext.

    The plaintext is a ``bytearray`` so that it can be wiped in place; use the instance as
    a context manager, or call :meth:`wipe`, when done. ``repr`` never shows it.

    Attributes:
        key_id: the id of the master key (CMK) that unwrapped it, as the KMS names it.
        key_version_id: the version of that master key.
        plaintext: the data key itself.
    """

    __slots__ = ("key_id", "key_version_id", "plaintext")

    def __init__(self, key_id: str, key_version_id: str, plaintext: bytearray) -> None:
        if not isinstance(plaintext, bytearray):
            raise TypeError("UnwrappedKey.plaintext must be a bytearray so that it can be wiped")
        names: tuple[object, object] = (key_id, key_version_id)  # checked: backends parse them
        if not all(isinstance(name, str) for name in names):
            wipe(plaintext)
            raise TypeError("UnwrappedKey.key_id and key_version_id must be str")
        self.key_id = key_id
        self.key_version_id = key_version_id
        self.plaintext = plaintext

    def wipe(self) -> None:
        """Zero the plaintext key in place."""
        wipe(self.plaintext)

    def __enter__(self) -> UnwrappedKey:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return (
            f"UnwrappedKey(key_id={self.key_id!r}, key_version_id={self.key_version_id!r}, "
            f"plaintext=<{len(self.plaintext)} bytes, hidden>)"
        )


@runtime_checkable
class Kms(Protocol):
    """What the envelope needs from a KMS: make a data key, and unwrap one.

    Implementations raise :class:`kmsnb.errors.KmsError` (or a subclass) when the service
    fails, and :class:`kmsnb.errors.WrongKeyError` when it refuses to unwrap a blob under
    the given encryption context. ``decrypt_data_key`` returns the key id and version that
    the KMS's Decrypt answer names, unchanged: readers check them against the file.
    A KMS that also has ``describe_key`` (every :class:`KmsClient`) lets readers resolve
    aliases and ARNs, in headers and in ``allowed_keys``.
    """

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        """Return a fresh 32-byte data key, in plaintext and wrapped by ``key_id``."""
        ...

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap a ``CiphertextBlob``: the key, and the master key the KMS says unwrapped
        it. The caller wipes the returned key."""
        ...


_KMS_METHODS = ("generate_data_key", "decrypt_data_key")
_kms_types: set[type] = set()  # classes that define the methods of Kms themselves


def is_kms(value: object) -> TypeGuard[Kms]:
    """``isinstance(value, Kms)``, remembered per class when the class itself has the methods.

    A runtime protocol check walks the protocol's members on every call, some 14 us, as
    much as the rest of the checks of a 4 KiB file; a class that defines the methods
    answers the same for every instance, so it is looked up once.
    """
    kind = type(value)
    if kind in _kms_types:
        return True
    if not isinstance(value, Kms):
        return False
    if all(callable(getattr(kind, name, None)) for name in _KMS_METHODS):
        _kms_types.add(kind)
    return True


class SizeAwareKms(Kms, Protocol):
    """A KMS that wants to know how large the message it makes a data key for will be.

    The data-key cache is one: it may reuse a key only within a byte budget, so it can
    serve a message only when its size is known.
    """

    def sized(self, plaintext_size: int) -> Kms:
        """A view that makes data keys for one message of ``plaintext_size`` bytes."""
        ...


def for_message(kms: Kms, plaintext_size: int | None) -> Kms:
    """``kms``, told the size of the next message when it is known and ``kms`` cares.

    Only a class that defines ``sized`` itself counts: a wrapper that forwards unknown
    attributes to the KMS inside must not be bypassed through that forwarding.
    """
    if plaintext_size is None or not callable(getattr(type(kms), "sized", None)):
        return kms
    return cast(SizeAwareKms, kms).sized(plaintext_size)


@runtime_checkable
class WrappingKms(Protocol):
    """A KMS that wraps small keys of the caller's: the API's Encrypt and Decrypt.

    Column-level encryption wraps each Parquet key-encryption key this way, as Spark's
    and parquet-java's ``KmsClient.wrapKey`` does, so that other engines can unwrap it.
    The KMS encrypts the **base64 text** of the bytes (the convention of Alibaba Cloud's
    SDKs and of GenerateDataKey's blobs), and ``decrypt`` decodes it again.
    """

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Wrap ``plaintext`` (at most :data:`MAX_WRAPPED_PLAINTEXT_SIZE` bytes) under
        ``key_id``'s primary version; return the ``CiphertextBlob`` and the key it names."""
        ...

    def decrypt(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap what :meth:`encrypt` made: the bytes, and the master key the KMS's
        Decrypt answer names. The caller wipes the returned key."""
        ...


@runtime_checkable
class KmsClient(Kms, WrappingKms, Protocol):
    """A KMS that users can also manage keys with: what :func:`kmsnb.connect` returns.

    Every ``key_id`` argument accepts a key id, an alias (``alias/name``) or an ARN.
    """

    #: A one-line, secret-free description of where the keys live, for status displays.
    location: str

    def create_key(self, description: str = "") -> KeyInfo: ...

    def describe_key(self, key_id: str) -> KeyInfo: ...

    def list_keys(self) -> list[KeyInfo]: ...

    def enable_key(self, key_id: str) -> None: ...

    def disable_key(self, key_id: str) -> None: ...

    def schedule_key_deletion(self, key_id: str, pending_window_in_days: int) -> None: ...

    def cancel_key_deletion(self, key_id: str) -> None: ...

    def create_alias(self, alias_name: str, key_id: str) -> None: ...

    def update_alias(self, alias_name: str, key_id: str) -> None: ...

    def delete_alias(self, alias_name: str) -> None: ...

    def list_aliases(self, key_id: str | None = None) -> list[AliasInfo]: ...

    def create_key_version(self, key_id: str) -> KeyVersionInfo: ...

    def list_key_versions(self, key_id: str) -> list[KeyVersionInfo]: ...

    def re_encrypt(
        self,
        ciphertext_blob: str,
        destination_key_id: str,
        *,
        source_encryption_context: Mapping[str, str] | None = None,
        destination_encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey: ...


# The answers of key management and of Encrypt/ReEncrypt (dataclasses) live in
# kmsnb.kms._info and are loaded when first named: a file's encryption or decryption
# (GenerateDataKey, Decrypt) never builds one, and every dataclass costs start-up.
_INFO_TYPES = frozenset({"AliasInfo", "KeyInfo", "KeyVersionInfo", "WrappedKey"})


def __getattr__(name: str) -> object:
    if name in _INFO_TYPES:
        from kmsnb.kms import _info

        return getattr(_info, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
