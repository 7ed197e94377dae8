"""Listing local objects in S3's order (UTF-8 bytes of the key), one folder open
at a time however deep the tree."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from ..._errors import NotFoundError, StorageError
from ..._keys import is_valid_key, segment_problem
from ..._models import ObjectInfo
from . import _sidecar as sidecar
from . import _tree as tree
from ._common import corrupt, info_of, os_errors, split_key
from ._layout import SIDECAR_SUFFIX
from ._reading import Reading

log = logging.getLogger("visiona_storage.localfs")


class Listing(Reading):
    """`list`."""

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder, start = split_key(prefix)
        with os_errors(prefix, "list"):
            try:
                dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=prefix)
            except StorageError:
                return
            if dir_fd is None:
                return
            yield from self._walk(dir_fd, folder + "/" if folder else "", start)

    def _walk(self, top_fd: int, top_prefix: str, start: str) -> Iterator[ObjectInfo]:
        """Yield the objects under the open folder `top_fd` in S3 order; closes `top_fd`.

        One folder is open at a time, however deep the tree: going down closes the
        parent, which is opened again (by its path, from the root) on the way back.
        """
        dir_fd = top_fd
        stack: list[tuple[str, Iterator[tuple[str, bool]]]] = []
        try:
            stack.append((top_prefix, iter(_sorted_entries(dir_fd, top_prefix, start))))
            while stack:
                prefix, entries = stack[-1]
                entry = next(entries, None) if dir_fd >= 0 else None
                if entry is None:
                    stack.pop()
                    if dir_fd >= 0:
                        os.close(dir_fd)
                    dir_fd = self._reopen(stack[-1][0]) if stack else -1
                    continue
                name, is_dir = entry
                if not is_dir:
                    info = self._list_entry(dir_fd, name, prefix + name)
                    if info is not None:
                        yield info
                    continue
                try:
                    child = os.open(name, tree.DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue  # removed or replaced meanwhile
                os.close(dir_fd)
                dir_fd = child
                below = prefix + name + "/"
                stack.append((below, iter(_sorted_entries(child, below, ""))))
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)

    def _reopen(self, prefix: str) -> int:
        """The folder a listing returns to (``"a/b/"``), or -1 if it is gone meanwhile."""
        folder = prefix.rstrip("/")
        try:
            dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=folder)
        except StorageError:
            return -1  # replaced by a file or a symlink while its subfolder was listed
        return -1 if dir_fd is None else dir_fd

    def _list_entry(self, dir_fd: int, name: str, key: str) -> ObjectInfo | None:
        """The common listed key in four system calls, as `_stat` does it, relative
        to its folder; anything unusual goes `_list_entry_carefully`."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            fd = os.open(name + SIDECAR_SUFFIX, tree.FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            return self._list_entry_carefully(dir_fd, name, key)
        info = self._trusted_info(key, st, fd)
        return self._list_entry_carefully(dir_fd, name, key) if info is None else info

    def _list_entry_carefully(self, dir_fd: int, name: str, key: str) -> ObjectInfo | None:
        try:
            version, st = self._version(dir_fd, name, key)
        except NotFoundError:
            return None  # deleted while listing
        except sidecar.CorruptSidecarError as exc:
            log.warning("list skips %r: %s", key, corrupt(key, exc))
            return None
        except StorageError as exc:
            log.warning("list skips %r: %s", key, exc)
            return None
        return info_of(key, version, st)


def _sorted_entries(dir_fd: int, prefix: str, start: str) -> list[tuple[str, bool]]:
    """The folder's objects and subfolders as (name, is_folder), in S3 key order.

    A folder ``d`` sorts as ``d/``, which places every key below it exactly where
    S3's byte order puts it. Only names that are valid keys are listed: never
    sidecars, temp files, symlinks or the store's own folder.
    """
    found = []
    with os.scandir(dir_fd) as scan:
        for entry in scan:
            name = entry.name
            if name.endswith(SIDECAR_SUFFIX):  # half the names in a folder of objects
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and not entry.is_file(follow_symlinks=False):
                continue
            if is_dir and segment_problem(name) is not None:
                continue
            try:
                order = name.encode("utf-8") + (b"/" if is_dir else b"")
            except UnicodeEncodeError:
                continue  # not a UTF-8 name: never made by this store
            if start and not order.startswith(start.encode("utf-8")):
                continue
            if is_dir or is_valid_key(prefix + name):
                found.append((order, name, is_dir))
    found.sort()
    return [(name, is_dir) for _, name, is_dir in found]
