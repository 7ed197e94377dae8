"""Freeing the blocks of replaced and deleted large files off the caller's path.

When the last name of a file goes (a rename over it, an unlink) and nothing holds
it open, the kernel frees its blocks there and then, inside that call: for a
file of hundreds of MiB on ext4 (more with ``discard``), tens of milliseconds,
mostly waiting, as long as hashing a good part of it (`bench/experiments/freeing.py` and
docs/performance.md measure it).

So before it removes the name of a large file the store opens the file
(`Reclaimer.hold`), and once the name is gone it hands the descriptor to a
background thread that closes it (`Reclaimer.release`): the freeing happens
there. The object is replaced or deleted when the call returns; only its space
comes back a moment later. A write that finds the disk full first waits for
the space on its way back (`Reclaimer.made_room`), and so does closing the store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import weakref
from typing import NamedTuple

RECLAIM_FROM = 8 << 20
"""Files smaller than this are freed in the call: their blocks come back in well
under a millisecond, and handing them to the thread made small puts slower."""
MAX_HELD = 32
"""At most this many files wait to be closed; past that, `release` closes in the
caller, so a burst of deletes cannot pile up descriptors."""
_HOLD_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ALL: weakref.WeakSet[Reclaimer] = weakref.WeakSet()


class Held(NamedTuple):
    """An open file whose name is about to go, and which file it is."""

    fd: int
    dev: int
    ino: int


class Reclaimer:
    """Closes, in a background thread, the files whose names a store removed."""

    def __init__(self) -> None:
        self._reset()
        _ALL.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._held: list[Held] = []  # the first is being closed while `_closing`
        self._closing = False

    def hold(self, dir_fd: int, name: str, st: os.stat_result | None) -> Held | None:
        """Open `name` in `dir_fd` if `st` (its ``lstat``) shows a regular file of at
        least `RECLAIM_FROM` bytes; the file to `release` once its name is gone, or
        None. Never raises: a file that cannot be opened is freed in the call."""
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size < RECLAIM_FROM:
            return None
        try:
            fd = os.open(name, _HOLD_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        return Held(fd, st.st_dev, st.st_ino)

    def release(self, held: Held | None) -> None:
        """Close `held` in the background; at once if `MAX_HELD` files wait already."""
        if held is None:
            return
        with self._lock:
            if len(self._held) < MAX_HELD:
                self._held.append(held)
                if not self._closing:
                    self._closing = True
                    threading.Thread(target=self._close_held, name="vs-reclaim", daemon=True).start()
                return
        _close(held.fd)

    def made_room(self, exc: OSError) -> bool:
        """After a write failed with `exc`: if that was a full disk and files were
        still waiting to be freed, wait for them and return True (try again)."""
        return exc.errno in (errno.ENOSPC, errno.EDQUOT) and self.drain()

    def drain(self) -> bool:
        """Wait until every released file is closed (its blocks freed); True if any was
        still waiting, that is, if some space may have come back."""
        with self._lock:
            waited = self._closing
            while self._closing:
                self._done.wait()
        return waited

    def _close_held(self) -> None:
        while True:
            with self._lock:
                if not self._held:
                    self._closing = False
                    self._done.notify_all()
                    return
                held = self._held[0]
            _close(held.fd)
            with self._lock:
                self._held.pop(0)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):  # a close that fails still frees the descriptor
        os.close(fd)


def _after_fork_in_child() -> None:
    """A forked child has copies of the held files but not the thread closing them
    (and perhaps a lock that thread held): close them here and start afresh. A
    descriptor is closed only if it is still the file held (the one being closed
    at the fork may be gone, its number reused)."""
    for reclaimer in list(_ALL):
        held = reclaimer._held
        reclaimer._reset()
        for fd, dev, ino in held:
            try:
                st = os.fstat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, ino):
                _close(fd)


if hasattr(os, "register_at_fork"):  # every POSIX system
    os.register_at_fork(after_in_child=_after_fork_in_child)
