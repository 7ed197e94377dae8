"""Helpers shared by the benchmarks: timing and peak memory."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB (VmHWM: unlike ``ru_maxrss``, not inherited across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
