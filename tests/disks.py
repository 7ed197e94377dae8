"""Small disks for the tests, mounted by the test itself (which needs root, as CI
has): a tmpfs of a given size, and an ext4 on a loop device whose power the test
can cut."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@contextlib.contextmanager
def small_tmpfs(mount: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of `mib` MiB at `mount` (made here), unmounted at the end; a store
    opened on it must be closed first."""
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def free_bytes(path: Path) -> int:
    """The bytes an unprivileged writer may still write on `path`'s filesystem."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


_EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
_EXT4_GOING_FLAGS_NOLOGFLUSH = 2


@contextlib.contextmanager
def journaled_ext4(image: Path, mount: Path, mib: int = 128) -> Iterator[Path]:
    """A fresh ext4 with a journal, in its default ``data=ordered`` mode, on a loop
    device backed by the file `image`, mounted at `mount` (made here), unmounted
    at the end."""
    subprocess.run(["truncate", "-s", f"{mib}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def power_cut(mount: Path) -> None:
    """Cut the power of the ext4 at `mount`: from now on nothing more reaches its
    disk (``EXT4_IOC_SHUTDOWN`` without flushing the journal, as xfstests' godown
    does). `remount` then replays what the journal had committed, as a reboot
    would; stores on it must be closed before."""
    fd = os.open(mount, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, _EXT4_IOC_SHUTDOWN, struct.pack("I", _EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def remount(image: Path, mount: Path) -> None:
    """Unmount the ext4 at `mount` and mount `image` there again."""
    subprocess.run(["umount", str(mount)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)


needs_loop = pytest.mark.skipif(
    not os.path.exists("/dev/loop-control"), reason="no loop devices on this machine (/dev/loop-control)"
)
