"""Generations: the dataset directory on disk, and switching it in one step.

Each write makes a new generation folder (``gen-<dataset id>``) beside whatever is there;
its files appear only once complete (:mod:`kmsnb._files`). The manifest is written last
and replaced by a rename (:func:`switch_manifest`), so the path holds the old dataset
whole or the new one whole at every instant. Only then is the old generation removed,
with the leftovers of writes that were killed (:func:`remove_leftovers`).

A writer holds a shared ``flock`` on its generation until it is done, and so does each
task while it writes its part (:func:`writing_in`); removing a generation takes the lock
exclusively, so it waits for tasks Dask left running, and a sweep never takes a live
writer's generation for a leftover. Only files and folders kmsnb wrote are ever removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from kmsnb._files import atomic_output, fsync_directory, is_temporary_name
from kmsnb.dask._manifest import GENERATION, MANIFEST_NAME, META_NAME, PART_NAME, Manifest


@contextlib.contextmanager
def writing_in(generation: Path) -> Iterator[None]:
    """Hold a shared lock on ``generation`` while a task writes in it.

    When a task fails, Dask raises at once, but the other tasks already running go on
    (neither threads nor distributed workers can be stopped) and may add their parts
    later. :func:`remove_generation` takes the lock exclusively, so it waits for them;
    a task that starts after the removal finds no folder and writes nothing.
    """
    fd = os.open(generation, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def is_our_file(entry: Path) -> bool:
    name = entry.name
    if entry.is_symlink() or not entry.is_file():
        return False
    return (
        name in (MANIFEST_NAME, META_NAME)
        or PART_NAME.fullmatch(name) is not None
        or is_temporary_name(name)
    )


def _is_ours(entry: Path) -> bool:
    """A file kmsnb.dask writes, or a generation folder holding nothing else."""
    if GENERATION.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
        return all(is_our_file(inner) for inner in entry.iterdir())
    return is_our_file(entry)


def check_target(directory: Path, *, overwrite: bool) -> bytes | None:
    """Refuse a target that is not ours to fill, before any KMS call or change on disk.

    Returns:
        the manifest there now (``None`` if none), so that the switch can tell whether
        another writer replaced it meanwhile.
    """
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    entries = list(directory.iterdir()) if directory.exists() else []
    foreign = sorted(entry.name for entry in entries if not _is_ours(entry))
    manifest = _read_manifest_bytes(directory)
    # Leftovers of a write that never finished (no manifest) are not a dataset to keep.
    if not overwrite and (foreign or manifest is not None):
        raise FileExistsError(
            f"{directory} is not empty; pass overwrite=True to replace a dataset there"
        )
    if foreign:
        shown = ", ".join(map(repr, foreign[:3])) + (", ..." if len(foreign) > 3 else "")
        raise FileExistsError(
            f"{directory} holds files kmsnb.dask did not write ({shown}); even with "
            "overwrite=True they are kept: remove them or choose another path"
        )
    return manifest


def _read_manifest_bytes(directory: Path) -> bytes | None:
    try:
        return (directory / MANIFEST_NAME).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def new_generation(directory: Path, generation: str) -> tuple[bool, int]:
    """Create ``directory`` if needed and the new generation in it, locked while it is
    written; return whether ``directory`` was created, and the lock's descriptor."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / generation
    folder.mkdir()  # a fresh random name: never an existing folder
    fsync_directory(directory)  # the folder exists on disk before a manifest names it
    # The lock tells a concurrent writer's sweep that this generation is not a leftover;
    # the kernel drops it when this process dies, kill -9 included. Shared, as the tasks'
    # (see writing_in): a sweep needs it exclusive, and flock locks of two descriptors
    # conflict even within one process.
    lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(lock, fcntl.LOCK_SH)
    return created, lock


def _is_abandoned(folder: Path) -> bool:
    """Whether no live writer or task holds ``folder`` (see :func:`new_generation`)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def switch_manifest(directory: Path, manifest: Manifest, *, previous: bytes | None) -> None:
    """Publish ``manifest`` in one step: a rename over the old one, if it is still there.

    A manifest that changed since :func:`check_target` means another writer finished
    meanwhile; replacing it would publish over a dataset it may still be reading.
    """
    if _read_manifest_bytes(directory) != previous:
        raise FileExistsError(
            f"{directory} was written by another writer meanwhile; its dataset was kept"
        )
    data = manifest.to_json().encode("utf-8")
    with atomic_output(directory / MANIFEST_NAME, overwrite=previous is not None) as output:
        output.write(data)


def remove_generation(folder: Path) -> None:
    """Remove a generation once no task writes in it any more (see :func:`writing_in`).

    The caller must not hold the generation's lock itself: this would wait for it.
    """
    try:
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            for entry in folder.iterdir():
                if is_our_file(entry):
                    entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # kept if something foreign appeared in it
    finally:
        os.close(lock)


def remove_leftovers(directory: Path, *, keep: str) -> None:
    """After the switch: remove older generations, 0.1's flat files and killed writes'
    generations. Temporary files are left to atomic_output's sweep: a live one may
    belong to another writer."""
    for entry in directory.iterdir():
        name = entry.name
        if name in (MANIFEST_NAME, keep) or is_temporary_name(name):
            continue
        if GENERATION.fullmatch(name) and entry.is_dir() and not entry.is_symlink():
            if _is_abandoned(entry):
                remove_generation(entry)
        elif is_our_file(entry):
            entry.unlink(missing_ok=True)
    fsync_directory(directory)
