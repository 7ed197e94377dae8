"""Handing memory back to the operating system once large transfers end.

glibc keeps the memory that worker threads' 1 MiB pieces were freed from in its
per-thread arenas, so after a burst of large uploads or downloads ends the
process would stay at the burst's peak resident size. `MemoryReturner.soon` asks
glibc (``malloc_trim``) to return what is free, at most once per `delay` seconds,
in a worker thread. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable


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
