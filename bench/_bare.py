"""The bare system calls of DESIGN.md's local layout, issued from Python with
nothing else: no validation, no JSON, no locking, no crash safety. What these take
is the floor under any implementation of the layout in Python.

Each object is a data file plus a ``.meta.json`` sidecar. So a put publishes two
files (obstore: one), a stat reads a sidecar besides the file's inode (obstore:
the inode only), and a listing reads every sidecar (obstore: names and inodes). A
file published over another is swapped in and the old one unlinked, as the store
does with fsync off (a plain ``rename`` over it makes ext4 start writing the new
file out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from visiona_storage.backends.localfs._layout import SIDECAR_SUFFIX as SUFFIX
from visiona_storage.backends.localfs._tree import replace

SIDECAR = b'{"format":1,"versions":[{"etag":"' + b"0" * 64 + b'","content_type":"application/octet-stream"}]}'
"""A sidecar of the size the store writes for a small object."""
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def make_folders(root: str, keys: Sequence[str]) -> int:
    """Make the folders of `keys` under `root`; an open descriptor of `root`."""
    for folder in {key.rpartition("/")[0] for key in keys}:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY)


def puts(root_fd: int, keys: Sequence[str], payload: bytes) -> None:
    """Put each key: open its folder, publish the data file and its sidecar."""
    for key in keys:
        folder, _, name = key.rpartition("/")
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd)
        publish(dir_fd, name, payload)
        publish(dir_fd, name + SUFFIX, SIDECAR)
        os.close(dir_fd)


def publish(dir_fd: int, name: str, data: bytes, *, xattr: bytes | None = None) -> None:
    """Write `data` to a temp file and swap it in as `name`; with `xattr`, the file
    also gets those bytes as its ``user.vs`` extended attribute."""
    fd = os.open(name + ".tmp", _WRITE, 0o644, dir_fd=dir_fd)
    os.write(fd, data)
    if xattr is not None:
        os.setxattr(fd, "user.vs", xattr)
    os.close(fd)
    replace(dir_fd, name + ".tmp", name, lazy=True)  # as a put with fsync off does


def stats(root_fd: int, keys: Sequence[str]) -> None:
    """The data file's inode and the sidecar's bytes, for each key."""
    for key in keys:
        os.stat(key, dir_fd=root_fd, follow_symlinks=False)
        fd = os.open(key + SUFFIX, os.O_RDONLY, dir_fd=root_fd)
        os.read(fd, 65536)
        os.close(fd)


def listing(folder: str) -> int:
    """Names, inodes and sidecars of every object under `folder`, folder by folder
    in name order; how many objects."""
    count = 0
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                count += listing(os.path.join(folder, entry.name))
                continue
            if entry.name.endswith(SUFFIX):
                continue
            entry.stat(follow_symlinks=False)
            fd = os.open(entry.name + SUFFIX, os.O_RDONLY, dir_fd=dir_fd)
            os.read(fd, 65536)
            os.close(fd)
            count += 1
    finally:
        os.close(dir_fd)
    return count
