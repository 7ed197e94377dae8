"""Linux calls Python's `os` lacks: ``openat2``, ``fallocate``, ``sync_file_range``,
``renameat2``.

``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` resolves a whole relative path
in the kernel and refuses it if any component is a symlink or would leave the
starting folder: the same guarantee as walking it one ``O_NOFOLLOW`` segment at a
time, in one system call instead of two per segment. Where it is missing (not
Linux, a kernel before 5.6, a seccomp filter), `open_beneath` returns ``None``
and the caller walks.

``fallocate`` gives a durable put's temp file its blocks before they are
written, so a full disk fails it early. Besides, ext4 writes out a file's
delayed-allocation blocks when it is renamed over an existing one
(``auto_da_alloc``), which made overwriting a 256 MiB object spend 0.15 s in
``rename``; preallocated, 0.05 s. A put without fsync is not preallocated (see
`TempFile`) and publishes by swapping names, which ext4 does not flush for.

``sync_file_range`` starts writing a durable put's chunks to disk as soon as they
are written, so the disk works while the rest is hashed and the final fsync has
little left to wait for.

``renameat2(RENAME_EXCHANGE)`` swaps two names in one atomic step. Renaming a
small file that was written without fsync over an existing one makes ext4 start
writing the file out inside the ``rename`` (``auto_da_alloc`` again: the blocks of
a small file are never preallocated); swapping the two names and unlinking the
old file does not, which halves the cost of publishing a small file with fsync
off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import sys
from typing import Any

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = 437  # the same number on every architecture listed below
_ARCHES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x")
_UNAVAILABLE = {errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP}  # EPERM: a seccomp filter
_SYNC_FILE_RANGE_WRITE = 2
_RENAME_EXCHANGE = 2


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _libc() -> Any:
    """The C library, or None off Linux and where openat2's number is not 437."""
    if sys.platform != "linux" or platform.machine() not in _ARCHES:
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_syscall = _libc_fallocate = _libc_sync_file_range = _libc_renameat2 = None
_HOW: dict[int, Any] = {}  # open_how arguments by flags, made once
_HOW_SIZE = ctypes.sizeof(_OpenHow)
if (_lib := _libc()) is not None:
    _syscall = _lib.syscall
    _syscall.restype = ctypes.c_long
    _libc_fallocate = _lib.fallocate
    _libc_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    _libc_fallocate.restype = ctypes.c_int
    _libc_sync_file_range = _lib.sync_file_range
    _libc_sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    _libc_sync_file_range.restype = ctypes.c_int
    _libc_renameat2 = getattr(_lib, "renameat2", None)  # glibc 2.28 and later
    if _libc_renameat2 is not None:
        _name, _flags = ctypes.c_char_p, ctypes.c_uint
        _libc_renameat2.argtypes = (ctypes.c_int, _name, ctypes.c_int, _name, _flags)
        _libc_renameat2.restype = ctypes.c_int


def open_beneath(dir_fd: int, path: str, flags: int) -> int | None:
    """Open `path` relative to `dir_fd` with `flags`, never through a symlink nor
    out of `dir_fd`; the new descriptor, or ``None`` if that could not be done in
    one call (missing, a symlink, not a folder, or no ``openat2``): then walk."""
    global _syscall  # noqa: PLW0603 - switched off once if the kernel refuses the call
    if _syscall is None:
        return None
    how = _HOW.get(flags)
    if how is None:
        how = _HOW[flags] = ctypes.byref(_OpenHow(flags, 0, _RESOLVE))
    fd = int(_syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), how, _HOW_SIZE))
    if fd >= 0:
        return fd
    if ctypes.get_errno() in _UNAVAILABLE:
        _syscall = None
    return None


def preallocate(fd: int, offset: int, length: int) -> bool:
    """Allocate the file's blocks for ``[offset, offset + length)``; False where the
    filesystem cannot (then writing simply allocates them). Raises ``OSError``
    (``ENOSPC``) when the disk is full."""
    if _libc_fallocate is None:
        return False
    if _libc_fallocate(fd, 0, offset, length) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EPERM):
        return False
    raise OSError(error, os.strerror(error))


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``[offset, offset + length)`` to disk without waiting, so that a
    later fsync finds most of the file already written (``sync_file_range``).
    Does nothing where the call is missing; the fsync still makes the file durable."""
    if _libc_sync_file_range is not None:
        _libc_sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def exchange(dir_fd: int, first: str, second: str) -> bool:
    """Swap the names `first` and `second` in the folder `dir_fd` atomically; False
    (and nothing done) where that cannot be done: `second` missing, no
    ``renameat2``, or a filesystem without ``RENAME_EXCHANGE``. Raises ``OSError``
    for anything else."""
    global _libc_renameat2  # noqa: PLW0603 - switched off once if the system refuses the call
    if _libc_renameat2 is None:
        return False
    if _libc_renameat2(dir_fd, os.fsencode(first), dir_fd, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error == errno.ENOSYS:
        _libc_renameat2 = None
        return False
    if error in (errno.ENOENT, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
        return False  # EINVAL: this filesystem cannot swap names; EPERM: a seccomp filter
    raise OSError(error, os.strerror(error), first)
