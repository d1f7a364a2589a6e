"""Write the Dask dataset test vectors of docs/dask-dataset.md ("Test vectors").

    python tests/dask/vectors/generate.py [--check]

Each vector is a whole dataset directory (the manifest and the generation's files) as
JSON, with the master key its data keys are wrapped under and what a reader must do with
it. Everything is deterministic: dataset ids, data keys, salts and the IVs of the wrapped
keys are derived from the vector's name with SHAKE-128; the kmsnb files are built with
``tests/vectors/generate.py``'s header and payload builders (``cryptography`` only); the
Parquet inside is written by pyarrow from ``pyarrow`` tables (no pandas metadata), so the
bytes are a function of the name and of the pyarrow version. It imports nothing from
kmsnb. ``tests/dask/test_vectors.py`` checks the committed vectors with kmsnb and with
``tests/dask_verifier.py``, and that this script reproduces them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FOLDER = Path(__file__).resolve().parent
_FILE_VECTORS = FOLDER.parents[1] / "vectors" / "generate.py"
_spec = importlib.util.spec_from_file_location("kmsnb_file_vectors", _FILE_VECTORS)
if _spec is None or _spec.loader is None:  # pragma: no cover - the file is in the repository
    raise ImportError(f"cannot load {_FILE_VECTORS}")
files = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = files  # dataclasses look their module up there
_spec.loader.exec_module(files)

MANIFEST_NAME = "_kmsnb_manifest.json"
META_NAME = "_meta.parquet.kms"
PARQUET = b"application/vnd.apache.parquet"
KEY_NAME = "alias/sales"  # what the writer named; the manifest records it
KEY_ID = "key-dask0vectors0000000"
VERSION_ID = "0d1a5c3e-7b2f-4c68-9e01-a4b3c2d1e0f9"
CONTEXT = {"project": "apollo"}
ROWS_PER_PART = 4


def shake(label: str, name: str, size: int) -> bytes:
    return hashlib.shake_128(f"kmsnb dask vector {label}: {name}".encode()).digest(size)


MATERIAL = shake("master key", KEY_ID, 32)


def master_keys() -> dict[str, Any]:
    return {KEY_ID: {"alias": KEY_NAME, "versions": {VERSION_ID: MATERIAL.hex()}}}


def wrap(data_key: bytes, context: dict[str, str], name: str) -> bytes:
    """An Alibaba-layout CiphertextBlob, as the emulator and InMemoryKms make them."""
    aad = "&".join(f"{key}={context[key]}" for key in sorted(context)).encode()
    iv = shake("iv", name, 12)
    sealed = AESGCM(MATERIAL).encrypt(iv, base64.b64encode(data_key), aad)
    return base64.b64encode(VERSION_ID.encode() + iv + sealed)


def kmsnb_file(
    name: str,
    plaintext: bytes,
    context: dict[str, str],
    *,
    content_type: bytes = PARQUET,
    wrap_context: dict[str, str] | None = None,
) -> bytes:
    """A kmsnb v1 file of known size under a fresh (derived) data key."""
    data_key = shake("data key", name, 32)
    pairs = sorted(context.items(), key=lambda pair: pair[0].encode())
    header = files.Header(
        plaintext_size=len(plaintext),
        context=files.encode_context(pairs),
        wrapped_key=wrap(data_key, context if wrap_context is None else wrap_context, name),
        content_type=content_type,
        key_id=KEY_ID.encode(),
        key_version_id=VERSION_ID.encode(),
    )
    digest = hashlib.sha256(header.bound()).digest()
    payload = files.seal(data_key, shake("salt", name, 24), digest, plaintext)
    return bytes(header.encode(data_key)) + bytes(payload)


def table(first: int, count: int) -> pa.Table:
    """Rows ``first .. first + count - 1``: an int, a string, a float and a bool column."""
    numbers = list(range(first, first + count))
    return pa.table(
        {
            "id": pa.array(numbers, pa.int64()),
            "city": pa.array([f"city {n} · 市" for n in numbers], pa.string()),
            "amount": pa.array([n * 1.25 for n in numbers], pa.float64()),
            "paid": pa.array([n % 2 == 0 for n in numbers], pa.bool_()),
        }
    )


def parquet(data: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(data, sink, compression="none")
    return sink.getvalue()


PARQUET_WRITER = pq.read_metadata(io.BytesIO(parquet(table(0, 0)))).created_by


def part_name(index: int) -> str:
    return f"part.{index:05d}.parquet.kms"


class Dataset:
    """A valid dataset; failure vectors edit its files or its manifest document."""

    def __init__(
        self,
        name: str,
        *,
        part_count: int = 3,
        context: dict[str, str] | None = None,
        version: int = 2,
    ) -> None:
        self.name = name
        self.context = dict(CONTEXT if context is None else context)
        self.dataset_id = shake("dataset id", name, 16).hex()
        self.generation = f"gen-{self.dataset_id}" if version == 2 else None
        self.version = version
        self.part_count = part_count
        self.rows: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.put(META_NAME, self.encrypt(META_NAME, table(0, 0), "meta"))
        for index in range(part_count):
            data = table(index * ROWS_PER_PART, ROWS_PER_PART)
            self.rows += data.to_pylist()
            self.put(part_name(index), self.encrypt(part_name(index), data, str(index)))
        self.document = self.manifest()

    def path(self, file_name: str) -> str:
        return file_name if self.generation is None else f"{self.generation}/{file_name}"

    def binding(self, label: str, *, dataset_id: str | None = None) -> dict[str, str]:
        return {
            "kmsnb.dataset": dataset_id or self.dataset_id,
            "kmsnb.part": label,
            "kmsnb.parts": str(self.part_count),
        }

    def encrypt(self, file_name: str, data: pa.Table, label: str, **options: Any) -> bytes:
        context = self.context | self.binding(label)
        return kmsnb_file(f"{self.name}/{file_name}", parquet(data), context, **options)

    def put(self, file_name: str, data: bytes) -> None:
        self.files[self.path(file_name)] = data

    def get(self, file_name: str) -> bytes:
        return self.files[self.path(file_name)]

    def entry(self, file_name: str) -> dict[str, Any]:
        data = self.get(file_name)
        return {"name": file_name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def manifest(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "dataset_id": self.dataset_id,
            "encryption_context": self.context,
            "format": "kmsnb-dask-parquet",
            "format_version": self.version,
            "key_id": KEY_NAME,
            "meta": self.entry(META_NAME),
            "part_count": self.part_count,
            "parts": [self.entry(part_name(i)) for i in range(self.part_count)],
        }
        if self.generation is not None:
            document["generation"] = self.generation
        return document

    def refresh(self) -> None:
        """Make the manifest describe the files as they now are (an attacker would)."""
        self.document = self.manifest()

    def vector(
        self,
        description: str,
        expect: str = "success",
        stage: str | None = None,
        *,
        reader_context: dict[str, str] | None = None,
        manifest_text: str | None = None,
    ) -> dict[str, Any]:
        listed = dict(self.files)
        if manifest_text is None and self.document is not None:
            manifest_text = json.dumps(self.document, indent=2, sort_keys=True) + "\n"
        if manifest_text is not None:
            listed[MANIFEST_NAME] = manifest_text.encode()
        vector: dict[str, Any] = {"description": description, "expect": expect}
        # The Parquet bytes are pyarrow's: the same name gives the same bytes only with the
        # same writer (tests/dask/test_vectors.py compares byte for byte when it is).
        vector["parquet_writer"] = PARQUET_WRITER
        if stage is not None:
            vector["stage"] = stage
        vector |= {
            "reader_context": reader_context,
            "columns": ["id", "city", "amount", "paid"],
            "rows": self.rows if expect == "success" else None,
            "master_keys": master_keys(),
            "files": {
                path: base64.b64encode(listed[path]).decode("ascii") for path in sorted(listed)
            },
        }
        return vector


def flip(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


Builder = Callable[[str], dict[str, Any]]


def _success() -> dict[str, Builder]:
    def version_1(name: str) -> dict[str, Any]:
        return Dataset(name, part_count=2, version=1).vector(
            "kmsnb 0.1's layout: format_version 1, the files beside the manifest"
        )

    def other_generations(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        old = Dataset(f"{name} (older)")
        for path, data in old.files.items():  # a generation a killed overwrite left
            dataset.files[path] = data
        return dataset.vector(
            "an older generation beside the one the manifest names: a reader ignores it"
        )

    return {
        "version_2": lambda name: Dataset(name).vector(
            "three parts under a context, read with that context demanded",
            reader_context=CONTEXT,
        ),
        "version_1": version_1,
        "one_part_unicode_context": lambda name: Dataset(
            name, part_count=1, context={"é": "Grüße", "\U0001f600": ""}
        ).vector("one part; a non-ASCII context, sorted by UTF-8 bytes"),
        "no_context": lambda name: Dataset(name, part_count=2, context={}).vector(
            "the empty encryption context"
        ),
        "other_generations": other_generations,
    }


def _manifest_failures() -> dict[str, Builder]:
    def edited(description: str, edit: Callable[[dict[str, Any]], None]) -> Builder:
        def build(name: str) -> dict[str, Any]:
            dataset = Dataset(name)
            edit(dataset.document)
            return dataset.vector(description, "FormatError", "manifest")

        return build

    def text(description: str, manifest_text: str | None) -> Builder:
        def build(name: str) -> dict[str, Any]:
            dataset = Dataset(name)
            if manifest_text is None:
                dataset.document = None  # type: ignore[assignment]
            return dataset.vector(
                description, "FormatError", "manifest", manifest_text=manifest_text
            )

        return build

    def set_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda document: document.__setitem__(key, value)

    def set_part(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda document: document["parts"][0].__setitem__(field, value)

    def version_1_with_generation(document: dict[str, Any]) -> None:
        document["format_version"] = 1

    def no_generation(document: dict[str, Any]) -> None:
        del document["generation"]

    def reserved_key(document: dict[str, Any]) -> None:
        document["encryption_context"]["kmsnb.part"] = "0"

    def count_disagrees(document: dict[str, Any]) -> None:
        document["part_count"] = 2

    def no_parts(document: dict[str, Any]) -> None:
        document["parts"], document["part_count"] = [], 0

    def part_count_true(name: str) -> dict[str, Any]:
        dataset = Dataset(name, part_count=1)
        dataset.document["part_count"] = True
        return dataset.vector(
            "part_count true (a JSON boolean) with one part", "FormatError", "manifest"
        )

    return {
        "part_count_true": part_count_true,
        "no_manifest": text("a directory without a manifest (a write never finished)", None),
        "manifest_not_json": text("the manifest is not JSON", '{"format": "kmsnb-dask-parquet"'),
        "manifest_not_an_object": text("the manifest is a JSON array", "[]\n"),
        "wrong_format": edited("another format name", set_key("format", "kmsnb-dask")),
        "unknown_format_version": edited("format_version 3", set_key("format_version", 3)),
        "format_version_true": edited(
            "format_version true (a JSON boolean, not the integer 1)",
            set_key("format_version", True),
        ),
        "dataset_id_uppercase": edited(
            "a dataset id in uppercase hex", set_key("dataset_id", "AB" * 16)
        ),
        "generation_outside": edited(
            "a generation that names a folder outside the dataset",
            set_key("generation", f"../gen-{'0' * 32}"),
        ),
        "generation_in_version_1": edited(
            "format_version 1 with a generation", version_1_with_generation
        ),
        "no_generation_in_version_2": edited(
            "format_version 2 without a generation", no_generation
        ),
        "empty_key_id": edited("an empty key_id", set_key("key_id", "")),
        "reserved_context_key": edited(
            "a kmsnb. key in the manifest's encryption_context", reserved_key
        ),
        "part_count_disagrees": edited("part_count 2 with three parts listed", count_disagrees),
        "no_parts": edited("no parts at all", no_parts),
        "part_name_out_of_place": edited(
            "the first entry names part.00001", set_part("name", part_name(1))
        ),
        "part_name_escapes": edited(
            "an entry that names a file outside the generation",
            set_part("name", f"../{part_name(0)}"),
        ),
        "size_not_an_integer": edited("a size given as a string", set_part("size", "100")),
        "size_negative": edited("a negative size", set_part("size", -1)),
        "sha256_uppercase": edited(
            "a SHA-256 in uppercase hex", lambda d: d["parts"][0].update(sha256="A" * 64)
        ),
        "meta_renamed": edited(
            "the meta entry names another file",
            lambda d: d["meta"].__setitem__("name", "meta.parquet.kms"),
        ),
    }


def _edited_failures() -> dict[str, Builder]:
    def generation_missing(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        dataset.files = {}
        return dataset.vector(
            "the generation the manifest names is missing", "IntegrityError", "listing"
        )

    def part_missing(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        del dataset.files[dataset.path(part_name(1))]
        return dataset.vector("part 1 is missing", "IntegrityError", "listing")

    def extra_part(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        dataset.put(part_name(3), dataset.get(part_name(2)))
        return dataset.vector("a part the manifest does not list", "IntegrityError", "listing")

    def size_differs(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        dataset.put(part_name(1), dataset.get(part_name(1))[:-1])
        return dataset.vector("part 1 is a byte shorter than listed", "IntegrityError", "listing")

    def sha256_differs(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        part = dataset.get(part_name(2))
        dataset.put(part_name(2), flip(part, len(part) // 2))
        return dataset.vector(
            "a bit flipped in part 2, its manifest entry unchanged", "IntegrityError", "file"
        )

    def parts_swapped(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        first, second = dataset.get(part_name(0)), dataset.get(part_name(1))
        dataset.put(part_name(0), second)
        dataset.put(part_name(1), first)
        dataset.refresh()
        return dataset.vector(
            "parts 0 and 1 swapped, the manifest rewritten to match", "IntegrityError", "binding"
        )

    def meta_replaced(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        dataset.put(META_NAME, dataset.get(part_name(0)))
        dataset.refresh()
        return dataset.vector(
            "the meta file replaced by part 0, the manifest rewritten to match",
            "IntegrityError",
            "binding",
        )

    def from_another_dataset(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        other = Dataset(f"{name} (other)")
        dataset.put(part_name(1), other.get(part_name(1)))
        dataset.refresh()
        return dataset.vector(
            "part 1 taken from another dataset, the manifest rewritten to match",
            "IntegrityError",
            "binding",
        )

    def part_dropped(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        del dataset.files[dataset.path(part_name(2))]
        dataset.part_count = 2  # the manifest says two parts; the files were made for three
        dataset.refresh()
        return dataset.vector(
            "the last part dropped and the manifest rewritten for two parts",
            "IntegrityError",
            "binding",
        )

    def reader_context_differs(name: str) -> dict[str, Any]:
        return Dataset(name).vector(
            "the reader demands another context",
            "ContextMismatchError",
            "context",
            reader_context={"project": "hermes"},
        )

    def part_context_differs(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        data = table(2 * ROWS_PER_PART, ROWS_PER_PART)
        context = {"project": "hermes"} | dataset.binding("2")
        file = kmsnb_file(f"{name}/{part_name(2)}", parquet(data), context)
        dataset.put(part_name(2), file)
        dataset.refresh()
        return dataset.vector(
            "part 2 is bound to its place but under another context than the meta's",
            "ContextMismatchError",
            "context",
        )

    def payload_tampered(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        part = dataset.get(part_name(1))
        dataset.put(part_name(1), flip(part, len(part) - 20))
        dataset.refresh()
        return dataset.vector(
            "a bit flipped in part 1's last chunk, the manifest rewritten to match",
            "IntegrityError",
            "payload",
        )

    def not_parquet(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        dataset.put(
            part_name(1),
            dataset.encrypt(part_name(1), table(4, 4), "1", content_type=b"text/csv"),
        )
        dataset.refresh()
        return dataset.vector(
            "part 1's content type is text/csv, the manifest rewritten to match",
            "FormatError",
            "binding",
        )

    def wrapped_for_another_context(name: str) -> dict[str, Any]:
        dataset = Dataset(name)
        wrong = dataset.context | dataset.binding("0", dataset_id="0" * 32)
        dataset.put(
            part_name(0),
            dataset.encrypt(part_name(0), table(0, 4), "0", wrap_context=wrong),
        )
        dataset.refresh()
        return dataset.vector(
            "part 0's data key was wrapped under another context than its header's",
            "WrongKeyError",
            "key",
        )

    return {
        "generation_missing": generation_missing,
        "part_missing": part_missing,
        "extra_part": extra_part,
        "size_differs": size_differs,
        "sha256_differs": sha256_differs,
        "parts_swapped": parts_swapped,
        "meta_replaced_by_a_part": meta_replaced,
        "part_from_another_dataset": from_another_dataset,
        "part_dropped": part_dropped,
        "reader_context_differs": reader_context_differs,
        "part_context_differs": part_context_differs,
        "payload_tampered": payload_tampered,
        "part_not_parquet": not_parquet,
        "wrapped_for_another_context": wrapped_for_another_context,
    }


def build_vectors() -> dict[str, str]:
    """Every vector file's name and exact text."""
    builders = {**_success(), **_manifest_failures(), **_edited_failures()}
    return {
        f"{name}.json": json.dumps(build(name), indent=1, ensure_ascii=False) + "\n"
        for name, build in sorted(builders.items())
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    arguments = parser.parse_args(argv)
    vectors = build_vectors()
    if arguments.check:
        stale = [name for name, text in vectors.items() if _read(FOLDER / name) != text]
        extra = {path.name for path in FOLDER.glob("*.json")} - vectors.keys()
        for name in [*stale, *sorted(extra)]:
            print(f"differs or unexpected: {name}", file=sys.stderr)
        return 1 if stale or extra else 0
    for path in FOLDER.glob("*.json"):
        if path.name not in vectors:
            path.unlink()
    for name, text in vectors.items():
        (FOLDER / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {FOLDER}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
