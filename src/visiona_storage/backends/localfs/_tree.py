"""Walking the local tree without ever leaving the root.

Every path is opened in one ``openat2`` call that refuses symlinks and escapes,
or else one segment at a time relative to its parent's file descriptor with
``O_NOFOLLOW``, so neither ``..`` nor a symlink placed (or swapped in) under the
root can lead outside it. Folder locks are ``flock``s on
a folder's descriptor: they serialise commits in that folder between threads
and processes, and vanish with a killed process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..._errors import KeyConflictError, StorageError
from ._linux import exchange, open_beneath

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
"""How a data file or sidecar is opened for reading. ``O_NONBLOCK`` does nothing to a
regular file, but makes opening a FIFO put in its place return at once instead of
waiting for a writer (which would hang a get, or serve's whole event loop); the
caller then finds it is not a regular file."""

_MAX_RETRIES = 100


class FolderVanishedError(Exception):
    """A folder was removed (emptied and pruned) while it was being used; start again."""


def symlink_error(key: str | None, where: str) -> StorageError:
    return StorageError(f"{where!r} is a symlink under the storage root; it is never followed", key)


def open_folder(root_fd: int, folder: str, *, create: bool, key: str) -> int | None:
    """Open the folder ``root/folder`` (``"a/b"``; ``""`` is the root itself) and
    return its descriptor (the caller closes it).

    Returns ``None`` if it does not exist and `create` is false. With `create`,
    missing folders are made. Raises `KeyConflictError` when a segment is an
    object, `StorageError` when it is a symlink or anything but a folder.
    """
    for _ in range(_MAX_RETRIES):
        try:
            return _walk(root_fd, folder, create=create, key=key)
        except FolderVanishedError:
            continue
    raise StorageError(f"folders of {key!r} keep disappearing while being created", key)


def _walk(root_fd: int, folder: str, *, create: bool, key: str) -> int | None:
    if folder:
        fast = open_beneath(root_fd, folder, DIR_FLAGS)
        if fast is not None:
            return fast
    parts = folder.split("/") if folder else []
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    try:
        for depth, name in enumerate(parts):
            child = _open_child(fd, name, create=create, key=key, where="/".join(parts[: depth + 1]))
            os.close(fd)
            fd = -1
            if child is None:
                return None
            fd = child
        result, fd = fd, -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def _open_child(parent: int, name: str, *, create: bool, key: str, where: str) -> int | None:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except NotADirectoryError:
        return _not_a_folder(parent, name, create=create, key=key, where=where)
    try:
        # Under the parent's lock, which a put holds from checking its object's name
        # to publishing it there: a folder made at that name in between would be
        # replaced by (or, fsync off, swapped with) the object.
        with folder_lock(parent):
            os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise FolderVanishedError from None
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        raise FolderVanishedError from None


def _not_a_folder(parent: int, name: str, *, create: bool, key: str, where: str) -> int | None:
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise FolderVanishedError from None
    if stat.S_ISLNK(st.st_mode):
        raise symlink_error(key, where)
    if not create:
        return None
    if stat.S_ISREG(st.st_mode):
        raise KeyConflictError(
            f"cannot store {key!r}: {where!r} is an object, and on a filesystem "
            f"an object cannot also be a folder",
            key,
        )
    raise StorageError(f"{where!r} is neither a folder nor an object", key)


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of `name` in the folder, or ``None`` if there is nothing there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def unlink(dir_fd: int, name: str) -> bool:
    """Remove the file `name` if present; return whether it was there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def replace(dir_fd: int, source: str, target: str, *, lazy: bool) -> None:
    """Rename `source` over `target` in the folder: readers see the old file or the
    new one, never neither. Raises ``OSError``.

    `lazy` means the new file will not be fsynced. Then the two names are swapped
    and the old file unlinked, which spares the ``rename`` the writeback ext4 starts
    for a small unsynced file renamed over another (see `_linux`); after a power
    cut such a file may be empty, as any unsynced file may.
    """
    if lazy and exchange(dir_fd, source, target):
        os.unlink(source, dir_fd=dir_fd)
    else:
        os.rename(source, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def is_removed(dir_fd: int) -> bool:
    """True if the folder was removed from the tree after it was opened."""
    return os.fstat(dir_fd).st_nlink == 0


@contextmanager
def folder_lock(dir_fd: int) -> Iterator[None]:
    """Hold the folder's exclusive lock; raise `FolderVanishedError` if it was removed."""
    fcntl.flock(dir_fd, fcntl.LOCK_EX)
    try:
        if is_removed(dir_fd):
            raise FolderVanishedError
        yield
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)


def fsync_folder(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        # Some filesystems cannot fsync a folder; the data files themselves were synced.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def prune_empty_folders(root_fd: int, folder: str, key: str) -> None:
    """Remove the folders along ``root/folder`` that are empty, deepest first.

    Each removal holds the folder's lock, so a writer that is about to publish
    into it either finishes first (the folder is no longer empty) or sees the
    folder gone and makes it again.
    """
    parts = folder.split("/") if folder else []
    for depth in range(len(parts), 0, -1):
        parent = open_folder(root_fd, "/".join(parts[: depth - 1]), create=False, key=key)
        if parent is None:
            return
        try:
            if not remove_if_empty(parent, parts[depth - 1]):
                return
        finally:
            os.close(parent)


def remove_if_empty(parent: int, name: str) -> bool:
    """Remove the folder `name` if it is empty, holding its lock; return whether it was."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if is_removed(fd):
            return False
        with os.scandir(fd) as entries:
            if any(True for _ in entries):
                return False
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)
