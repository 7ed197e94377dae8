"""Handing memory back to the operating system once large transfers end.

glibc keeps the memory that worker threads' 1 MiB pieces were freed from in its
per-thread arenas, so after a burst of large uploads or downloads ends the
process would stay at the burst's peak resident size. `MemoryReturner.soon` asks
glibc (``malloc_trim``) to return what is free, at most once per `delay` seconds,
in a worker thread. `keep_freed_heap` makes glibc keep the memory of those pieces
while transfers run, so it is not faulted in afresh. Elsewhere than glibc both do
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

from .._malloc import mallopt


def _find_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_BLOCKS = 4 << 20
"""Allocations up to this size come from the heap, not a mapping of their own: a
request body's 256 KiB messages and the 1 MiB pieces of uploads and downloads."""
KEPT_FREE = 64 << 20
"""Free memory at the top of the heap that glibc keeps instead of returning at once
(`MemoryReturner` returns it once transfers end)."""


def keep_freed_heap() -> bool:
    """Set this process's glibc to serve allocations up to `HEAP_BLOCKS` from its
    heap and keep up to `KEPT_FREE` of it free (``mallopt``), for a process whose
    transfers free and allocate such blocks all the time: by default glibc returns
    the top of the heap as soon as half a MiB of it is free, and a 256 MiB upload
    through `serve` then faults about 80 MiB back in on the event loop. Whether it
    was set (False elsewhere than glibc)."""
    if _MALLOC_TRIM is None:
        return False
    return mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCKS) and mallopt(_M_TRIM_THRESHOLD, KEPT_FREE)


class MemoryReturner:
    """Returns free heap memory to the system a little after transfers end, once
    for a run of them however many end together. Used from one event loop."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self._pending: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        """Return free memory `delay` seconds from now, unless already planned."""
        if _MALLOC_TRIM is None or self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another async library's loop (trio)
            return
        self._pending = loop.call_later(self.delay, self._trim, loop)

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        if _MALLOC_TRIM is not None:
            loop.run_in_executor(None, _MALLOC_TRIM, 0)
