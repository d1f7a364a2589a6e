"""The emulator's keystore: master keys, aliases and key material in one directory.

**This is a development emulator, not an HSM.** Key material lives on disk encrypted with
AES-256-GCM under a *root key*, and the root key lives next to it (``root.key``) unless it
is supplied through ``KMSNB_EMULATOR_ROOT_KEY``. Anyone who can read the directory (or the
environment) can recover every key. Use it for notebooks, tests and demos; use Alibaba
Cloud KMS for data that matters.

Layout of the directory (created mode 0700; every file mode 0600):

``keystore.json``
    All metadata and the wrapped key material (see :mod:`kmsnb.emulator._records`),
    rewritten whole and atomically by each change: temp file in the same directory, flush,
    fsync, ``os.replace``, fsync of the directory. After a crash (``kill -9``, power loss)
    it holds every change whose call returned.
``root.key``
    Base64 of the 32-byte root key, unless ``KMSNB_EMULATOR_ROOT_KEY`` is set. The same
    format as the variable, so ``export KMSNB_EMULATOR_ROOT_KEY=$(cat root.key)`` works.
``lock``
    Held with ``flock`` around every read-modify-write, so that several processes (two
    notebooks and a server) can share one store.

Readers never lock: a write replaces the file in one rename, so an open sees either the
old or the new document. Each read stats the file and reloads it when its identity
(inode, size, mtime, ctime) changed, so processes see each other's changes; decrypted key
material is cached in memory, so data-key operations touch the disk only through that stat.
An identity can repeat (an inode reused within one timestamp tick), so a random write id
at the head of the file is compared too: always under the lock before a change, so that no
update is ever lost, and at most once a second for reads.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Container, Iterator
from pathlib import Path

import platformdirs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb.emulator._records import (
    KeyVersionRecord,
    StoreState,
    decode_state,
    encode_state,
    read_write_id,
)
from kmsnb.emulator._sm4 import SM4_KEY_SIZE, SM4GCM
from kmsnb.errors import KmsnbError
from kmsnb.kms._base import wipe

__all__ = [
    "DIR_ENV",
    "ROOT_KEY_ENV",
    "KeyStore",
    "KeyStoreError",
    "default_store_dir",
]

DIR_ENV = "KMSNB_EMULATOR_DIR"
ROOT_KEY_ENV = "KMSNB_EMULATOR_ROOT_KEY"

ROOT_KEY_SIZE = 32
MATERIAL_SIZE = 32
NONCE_SIZE = 12
_TAG_SIZE = 16
_STATE_FILE = "keystore.json"
_ROOT_KEY_FILE = "root.key"
_LOCK_FILE = "lock"
_TEMP_SUFFIX = ".tmp"
# How stale a read may be when a file's identity repeats; see the module docstring.
_RECHECK_SECONDS = 1.0
# Authenticated under the root key so that a wrong root key is reported as such, not as a
# failure to unwrap some key version later on.
_ROOT_CHECK_AAD = b"kmsnb emulator root key check"

_FileIdentity = tuple[int, int, int, int]


class KeyStoreError(KmsnbError):
    """The keystore cannot be used: unreadable, corrupted, or opened with another root key."""


def default_store_dir() -> Path:
    """Return the keystore directory: ``$KMSNB_EMULATOR_DIR``, else the user data dir."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("kmsnb")) / "emulator"


class KeyStore:
    """A directory of master keys shared safely by threads and processes.

    Args:
        path: the directory; by default :func:`default_store_dir`. Created if missing.
        root_key: the 32-byte root key; by default ``$KMSNB_EMULATOR_ROOT_KEY`` (base64),
            else ``root.key`` in the directory, created on first use.

    Raises:
        KeyStoreError: if the root key is malformed or does not open this keystore, or
            ``keystore.json`` is corrupted.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, root_key: bytes | None = None
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_dir()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(mode=0o700, exist_ok=True)
        self._state_path = self.path / _STATE_FILE
        self._thread_lock = threading.RLock()
        self._lock_fd = -1
        self._lock_pid = -1
        self._state: StoreState | None = None
        self._identity: _FileIdentity | None = None
        self._checked_at = 0.0
        self._aeads: dict[str, AESGCM | SM4GCM] = {}
        with self._thread_lock, self._file_lock():
            self._remove_temp_files()
            root = self._read_root_key(root_key)
        self._root = AESGCM(root)
        wipe(root)
        self._root_check = self._make_root_check()
        self.snapshot()  # fail now, not at the first call, on a wrong root key

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    def snapshot(self) -> StoreState:
        """Return the current state, reloaded if another process changed it. Read-only."""
        with self._thread_lock:
            return self._load_if_stale()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreState]:
        """Lock the store and yield a private copy of its state to change.

        When the block ends normally the copy is written atomically and becomes the
        current state; when it raises, nothing is written.
        """
        with self._thread_lock, self._file_lock():
            current = self._load_if_stale(verify=True)
            draft = current.copy()
            yield draft
            draft.generation = current.generation + 1
            draft.write_id = uuid.uuid4().hex
            self._write(draft)

    def add_version(
        self,
        state: StoreState,
        key_id: str,
        creation_time: float,
        *,
        material: bytes | bytearray | None = None,
        version_id: str | None = None,
    ) -> KeyVersionRecord:
        """Make fresh key material for ``key_id`` and add it, wrapped, to ``state``.

        The material's size follows the key's spec (16 bytes for ``Aliyun_SM4``, else 32).
        ``material`` stores given material instead (imported, Origin=EXTERNAL); with the
        ``version_id`` of an existing version it gives that version its material back.
        """
        size = SM4_KEY_SIZE if state.keys[key_id].key_spec == "Aliyun_SM4" else MATERIAL_SIZE
        if material is not None and len(material) != size:
            raise ValueError(f"key material for this key is {size} bytes")
        existing = state.versions.get(version_id) if version_id is not None else None
        version_id = version_id or str(uuid.uuid4())
        owned = bytearray(os.urandom(size)) if material is None else bytearray(material)
        nonce = os.urandom(NONCE_SIZE)
        wrapped = nonce + self._root.encrypt(nonce, owned, version_id.encode("ascii"))
        wipe(owned)
        created = existing.creation_time if existing is not None else creation_time
        version = KeyVersionRecord(version_id, key_id, created, wrapped)
        state.versions[version_id] = version
        if existing is None:
            state.keys[key_id].version_ids.append(version_id)
        return version

    def aead(self, version: KeyVersionRecord) -> AESGCM | SM4GCM:
        """Return the cipher of a key version, unwrapping its material once.

        AES-256-GCM for 32-byte material, SM4-GCM for the 16 bytes of an Aliyun_SM4 key.
        """
        with self._thread_lock:
            cached = self._aeads.get(version.version_id)
            if cached is not None:
                return cached
            nonce, sealed = (
                version.wrapped_material[:NONCE_SIZE],
                version.wrapped_material[NONCE_SIZE:],
            )
            if len(sealed) - _TAG_SIZE not in (MATERIAL_SIZE, SM4_KEY_SIZE):
                raise KeyStoreError(
                    f"key version {version.version_id} has no key material (it was deleted, "
                    "or the keystore is corrupted)"
                )
            material = bytearray(len(sealed) - _TAG_SIZE)
            try:
                self._root.decrypt_into(nonce, sealed, version.version_id.encode("ascii"), material)
            except (InvalidTag, ValueError):
                raise KeyStoreError(
                    f"key version {version.version_id} failed authentication; "
                    "the keystore is corrupted"
                ) from None
            # The cipher keeps its own copy of the key (OpenSSL cleanses it when the cipher
            # is freed); ours is wiped at once rather than kept as a second copy.
            cipher: AESGCM | SM4GCM = (
                AESGCM(material) if len(material) == MATERIAL_SIZE else SM4GCM(material)
            )
            wipe(material)
            self._aeads[version.version_id] = cipher
            return cipher

    def close(self) -> None:
        """Drop the cached key material and release the lock file."""
        with self._thread_lock:
            self._forget_ciphers(keep=())
            if self._lock_fd >= 0 and self._lock_pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = self._lock_pid = -1

    # -- reading ---------------------------------------------------------------------

    def _load_if_stale(self, *, verify: bool = False) -> StoreState:
        try:
            identity: _FileIdentity | None = _identity(os.stat(self._state_path))
        except FileNotFoundError:
            identity = None
        cached = self._state
        if cached is not None and identity == self._identity:
            now = time.monotonic()
            if not verify and now - self._checked_at < _RECHECK_SECONDS:
                return cached
            if identity is None or read_write_id(str(self._state_path)) == cached.write_id:
                self._checked_at = now
                return cached
        if identity is None:
            state = StoreState()
        else:
            with open(self._state_path, "rb") as file:
                # The identity of the file actually read, in case it was replaced meanwhile.
                identity = _identity(os.fstat(file.fileno()))
                data = file.read()
            state = self._decode(data)
        self._install(state, identity)
        return state

    def _decode(self, data: bytes) -> StoreState:
        try:
            state, root_check = decode_state(data)
        except ValueError as exc:
            raise KeyStoreError(f"{self._state_path} is not readable ({exc}); restore it") from None
        nonce, tag = root_check[:NONCE_SIZE], root_check[NONCE_SIZE:]
        try:
            self._root.decrypt(nonce, tag, _ROOT_CHECK_AAD)
        except (InvalidTag, ValueError):
            raise KeyStoreError(
                f"the root key does not open the keystore in {self.path}; "
                f"check {ROOT_KEY_ENV} or {_ROOT_KEY_FILE}"
            ) from None
        return state

    def _install(self, state: StoreState, identity: _FileIdentity | None) -> None:
        self._state = state
        self._identity = identity
        self._checked_at = time.monotonic()
        # Material of purged keys, or deleted from a key (DeleteKeyMaterial), must not
        # outlive them in memory.
        self._forget_ciphers(keep={v for v, r in state.versions.items() if r.wrapped_material})

    def _forget_ciphers(self, keep: Container[str]) -> None:
        for version_id in [v for v in self._aeads if v not in keep]:
            del self._aeads[version_id]

    # -- writing ---------------------------------------------------------------------

    def _write(self, state: StoreState) -> None:
        _write_atomically(self._state_path, encode_state(state, self._root_check))
        self._install(state, _identity(os.stat(self._state_path)))

    def _make_root_check(self) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._root.encrypt(nonce, b"", _ROOT_CHECK_AAD)

    def _read_root_key(self, explicit: bytes | None) -> bytearray:
        if explicit is not None:
            if len(explicit) != ROOT_KEY_SIZE:
                raise KeyStoreError(f"the root key must be {ROOT_KEY_SIZE} bytes")
            return bytearray(explicit)
        from_env = os.environ.get(ROOT_KEY_ENV)
        if from_env:
            return _decode_root_key(from_env, source=ROOT_KEY_ENV)
        path = self.path / _ROOT_KEY_FILE
        try:
            text = path.read_bytes().decode("ascii", errors="replace")
        except FileNotFoundError:
            pass
        else:
            return _decode_root_key(text, source=str(path))
        root = bytearray(os.urandom(ROOT_KEY_SIZE))
        encoded = bytearray(base64.b64encode(root) + b"\n")
        _write_atomically(path, encoded)
        wipe(encoded)
        return root

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_pid != os.getpid():
            # After fork the inherited descriptor shares its flock with the parent: reopen.
            self._lock_fd = os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _remove_temp_files(self) -> None:
        # Writers hold the lock while a temp file exists: under the lock, any is an orphan
        # of a crashed writer.
        for orphan in self.path.glob(f".*{_TEMP_SUFFIX}"):
            orphan.unlink(missing_ok=True)


def _identity(stat: os.stat_result) -> _FileIdentity:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _decode_root_key(text: str, *, source: str) -> bytearray:
    try:
        root = bytearray(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"{source} is not base64; it must hold a 32-byte root key") from None
    if len(root) != ROOT_KEY_SIZE:
        wipe(root)
        raise KeyStoreError(f"{source} must hold a {ROOT_KEY_SIZE}-byte root key")
    return root


def _write_atomically(path: Path, data: bytes | bytearray) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
