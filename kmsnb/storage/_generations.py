"""Datasets on stores without rename: generation prefixes, the manifest written last.

A dataset at ``ROOT`` is a manifest ``ROOT/MANIFEST`` naming one generation, and the
generation's objects under ``ROOT/gen-<32 hex>/``. A write (kmsnb.dask's, per worker)
puts every part of a fresh generation first, each through
:func:`~kmsnb.storage.open_output` (so each part is whole or absent), then the manifest,
whose one atomic put switches the dataset: at every instant ``ROOT`` holds the old
dataset whole or the new one whole. Readers read the manifest and follow it, never a
listing. Only then is the old generation deleted (:func:`remove_generation`), and
generations no manifest names (left by killed writers) once they are older than
:data:`~kmsnb._files.STALE_AFTER_S` (a younger one may be another writer's, in flight:
object stores have no lock to tell).

What these functions do not decide (kmsnb.dask does): the manifest's content, and the
names of the parts. They work on local paths too, so Dask can use one code path.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from kmsnb._files import STALE_AFTER_S
from kmsnb.storage._location import Location, resolve
from kmsnb.storage._open import open_input, open_output
from kmsnb.storage._oss import delete_oss, list_oss

__all__ = [
    "GENERATION_PREFIX",
    "join",
    "list_generations",
    "new_generation",
    "read_manifest_bytes",
    "remove_generation",
    "remove_unreferenced_generations",
    "start_generation",
    "write_manifest",
]

GENERATION_PREFIX: Final = "gen-"


def new_generation() -> str:
    """A fresh generation name, ``gen-`` and 32 random hex digits."""
    return f"{GENERATION_PREFIX}{uuid.uuid4().hex}"


def start_generation(root: str, *, storage_options: Mapping[str, Any] | None = None) -> str:
    """A fresh generation of the dataset at ``root``, ready for its parts.

    On a local path its folder (and ``root``) are created; object stores need nothing,
    a prefix exists once an object is under it.
    """
    generation = new_generation()
    location = resolve(join(root, generation), storage_options=storage_options, writing=True)
    if location.is_local:
        os.makedirs(location.path, mode=0o700)
    return generation


def _is_generation(name: str) -> bool:
    digits = name.removeprefix(GENERATION_PREFIX)
    return (
        name.startswith(GENERATION_PREFIX)
        and len(digits) == 32
        and all(c in "0123456789abcdef" for c in digits)
    )


def join(root: str, *names: str) -> str:
    """``root/name/...`` for a URL or a local path (``/``-separated either way)."""
    for name in names:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a single path component")
    if not names:
        return root
    return "/".join([root.rstrip("/"), *names])


def read_manifest_bytes(
    root: str, manifest_name: str, *, storage_options: Mapping[str, Any] | None = None
) -> bytes | None:
    """The manifest's bytes, or ``None`` when there is none (not a dataset yet)."""
    try:
        with open_input(join(root, manifest_name), storage_options=storage_options) as source:
            return source.read()
    except FileNotFoundError:
        return None


def write_manifest(
    root: str,
    manifest_name: str,
    data: bytes,
    *,
    replace: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Switch the dataset to the generation ``data`` names: the last write of a dataset.

    Args:
        replace: a manifest is there (an overwrite); otherwise the put is a conditional
            create, so two writers of a new dataset cannot both succeed.

    Raises:
        FileExistsError: ``replace`` is false and another writer's manifest is there.
    """
    location = resolve(join(root, manifest_name), storage_options=storage_options, writing=True)
    if location.is_local:
        os.makedirs(os.path.dirname(location.path) or ".", mode=0o700, exist_ok=True)
    with open_output(location.url, overwrite=replace, storage_options=storage_options) as output:
        output.write(data)


def _objects(location: Location) -> list[tuple[str, float | None]]:
    """(path relative to ``location``, modified time) of every object under it."""
    if location.kind == "local":
        found: list[tuple[str, float | None]] = []
        for folder, _, names in os.walk(location.path):
            for name in names:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, location.path).replace(os.sep, "/")
                found.append((relative, os.lstat(path).st_mtime))
        return found
    if location.kind == "oss":
        prefix = location.path.rstrip("/") + "/"
        listed = list_oss(prefix, location.storage_options)
        return [(path.removeprefix(prefix), modified) for path, modified in listed]
    fs, path = _filesystem(location)
    fs.invalidate_cache(path)
    base = path.rstrip("/") + "/"
    return [
        (name.removeprefix(base), _timestamp(info))
        for name, info in fs.find(path, detail=True).items()
    ]


def _filesystem(location: Location) -> tuple[Any, str]:
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(location.url, **dict(location.storage_options))
    return fs, str(path)


def _timestamp(info: Mapping[str, Any]) -> float | None:
    """An fsspec listing entry's modified time (s3fs, memory and local name it apart)."""
    value: Any = info.get("LastModified") or info.get("created") or info.get("mtime")
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def list_generations(
    root: str, *, storage_options: Mapping[str, Any] | None = None
) -> dict[str, float | None]:
    """Each generation under ``root`` and when its newest object was written (``None``:
    the store did not say)."""
    location = resolve(root, storage_options=storage_options, writing=False)
    found: dict[str, float | None] = {}
    unknown: set[str] = set()
    for relative, modified in _objects(location):
        generation = relative.split("/", 1)[0]
        if not _is_generation(generation) or "/" not in relative:
            continue
        if modified is None:
            unknown.add(generation)
        found[generation] = max(found.get(generation) or 0.0, modified or 0.0)
    return {name: None if name in unknown else stamp for name, stamp in found.items()}


def remove_generation(
    root: str, generation: str, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Delete every object of ``generation`` (one no manifest names any more)."""
    if not _is_generation(generation):
        raise ValueError(f"{generation!r} is not a generation name")
    location = resolve(join(root, generation), storage_options=storage_options, writing=True)
    if location.kind == "local":
        shutil.rmtree(location.path, ignore_errors=False)
        return
    if location.kind == "oss":
        prefix = location.path.rstrip("/") + "/"
        objects = [prefix + relative for relative, _ in _objects(location)]
        delete_oss(objects, location.storage_options)
        return
    fs, path = _filesystem(location)
    fs.invalidate_cache(path)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def remove_unreferenced_generations(
    root: str,
    *,
    keep: str,
    older_than_s: float = STALE_AFTER_S,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Delete the generations other than ``keep`` last written over ``older_than_s`` ago.

    Returns:
        The generations removed.
    """
    now = time.time()
    removed = []
    for generation, modified in list_generations(root, storage_options=storage_options).items():
        if generation == keep or modified is None or now - modified < older_than_s:
            continue
        remove_generation(root, generation, storage_options=storage_options)
        removed.append(generation)
    return sorted(removed)
