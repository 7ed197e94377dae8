"""Temporary files that become objects by an atomic rename.

On Linux a temp file is made with ``O_TMPFILE``: it has no name while it is
written, so a writer that is killed or hits a full disk leaves nothing behind.
It is linked under a random temp name (`temp_name`) only inside the folder lock,
just before the rename that publishes it, so a clean-up (which holds that lock)
never sees a live writer's. Elsewhere it is created under a random temp name,
and its writer holds an ``flock`` on it for its whole life, so a clean-up can
tell a dead writer's leftover (lock free) from a live one's. Temp files are only
ever created exclusively: a file already at a name (a hard link, a FIFO a person
put there) is never opened, written through or removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Sequence

from ._layout import is_temp_name, temp_name
from ._linux import preallocate, start_writeback
from ._tree import replace

_WRITE_FLAGS = os.O_WRONLY | os.O_CLOEXEC
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
_CAN_LINK_UNNAMED = bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")
_MAX_NAME_TRIES = 100
_PREALLOCATE_FROM = 256 * 1024
_WRITE_PIECE = 1 << 20
"""Writes go down 1 MiB at a time, each followed by ``sync_file_range`` to start its
writeback: larger pieces let a durable put stall behind another process's fsync
(docs/performance.md)."""
_IOV_MAX = 1024
"""The most buffers one ``writev`` takes on Linux."""


class TempFile:
    """A file being written in a folder; invisible to readers until `publish`.

    A `durable` one (to be fsynced) gets each large piece's blocks allocated
    before writing it and its writeback started right after. One that is not
    durable is never preallocated: after a power cut, a preallocated file can
    come back at its full length with zeros where its data had not reached the
    disk (its size is in the journal, its data is not), and its sidecar would
    then vouch for those zeros. Written without preallocation, a file's length
    on disk only grows as its data gets there (on ext4 in its default
    ``data=ordered`` mode, and on XFS). When a write fails, it calls
    `on_full` with the error and tries again if that returns True (the disk
    was full and space came back).
    """

    def __init__(
        self, dir_fd: int, *, durable: bool = False, on_full: Callable[[OSError], bool] | None = None
    ) -> None:
        self.dir_fd = dir_fd
        self.durable = durable
        self._on_full = on_full
        self.name: str | None = None
        self.size = 0
        self._preallocate = durable
        self.fd = self._create(dir_fd)
        if self.name is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                self.discard()
                raise

    def _create(self, dir_fd: int) -> int:
        if _CAN_LINK_UNNAMED:
            try:
                return os.open(".", _O_TMPFILE | _WRITE_FLAGS, 0o644, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        self.name, fd = create_exclusive(dir_fd, _WRITE_FLAGS, 0o644)
        return fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append `data` (`write_pieces`)."""
        self.write_pieces([data])

    def write_pieces(self, pieces: Sequence[bytes | bytearray | memoryview]) -> None:
        """Append `pieces` in order, `_WRITE_PIECE` bytes at a time, each gathered into
        as few system calls as it allows (no copy to join them); a large write gets
        its blocks allocated first (see `_linux`), and a durable one its writeback
        started."""
        batch: list[memoryview] = []
        filled = 0
        for piece in pieces:
            view = memoryview(piece).cast("B")
            while view:
                take = view[: _WRITE_PIECE - filled]
                batch.append(take)
                filled += len(take)
                view = view[len(take) :]
                if filled == _WRITE_PIECE:
                    self._write_batch(batch, filled)
                    batch, filled = [], 0
        if batch:
            self._write_batch(batch, filled)

    def _write_batch(self, views: list[memoryview], length: int) -> None:
        offset = self.size
        if self._preallocate and length >= _PREALLOCATE_FROM:
            try:
                self._preallocate = preallocate(self.fd, offset, length)
            except OSError as exc:
                if not self._space_came_back(exc):
                    raise
                self._preallocate = preallocate(self.fd, offset, length)
        self.size += length
        first = 0  # views before this one are written
        while first < len(views):
            try:
                written = os.writev(self.fd, views[first : first + _IOV_MAX])
            except OSError as exc:
                if not self._space_came_back(exc):
                    raise
                continue
            while written:
                if written >= len(views[first]):
                    written -= len(views[first])
                    first += 1
                else:
                    views[first] = views[first][written:]
                    written = 0
        if self.durable and length >= _PREALLOCATE_FROM:
            start_writeback(self.fd, offset, length)

    def _space_came_back(self, exc: OSError) -> bool:
        return self._on_full is not None and self._on_full(exc)

    def sync(self) -> None:
        os.fsync(self.fd)

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def publish(self, dir_fd: int, name: str) -> None:
        """Rename the file to `name` in folder `dir_fd`, replacing what is there.

        The caller holds that folder's lock. An unnamed file is first linked as
        a random temp name that only exists under that lock: if the rename fails,
        the name is gone again before this raises.
        """
        if self.name is not None:
            if self.dir_fd == dir_fd:
                replace(dir_fd, self.name, name, lazy=not self.durable)
            else:  # a named temp file, in the folder as it was opened before streaming
                os.rename(self.name, name, src_dir_fd=self.dir_fd, dst_dir_fd=dir_fd)
            self.name = None
            return
        source = f"/proc/self/fd/{self.fd}"
        for _ in range(_MAX_NAME_TRIES):
            staging = temp_name()
            try:
                os.link(source, staging, dst_dir_fd=dir_fd, follow_symlinks=True)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free temp name", staging)
        try:
            replace(dir_fd, staging, name, lazy=not self.durable)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging, dir_fd=dir_fd)
            raise

    def discard(self) -> None:
        """Close the file and remove it if it still has a temporary name."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)
            self.name = None


def create_exclusive(dir_fd: int, flags: int, mode: int) -> tuple[str, int]:
    """Create a new file under a random temp name in `dir_fd`, exclusively (never
    opening what is already there); its name and descriptor, opened with `flags`."""
    for _ in range(_MAX_NAME_TRIES):
        name = temp_name()
        try:
            return name, os.open(name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp name")


def is_stale(dir_fd: int, name: str, min_age_seconds: float, now: float) -> bool:
    """True if `name` is a temp file (see `temp_name`) left by a writer that is gone.

    The caller holds the folder's lock, so no live writer is publishing here: a
    temp file whose ``flock`` is free and that is older than `min_age_seconds`
    (its writer may not have locked it yet) is a leftover. Any other name is not.
    """
    if not is_temp_name(name):
        return False
    try:
        # O_NONBLOCK: a FIFO under a temp name must not hang the clean-up.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and now - st.st_mtime >= min_age_seconds
    finally:
        os.close(fd)
