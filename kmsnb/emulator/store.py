"""The emulator's keystore: master keys, aliases, key material and secrets in one directory.

**This is a development emulator, not an HSM.** Key material lives on disk encrypted with
AES-256-GCM under a *root key*, and the root key lives next to it (``root.key``) unless it
is supplied through ``KMSNB_EMULATOR_ROOT_KEY``. Anyone who can read the directory (or the
environment) can recover every key. Use it for notebooks, tests and demos; use Alibaba
Cloud KMS for data that matters.

Layout of the directory (created mode 0700; every file mode 0600):

``keystore.json``
    All metadata, the wrapped key material and the sealed secret values (see
    :mod:`kmsnb.emulator._records`), authenticated with an HMAC under a key derived from
    the root key, and rewritten whole and atomically by each change: temp file in the same
    directory, fsync, rename, fsync of the directory. After a crash (``kill -9``, power
    loss) it holds every change whose call returned.
``root.key``
    Base64 of the 32-byte root key, unless ``KMSNB_EMULATOR_ROOT_KEY`` is set. The same
    format as the variable, so ``export KMSNB_EMULATOR_ROOT_KEY=$(cat root.key)`` works.
``lock``
    Held with ``flock`` around every read-modify-write (exclusive) and while a store opens
    (exclusive, or shared when the store cannot be written), so that several processes (two
    notebooks and a server) can share one store.

The directory and its files are checked before use, as ssh checks its keys: owned by this
user, not writable by others, ``root.key`` readable by no one else, no symbolic links
(:mod:`kmsnb.emulator._keystore_dir`). Every problem is a :class:`KeyStoreError` subclass
naming the file: unsafe, corrupted (a file changed outside kmsnb too), read-only, full.

**Keystores written by kmsnb 0.1** (format 1) have no MAC, so their contents cannot be
told from an edited copy. They are refused with :class:`KeyStoreMigrationError` until their
owner vouches for them once, with ``KMSNB_EMULATOR_MIGRATE=1`` or ``KeyStore(path,
migrate=True)``: the file is then checked as strictly as any other, and rewritten in format 2
at once (on a read-only keystore, used as it is). Accepting format 1 silently would let
anyone who can edit the file strip its MAC and edit it at will.

Reads never lock: a write replaces the file in one rename, so an open sees either the old
or the new document. Each read stats the file and reloads it when its identity (inode,
size, mtime, ctime) changed, so processes see each other's changes; decrypted key material
is cached in memory, so data-key operations touch the disk only through that stat. An
identity can repeat (an inode reused within one timestamp tick), so a random write id at
the head of the file is compared too: always under the lock before a change, so that no
update is ever lost, and at most once a second for reads.

A keystore that cannot be written (a read-only mount, no write permission) opens with its
lock shared and read-only: Decrypt, GenerateDataKey and the listings work, and each change
raises :class:`KeyStoreReadOnlyError` naming the keystore.
"""

from __future__ import annotations

import contextlib
import os
import time
from _thread import RLock  # threading.RLock's own class; importing threading costs start-up
from collections.abc import Container, Iterator
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb._wipe import wipe
from kmsnb.emulator._keystore_dir import (
    DIR_ENV,
    ROOT_KEY_FILE,
    FileIdentity,
    StoreDirectory,
    default_store_dir,
)
from kmsnb.emulator._keystore_errors import (
    KeyStoreCorruptedError,
    KeyStoreError,
    KeyStoreFullError,
    KeyStoreMigrationError,
    KeyStoreReadOnlyError,
    KeyStoreUnsafeError,
)
from kmsnb.emulator._records import (
    FORMAT_V1,
    Document,
    KeyVersionRecord,
    MalformedKeyStore,
    StoreState,
    decode_state,
    derive_mac_key,
    encode_state,
    mac_matches,
    parse_document,
    read_write_id,
)
from kmsnb.emulator._root_key import ROOT_KEY_ENV, read_root_key
from kmsnb.emulator._waiting import acquire, check_may_wait

if TYPE_CHECKING:  # SM4GCM: imported by the first SM4 key version (most keystores have none)
    from pathlib import Path

    from kmsnb.emulator._sm4 import SM4GCM

__all__ = [
    "DIR_ENV",
    "MIGRATE_ENV",
    "ROOT_KEY_ENV",
    "KeyStore",
    "KeyStoreCorruptedError",
    "KeyStoreError",
    "KeyStoreFullError",
    "KeyStoreMigrationError",
    "KeyStoreReadOnlyError",
    "KeyStoreUnsafeError",
    "default_store_dir",
]

MIGRATE_ENV = "KMSNB_EMULATOR_MIGRATE"

MATERIAL_SIZE = 32
# An Aliyun_SM4 key's material: kmsnb.emulator._sm4.SM4_KEY_SIZE (a test keeps them equal).
SM4_MATERIAL_SIZE = 16
NONCE_SIZE = 12
_TAG_SIZE = 16
_STATE_FILE = "keystore.json"
# 10,000 versions, 200 keys with 8 KiB descriptions and 20 tags: a few MB. Far beyond it,
# the file is not one this emulator wrote.
_MAX_STATE_SIZE = 64 * 1024 * 1024
_HEADER_SIZE = 128
# How stale a read may be when a file's identity repeats; see the module docstring.
_RECHECK_SECONDS = 1.0
# Authenticated under the root key so that a wrong root key is reported as such, not as a
# failure to unwrap some key version later on.
_ROOT_CHECK_AAD = b"kmsnb emulator root key check"


class KeyStore:
    """A directory of master keys shared safely by threads and processes.

    Args:
        path: the directory; by default :func:`default_store_dir`. Created if missing.
        root_key: the 32-byte root key; by default ``$KMSNB_EMULATOR_ROOT_KEY`` (base64),
            else ``root.key`` in the directory, created on first use.
        migrate: accept (and upgrade) a keystore written by kmsnb 0.1, whose contents are
            not authenticated; default ``$KMSNB_EMULATOR_MIGRATE == "1"``.

    Raises:
        KeyStoreUnsafeError: the directory or a file in it is unsafe (see the module doc).
        KeyStoreCorruptedError: a file is damaged or was changed outside kmsnb, or the
            root key does not open this keystore.
        KeyStoreMigrationError: the keystore is from kmsnb 0.1 and ``migrate`` is off.
        KeyStoreError: another failure, naming the file.

    Attributes:
        path, directory: the directory, as a :class:`~pathlib.Path` and as its string.
        created: True when opening found no keystore there (no keys, no root key) and
            started one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        root_key: bytes | None = None,
        migrate: bool | None = None,
    ) -> None:
        self._dir = StoreDirectory(default_store_dir() if path is None else path)
        self.directory = self._dir.path
        self._migrate = os.environ.get(MIGRATE_ENV) == "1" if migrate is None else migrate
        self._state_path = self._dir.file(_STATE_FILE)
        self._thread_lock = RLock()
        self._state: StoreState | None = None
        self._identity: FileIdentity | None = None
        self._checked_at = 0.0
        self._loaded_format = ""
        self._aeads: dict[str, AESGCM | SM4GCM] = {}
        with self._thread_lock, self._file_lock(exclusive=True):
            self._dir.remove_orphans()
            # Nothing of a keystore here yet (a new folder, an empty one): say so, since a
            # mistyped path makes one too. The lock file alone does not count: opening
            # makes it.
            self.created = all(
                self._dir.identity(name) is None for name in (_STATE_FILE, ROOT_KEY_FILE)
            )
            root = read_root_key(self._dir, root_key)
        self._root = AESGCM(root)
        self._mac_key = derive_mac_key(root)
        wipe(root)
        self._root_check = self._make_root_check()
        with self._thread_lock, self._file_lock(exclusive=True):
            # Fail now, not at the first call, on a wrong root key; upgrade a format 1 file.
            state = self._load_if_stale(verify=True)
            if self._loaded_format == FORMAT_V1 and not self._dir.read_only:
                import uuid  # only writes need it (it imports platform)

                upgraded = state.copy()
                upgraded.generation = state.generation + 1
                upgraded.write_id = uuid.uuid4().hex
                self._write(upgraded)

    def __repr__(self) -> str:
        return f"KeyStore({self.directory!r})"

    @property
    def path(self) -> Path:
        """The directory, a Path made when asked for (start-up: messages use the string)."""
        from pathlib import Path

        return Path(self.directory)

    @property
    def read_only(self) -> bool:
        """True when the keystore cannot be written: only reads work."""
        return self._dir.read_only

    def snapshot(self) -> StoreState:
        """Return the current state, reloaded if another process changed it. Read-only.

        On the server's event loop it reads nothing but the file's ``stat``, and waits for
        no other thread (:mod:`kmsnb.emulator._waiting`).
        """
        acquire(self._thread_lock)
        try:
            return self._load_if_stale()
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreState]:
        """Lock the store and yield a private copy of its state to change.

        When the block ends normally the copy is written atomically and becomes the
        current state; when it raises, nothing is written.

        Raises:
            KeyStoreReadOnlyError: the keystore cannot be written.
            KeyStoreFullError: its disk is full.
            WouldBlock: on the server's event loop, which leaves writes to its workers.
        """
        check_may_wait()
        with self._thread_lock, self._file_lock(exclusive=True):
            if self._dir.read_only:
                raise KeyStoreReadOnlyError(
                    f"the keystore {self.directory} is read-only; it can decrypt and list, but "
                    "changes need a writable keystore"
                )
            import uuid  # only writes need it (it imports platform)

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
        size = SM4_MATERIAL_SIZE if state.keys[key_id].key_spec == "Aliyun_SM4" else MATERIAL_SIZE
        if material is not None and len(material) != size:
            raise ValueError(f"key material for this key is {size} bytes")
        import uuid  # only writes need it (it imports platform)

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
        # A hit needs no lock: a dict read is atomic, and a version's cipher never changes.
        cached = self._aeads.get(version.version_id)
        if cached is not None:
            return cached
        acquire(self._thread_lock)
        try:
            return self._unwrapped_cipher(version)
        finally:
            self._thread_lock.release()

    def _unwrapped_cipher(self, version: KeyVersionRecord) -> AESGCM | SM4GCM:
        cached = self._aeads.get(version.version_id)
        if cached is not None:
            return cached
        nonce, sealed = (
            version.wrapped_material[:NONCE_SIZE],
            version.wrapped_material[NONCE_SIZE:],
        )
        if len(sealed) - _TAG_SIZE not in (MATERIAL_SIZE, SM4_MATERIAL_SIZE):
            raise KeyStoreError(
                f"key version {version.version_id} has no key material (it was deleted, "
                "or the keystore is corrupted)"
            )
        material = bytearray(len(sealed) - _TAG_SIZE)
        try:
            self._root.decrypt_into(nonce, sealed, version.version_id.encode("ascii"), material)
        except (InvalidTag, ValueError):
            raise KeyStoreCorruptedError(
                f"key version {version.version_id} in {self._state_path} failed "
                "authentication; the keystore is corrupted: restore it from a backup"
            ) from None
        # The cipher keeps its own copy of the key (OpenSSL cleanses it when the cipher
        # is freed); ours is wiped at once rather than kept as a second copy.
        cipher: AESGCM | SM4GCM
        if len(material) == MATERIAL_SIZE:
            cipher = AESGCM(material)
        else:
            from kmsnb.emulator._sm4 import SM4GCM  # here: see the top

            cipher = SM4GCM(material)
        wipe(material)
        self._aeads[version.version_id] = cipher
        return cipher

    def close(self) -> None:
        """Drop the cached key material and release the lock file and the directory."""
        with self._thread_lock:
            self._forget_ciphers(keep=())
            self._dir.close()

    # -- reading ---------------------------------------------------------------------

    def _load_if_stale(self, *, verify: bool = False) -> StoreState:
        identity = self._dir.identity(_STATE_FILE)
        cached = self._state
        if cached is not None and identity == self._identity:
            now = time.monotonic()
            if not verify and now - self._checked_at < _RECHECK_SECONDS:
                return cached
            check_may_wait()  # the file's header is read below
            if identity is None or self._current_write_id() == cached.write_id:
                self._checked_at = now
                return cached
        check_may_wait()
        data = self._dir.read(_STATE_FILE, max_size=_MAX_STATE_SIZE)
        self._loaded_format = ""
        if data is None:
            state = StoreState()
        else:
            # The identity of the file actually read, in case it was replaced meanwhile.
            identity = self._dir.identity(_STATE_FILE)
            state = self._decode(data)
        self._install(state, identity)
        return state

    def _current_write_id(self) -> str | None:
        header = self._dir.read(_STATE_FILE, max_size=_HEADER_SIZE, head_only=True)
        return None if header is None else read_write_id(header)

    def _decode(self, data: bytes) -> StoreState:
        try:
            document = parse_document(data)
            self._check_root_key(document)
            if document.format == FORMAT_V1:
                self._check_migration()
            elif not mac_matches(document, self._mac_key):
                raise KeyStoreCorruptedError(
                    f"{self._state_path} failed authentication: it was changed outside kmsnb "
                    "or is damaged; restore it from a backup"
                )
            state = decode_state(document)
        except MalformedKeyStore as exc:
            raise KeyStoreCorruptedError(
                f"{self._state_path} is not a readable keystore ({exc}); restore it from a backup"
            ) from None
        self._loaded_format = document.format
        return state

    def _check_root_key(self, document: Document) -> None:
        check = document.root_key_check
        try:
            self._root.decrypt(check[:NONCE_SIZE], check[NONCE_SIZE:], _ROOT_CHECK_AAD)
        except (InvalidTag, ValueError):
            raise KeyStoreCorruptedError(
                f"the root key does not open the keystore {self._state_path}: check "
                f"{ROOT_KEY_ENV} or {self._dir.file(ROOT_KEY_FILE)} (or the file is damaged)"
            ) from None

    def _check_migration(self) -> None:
        if not self._migrate:
            raise KeyStoreMigrationError(
                f"{self._state_path} was written by kmsnb 0.1 and is not authenticated, so "
                "an edited copy cannot be told from yours; if you trust it, upgrade it once "
                f"with {MIGRATE_ENV}=1 (or KeyStore(path, migrate=True))"
            )

    def _install(self, state: StoreState, identity: FileIdentity | None) -> None:
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
        self._dir.replace(_STATE_FILE, encode_state(state, self._root_check, self._mac_key))
        self._loaded_format = ""
        self._install(state, self._dir.identity(_STATE_FILE))

    def _make_root_check(self) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._root.encrypt(nonce, b"", _ROOT_CHECK_AAD)

    def _file_lock(self, *, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return self._dir.lock(exclusive=exclusive)
