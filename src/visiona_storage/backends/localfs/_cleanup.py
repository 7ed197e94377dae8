"""Removing what crashed writers left under the root, and nothing else.

A crashed writer can leave two kinds of file: a temp file (named by
`temp_name`, ``.vs-<32 hex>.vs-tmp``, and no longer locked by its writer) and a
sidecar in this package's format whose data file is gone. Those are removed.
A file with a reserved-looking name that the store cannot prove it made (a
person's ``notes.meta.json``, ``x.vs-tmp``, ``X.META.JSON``) is left alone and
reported, never removed.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from typing import Literal

from ..._keys import reserved_name
from . import _sidecar as sidecar
from . import _tree as tree
from ._layout import SIDECAR_SUFFIX, is_temp_name
from ._tempfile import is_stale

log = logging.getLogger("visiona_storage.localfs")

"""Far above any sidecar this package writes (metadata is capped at 2 KB)."""


@dataclass(frozen=True)
class CleanupReport:
    """What `LocalFSStore.cleanup` did."""

    removed: int
    """Files removed: temp files of writers that are gone, and orphan sidecars."""
    kept: tuple[str, ...]
    """Paths under the root, with reserved-looking names, that the store cannot
    prove it made: left alone. Each is also logged as a warning."""


def clean_up(root_fd: int, min_age_seconds: float) -> CleanupReport:
    """Walk the tree under `root_fd` and remove the leftovers of crashed writers.

    Each folder is cleaned under its lock, so a live writer's files are never
    taken. Raises ``OSError``.
    """
    removed = 0
    kept: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        dir_fd = tree.open_folder(root_fd, folder, create=False, key=folder)
        if dir_fd is None:
            continue
        try:
            removed += _clean_folder(dir_fd, folder, min_age_seconds, pending, kept)
        finally:
            os.close(dir_fd)
    for path in kept:
        log.warning("cleanup leaves %r alone: its name is reserved, but the store did not make it", path)
    return CleanupReport(removed, tuple(sorted(kept)))


def _clean_folder(
    dir_fd: int, folder: str, min_age_seconds: float, pending: list[str], kept: list[str]
) -> int:
    removed = 0
    now = time.time()
    with os.scandir(dir_fd) as scan:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in scan]
    pending.extend(f"{folder}/{name}" if folder else name for name, is_dir in entries if is_dir)
    try:
        with tree.folder_lock(dir_fd):
            for name, is_dir in entries:
                if is_dir:
                    continue
                verdict = _verdict(dir_fd, name, min_age_seconds, now)
                if verdict == "remove":
                    removed += tree.unlink(dir_fd, name)
                elif verdict == "report":
                    kept.append(f"{folder}/{name}" if folder else name)
    except tree.FolderVanishedError:
        pass
    return removed


def _verdict(dir_fd: int, name: str, min_age_seconds: float, now: float) -> Literal["remove", "report", ""]:
    """The verdict on `name`: "remove" for a leftover, "report" for a reserved-looking
    name the store did not make, "" for anything else (objects, live sidecars and
    temp files)."""
    if is_temp_name(name):
        return "remove" if is_stale(dir_fd, name, min_age_seconds, now) else ""
    if name.endswith(SIDECAR_SUFFIX):
        data = tree.lstat(dir_fd, name[: -len(SIDECAR_SUFFIX)])
        if data is not None and stat.S_ISREG(data.st_mode):
            return ""  # the object's own sidecar; reads judge its contents
        return "remove" if is_our_sidecar(dir_fd, name) else "report"
    return "report" if reserved_name(name) is not None else ""


def is_our_sidecar(dir_fd: int, name: str) -> bool:
    """Whether the file `name` is a regular file holding a sidecar in this package's
    format (never following a symlink, never waiting on a FIFO)."""
    try:
        fd = os.open(name, tree.FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > sidecar.MAX_SIDECAR_BYTES:
            return False
        return sidecar.is_sidecar(os.read(fd, sidecar.MAX_SIDECAR_BYTES + 1))
    finally:
        os.close(fd)
