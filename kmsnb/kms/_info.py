"""What the KMS answers besides data keys: key and alias descriptions, wrapped keys.

Importable from :mod:`kmsnb.kms` (and :mod:`kmsnb.kms._base`), which load this module
when one of its names is first used: encrypting or decrypting a file builds none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AliasInfo", "KeyInfo", "KeyVersionInfo", "WrappedKey"]


@dataclass(frozen=True)
class WrappedKey:
    """A key wrapped by a master key, without its plaintext (Encrypt's or ReEncrypt's result)."""

    key_id: str
    key_version_id: str
    ciphertext_blob: str


@dataclass(frozen=True)
class KeyInfo:
    """What DescribeKey says of a master key (the fields users look at)."""

    key_id: str
    arn: str
    key_state: str  # Enabled, Disabled, PendingDeletion, PendingImport
    description: str
    creation_date: str
    primary_key_version: str
    key_spec: str = "Aliyun_AES_256"
    key_usage: str = "ENCRYPT/DECRYPT"
    deletion_date: str | None = None
    automatic_rotation: str = "Disabled"
    rotation_interval: str | None = None


@dataclass(frozen=True)
class AliasInfo:
    """An alias (``alias/...``) and the key it points to."""

    alias_name: str
    key_id: str
    alias_arn: str


@dataclass(frozen=True)
class KeyVersionInfo:
    """One version of a master key."""

    key_id: str
    key_version_id: str
    creation_date: str
