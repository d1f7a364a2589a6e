"""A corruption grid over the keystore's files: whatever they hold, ``LocalKms`` raises
kmsnb's errors only, and a damaged file is one ``KeyStoreCorruptedError`` naming it.

The pristine keystore holds every kind of record: AES and SM4 keys, imported (EXTERNAL)
keys with and without their material, aliases, versions, and secrets (text and binary,
several versions and stages, one pending deletion).

Grids over ``keystore.json``: truncations, bit flips, text substitutions (huge numbers, deep
nesting, bad UTF-8), and every member and field replaced by a value of each wrong type,
both as an attacker would write them (the MAC then fails) and re-authenticated under the
root key, as if kmsnb itself had written them: that reaches the strict decoding behind the
MAC. Then ``root.key``: truncations, bit flips, junk. Each variant opens ``LocalKms`` and,
if it opens, runs every kind of call.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsnb.emulator import KeyStoreCorruptedError
from kmsnb.emulator._records import derive_mac_key, document_mac
from kmsnb.errors import KmsnbError
from kmsnb.kms.local import LocalKms

from .conftest import import_material

pytestmark = pytest.mark.unit

CONTEXT = {"grid": "yes"}
WRONG_VALUES: list[Any] = [None, True, 0, -1, 2.5, "", "x" * 300, [], {}, [1], {"a": 1}]
WRONG_VALUES += [10**400, -(10**400), 1e308, "\ud800", [[[[[[[[[[]]]]]]]]]]]


class Grid:
    """A pristine keystore, and a way to try a variant of its files on a copy."""

    def __init__(self, tmp_path: Path) -> None:
        self.pristine = tmp_path / "pristine"
        with LocalKms(self.pristine) as kms:
            rotating = kms.create_key("rotating").key_id
            kms.create_key_version(rotating)
            kms.create_alias("alias/grid", rotating)
            disabled = kms.create_key("disabled").key_id
            doomed = kms.create_key("doomed").key_id
            self.blob = kms.generate_data_key(rotating, CONTEXT).ciphertext_blob
            kms.disable_key(disabled)
            kms.schedule_key_deletion(doomed, 7)
            call = kms._call
            sm4 = call("CreateKey", {"KeySpec": "Aliyun_SM4", "DKMSInstanceId": "kst-grid"})
            imported = call("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
            import_material(call, imported, os.urandom(32))
            emptied = call("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
            import_material(call, emptied, os.urandom(32))
            call("DeleteKeyMaterial", {"KeyId": emptied})
            call("CreateKey", {"Origin": "EXTERNAL"})  # waiting for its first material
            kms.create_secret("grid/text", "v1 value", version_id="v1")
            kms.put_secret_value("grid/text", "v2 value", version_id="v2")
            call(
                "UpdateSecretVersionStage",
                {"SecretName": "grid/text", "VersionStage": "Custom", "MoveToVersion": "v1"},
            )
            sm4_id = sm4["KeyMetadata"]["KeyId"]
            kms.create_secret("grid/binary", b"\x00\xff", encryption_key_id=sm4_id)
            kms.create_secret("grid/doomed", "soon gone")
            kms.delete_secret("grid/doomed", recovery_window_in_days=7)
        self.state = (self.pristine / "keystore.json").read_bytes()
        self.root = (self.pristine / "root.key").read_bytes()
        self.mac_key = derive_mac_key(bytearray(base64.b64decode(self.root)))
        self.work = tmp_path / "variant"
        self.outcomes: Counter[str] = Counter()
        self.escaped: list[str] = []
        self.opened: list[str] = []

    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.state)
        return loaded

    def resign(self, document: dict[str, Any]) -> bytes:
        """``document`` authenticated as kmsnb writes it (so only its contents are wrong)."""
        # One that cannot be canonicalised (NaN, too deep) keeps the old MAC.
        with contextlib.suppress(ValueError, RecursionError):
            document["mac"] = base64.b64encode(document_mac(self.mac_key, document)).decode()
        return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")

    def attempt(self, label: str, *, state: bytes | None = None, root: bytes | None = None) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        shutil.copytree(self.pristine, self.work)
        (self.work / "keystore.json").write_bytes(self.state if state is None else state)
        (self.work / "root.key").write_bytes(self.root if root is None else root)
        try:
            outcome = self._exercise()
        except Exception as exc:  # the grid's point: report whatever escapes
            self.escaped.append(f"{label}: {type(exc).__name__}: {exc}")
            outcome = "escaped"
        self.outcomes[outcome] += 1
        if outcome == "opened":
            self.opened.append(label)

    def _exercise(self) -> str:
        try:
            kms = LocalKms(self.work)
        except KeyStoreCorruptedError as exc:
            named = {str(self.work / "keystore.json"), str(self.work / "root.key")}
            if not any(name in str(exc) for name in named):
                raise AssertionError(f"the error names no file: {exc}") from None
            return "refused"
        with kms:
            for call in _calls(kms, self.blob):
                with contextlib.suppress(KmsnbError):  # refusals of kmsnb's own kind are fine
                    call()
        return "opened"


def _calls(kms: LocalKms, blob: str) -> Iterator[Callable[[], object]]:
    yield lambda: kms.decrypt_data_key(blob, CONTEXT)
    try:
        keys = kms.list_keys()
    except KmsnbError:
        keys = []
    yield kms.list_aliases
    for key in keys:
        yield lambda key=key: kms.describe_key(key.key_id)
        yield lambda key=key: kms.list_key_versions(key.key_id)
        yield lambda key=key: kms.list_aliases(key.key_id)
        yield lambda key=key: kms.generate_data_key(key.key_id, CONTEXT)
        yield lambda key=key: kms.create_key_version(key.key_id)
        yield lambda key=key: kms.enable_key(key.key_id)
    yield lambda: kms.create_key("after")
    yield lambda: kms.describe_key("alias/grid")
    try:
        secrets = kms.list_secrets()
    except KmsnbError:
        secrets = []
    for secret in secrets:
        yield lambda secret=secret: kms.describe_secret(secret.name)
        yield lambda secret=secret: kms.get_secret_value(secret.name).wipe()
        yield lambda secret=secret: kms.get_secret_value(secret.name, version_id="v1").wipe()
        yield lambda secret=secret: kms.put_secret_value(secret.name, "later")
        yield lambda secret=secret: kms.restore_secret(secret.name)
    yield lambda: kms.create_secret("grid/after", "new")


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every member, item and field of the document, outermost first."""
    if prefix:
        yield prefix
    if isinstance(document, dict):
        for name, value in document.items():
            yield from _paths(value, (*prefix, name))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _paths(value, (*prefix, index))


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


@pytest.fixture
def grid(tmp_path: Path) -> Grid:
    return Grid(tmp_path)


def _report(grid: Grid, name: str) -> None:
    print(f"\n{name}: {sum(grid.outcomes.values())} variants, {dict(grid.outcomes)}")
    assert grid.escaped == [], "\n".join(grid.escaped[:20])


def _same_meaning(data: bytes, pristine: bytes) -> bool:
    """Whether ``data`` parses to the pristine document: the MAC is of the meaning, and a
    flip of a float's 17th digit can name the same number (1796182226.0031557 and
    ...556 are one double)."""
    try:
        return bool(json.loads(data) == json.loads(pristine))
    except ValueError:
        return False


def test_truncations_and_bit_flips_of_the_keystore_are_refused(grid: Grid) -> None:
    size = len(grid.state)
    for end in sorted({*range(0, size, max(1, size // 150)), size - 1}):
        grid.attempt(f"truncated at {end}", state=grid.state[:end])
    same_meaning = 0
    for position in range(0, size, max(1, size // 250)):
        flipped = bytearray(grid.state)
        flipped[position] ^= 1 << (position % 8)
        same_meaning += _same_meaning(bytes(flipped), grid.state)
        grid.attempt(f"bit flip at {position}", state=bytes(flipped))
    _report(grid, "keystore.json truncations and bit flips")
    # Every change of meaning is refused by the MAC; a variant of the same meaning opens.
    assert grid.outcomes["opened"] == same_meaning, grid.opened


def test_text_substitutions_are_refused(grid: Grid) -> None:
    text = grid.state.decode()
    first_time = json.loads(text)["keys"][0]["creation_time"]
    substitutions = {
        "huge integer": "1" + "0" * 5000,
        "huge exponent": "1e999999",
        "negative huge": "-" + "9" * 400,
        "nested lists": "[" * 100_000 + "]" * 100_000,
        "nested objects": '{"a":' * 50_000 + "1" + "}" * 50_000,
        "moderately nested": "[" * 900 + "]" * 900,
        "NaN": "NaN",
        "Infinity": "Infinity",
    }
    for label, literal in substitutions.items():
        grid.attempt(label, state=text.replace(json.dumps(first_time), literal, 1).encode())
    for label, data in {
        "empty": b"",
        "null": b"null",
        "a list": b"[]",
        "a string": b'"keystore"',
        "bad UTF-8": grid.state.replace(b"rotating", b"rot\xff\xfeing", 1),
        "NUL bytes": grid.state[:100] + b"\x00" * 50 + grid.state[150:],
        "twice": grid.state + grid.state,
        "another format": grid.state.replace(b"keystore/2", b"keystore/9", 1),
        "BOM": b"\xef\xbb\xbf" + grid.state,  # the same document: JSON may start so
    }.items():
        grid.attempt(label, state=data)
    _report(grid, "keystore.json text substitutions")
    assert grid.opened == ["BOM"]


def test_every_field_of_every_wrong_type_is_refused_or_harmless(grid: Grid) -> None:
    """Both as written by someone without the root key and re-authenticated under it."""
    document = grid.document()
    paths = [path for path in _paths(document) if path[-1] != "mac"]
    unsigned = Counter[str]()
    for path in paths:
        for value in WRONG_VALUES:
            original = _at(document, path)
            if type(original) is type(value) and original == value:
                continue  # not a change
            variant = _replaced(document, path, value)
            label = f"{'/'.join(map(str, path))} = {str(value)[:30]}"
            grid.attempt(label + " (re-signed)", state=grid.resign(json.loads(json.dumps(variant))))
            if value in (None, 0, ""):  # a sample without the MAC: must all be refused
                before = grid.outcomes["refused"]
                raw = json.dumps(variant, ensure_ascii=False).encode("utf-8", "surrogatepass")
                grid.attempt(label, state=raw)
                unsigned["refused" if grid.outcomes["refused"] > before else "not"] += 1
    for path in paths:  # and each member or field removed, and an extra one added
        variant = _replaced(document, path, None)
        parent = variant
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict):
            del parent[path[-1]]
            grid.attempt(f"no {'/'.join(map(str, path))}", state=grid.resign(variant))
            parent[path[-1]] = 1
            parent["extra"] = 1
            grid.attempt(f"extra at {'/'.join(map(str, path))}", state=grid.resign(variant))
    _report(grid, f"keystore.json fields x wrong types ({len(paths)} fields)")
    assert unsigned["not"] == 0
    assert grid.outcomes["refused"] > grid.outcomes["opened"]


def test_broken_references_are_refused(grid: Grid) -> None:
    document = grid.document()
    rotating = document["keys"][0]
    other_version = document["keys"][1]["version_ids"][0]
    cases: dict[str, Callable[[dict[str, Any]], None]] = {
        "version listed nowhere": lambda d: d["keys"][0]["version_ids"].pop(),
        "unknown version listed": lambda d: d["keys"][0]["version_ids"].append(
            "00000000-0000-4000-8000-000000000000"
        ),
        "primary not a version": lambda d: d["keys"][0].update(primary_version_id=other_version),
        "no primary": lambda d: d["keys"][0].update(primary_version_id=""),
        "enabled without material": lambda d: (
            d["keys"][0].update(version_ids=[], primary_version_id=""),
            d.update(versions=[v for v in d["versions"] if v["key_id"] != rotating["key_id"]]),
        ),
        "version of another key": lambda d: d["versions"][0].update(key_id=d["keys"][2]["key_id"]),
        "a key twice": lambda d: d["keys"].append(d["keys"][0]),
        "a version twice": lambda d: d["versions"].append(d["versions"][0]),
        "deletion date on an enabled key": lambda d: d["keys"][0].update(deletion_time=1.0),
        "pending deletion without a date": lambda d: d["keys"][2].update(deletion_time=None),
        "version id not a uuid": lambda d: d["versions"][0].update(version_id="v1"),
        "bad alias name": lambda d: d["aliases"].update({"not-an-alias": rotating["key_id"]}),
        "time after 9999": lambda d: d["keys"][0].update(creation_time=253_402_300_800),
        "negative time": lambda d: d["keys"][0].update(last_rotation_time=-1),
        "bool as time": lambda d: d["keys"][0].update(creation_time=True),
        "bool as generation": lambda d: d.update(generation=False),
        "wrapped material too short": lambda d: d["versions"][0].update(
            wrapped_material=base64.b64encode(b"x" * 59).decode()
        ),
        "material of another version": lambda d: d["versions"][0].update(
            wrapped_material=d["versions"][1]["wrapped_material"]
        ),
        **_import_cases(),
        **_secret_cases(),
    }
    for label, change in cases.items():
        variant = json.loads(json.dumps(document))
        change(variant)
        grid.attempt(label, state=grid.resign(variant))
    _report(grid, "keystore.json broken references (re-signed)")
    # Material swapped between versions passes the decoding; it fails when unwrapped.
    assert grid.outcomes["refused"] == len(cases) - 1


def _key(document: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The first key of ``document`` whose fields have these values."""
    return next(k for k in document["keys"] if all(k[n] == v for n, v in fields.items()))


def _version_of(document: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in document["versions"] if v["key_id"] == key["key_id"])


def _emptied(document: dict[str, Any]) -> dict[str, Any]:
    """The imported key whose material was deleted: PendingImport, with a version."""
    return next(
        key
        for key in document["keys"]
        if key["origin"] == "EXTERNAL"
        and key["key_state"] == "PendingImport"
        and key["version_ids"]
    )


def _secret(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(secret for secret in document["secrets"] if secret["name"] == name)


Change = Callable[[dict[str, Any]], object]


def _import_cases() -> dict[str, Change]:
    """SM4 material and imported keys: sizes, states and fields that do not fit together."""
    imported = {"origin": "EXTERNAL", "key_state": "Enabled"}

    def material_of(d: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return _version_of(d, _key(d, **fields))

    return {
        "SM4 version with AES-sized material": lambda d: material_of(
            d, key_spec="Aliyun_SM4"
        ).update(wrapped_material=d["versions"][0]["wrapped_material"]),
        "AES version with SM4-sized material": lambda d: d["versions"][0].update(
            wrapped_material=material_of(d, key_spec="Aliyun_SM4")["wrapped_material"]
        ),
        "emptied material of a key not imported": lambda d: d["versions"][0].update(
            wrapped_material=""
        ),
        "PendingImport with its material": lambda d: _key(d, **imported).update(
            key_state="PendingImport"
        ),
        "Enabled with its material deleted": lambda d: _emptied(d).update(key_state="Enabled"),
        "PendingImport key not imported": lambda d: d["keys"][0].update(key_state="PendingImport"),
        "material check on a key not imported": lambda d: d["keys"][0].update(
            material_check="0" * 32
        ),
        "material check not hex": lambda d: _key(d, **imported).update(material_check="z" * 32),
        "material expiry on a key not imported": lambda d: d["keys"][0].update(
            material_expire_time=2_000_000_000
        ),
        "instance id too long": lambda d: d["keys"][0].update(dkms_instance_id="k" * 129),
        "an unknown key spec": lambda d: d["keys"][0].update(key_spec="RSA_2048"),
    }


def _secret_cases() -> dict[str, Change]:
    """Secrets: names, stages, versions and sealed values that do not fit together."""
    text = "grid/text"

    def sealed_junk(d: dict[str, Any]) -> None:
        _secret(d, text)["versions"][0]["sealed_value"] = base64.b64encode(b"x" * 70).decode()

    return {
        "a format 2 keystore without secrets": lambda d: d.pop("secrets"),
        "secrets not a list": lambda d: d.update(secrets={}),
        "a secret twice": lambda d: d["secrets"].append(_secret(d, text)),
        "a secret version twice": lambda d: _secret(d, text)["versions"].append(
            _secret(d, text)["versions"][0]
        ),
        "a stage marking no version": lambda d: _secret(d, text)["stages"].update(Custom="v9"),
        "no ACSCurrent": lambda d: _secret(d, text)["stages"].pop("ACSCurrent"),
        "a secret without versions": lambda d: _secret(d, text).update(versions=[], stages={}),
        "a secret name out of the alphabet": lambda d: _secret(d, text).update(name="grid text"),
        "a secret type not emulated": lambda d: _secret(d, text).update(secret_type="Rds"),
        "a data type not emulated": lambda d: _secret(d, text)["versions"][0].update(
            data_type="json"
        ),
        "a sealed value that is no blob": sealed_junk,
        "a sealed value that is not base64": lambda d: _secret(d, text)["versions"][0].update(
            sealed_value="not base64!"
        ),
        "a secret sealed under another key": lambda d: _secret(d, text).update(
            encryption_key_id=d["keys"][0]["key_id"]
        ),
        "a version id too long": lambda d: _secret(d, text)["versions"][0].update(
            version_id="v" * 65
        ),
        "a stage too long": lambda d: _secret(d, text)["stages"].update({"s" * 65: "v1"}),
        "a description too long": lambda d: _secret(d, text).update(description="d" * 8193),
        "a deletion date that is no time": lambda d: _secret(d, "grid/doomed").update(
            planned_delete_time="soon"
        ),
        "a secret field too many": lambda d: _secret(d, text).update(policy="{}"),
    }


def test_an_edited_secret_is_refused_without_the_root_key(grid: Grid) -> None:
    """Unsigned edits of secrets: a stage moved, a sealed value swapped, a secret dropped."""
    document = grid.document()
    edits: dict[str, Change] = {
        "ACSCurrent moved back": lambda d: _secret(d, "grid/text")["stages"].update(
            ACSCurrent="v1"
        ),
        "values swapped": lambda d: _secret(d, "grid/text")["versions"].reverse(),
        "a secret dropped": lambda d: d["secrets"].pop(),
        "deletion cancelled": lambda d: _secret(d, "grid/doomed").update(planned_delete_time=None),
    }
    for label, change in edits.items():
        variant = json.loads(json.dumps(document))
        change(variant)
        grid.attempt(label, state=json.dumps(variant).encode())
    _report(grid, "keystore.json secrets edited without the root key")
    assert grid.outcomes["refused"] == len(edits)


def test_root_key_corruptions_are_refused(grid: Grid) -> None:
    root = grid.root
    for end in range(len(root)):
        grid.attempt(f"root.key truncated at {end}", root=root[:end])
    for position in range(len(root) * 8):
        flipped = bytearray(root)
        flipped[position // 8] ^= 1 << (position % 8)
        grid.attempt(f"root.key bit {position}", root=bytes(flipped))
    for label, data in {
        "junk": b"not a key at all",
        "binary": bytes(range(256)),
        "another key": base64.b64encode(bytes(32)) + b"\n",
        "twice": root + root,
    }.items():
        grid.attempt(label, root=data)
    _report(grid, "root.key corruptions")
    # A flip in the trailing newline or in base64's unused bits leaves the same key.
    assert grid.outcomes["opened"] <= 8
