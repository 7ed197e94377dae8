"""Small disks for the tests: a tmpfs of a given size, mounted by the test itself
(which needs root, as CI has)."""

from __future__ import annotations

import contextlib
import os
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
