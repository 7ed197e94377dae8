"""Settings of glibc's malloc for this process (``mallopt``); elsewhere than glibc
they do nothing."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_ARENA_MAX = -8
SYNC_ARENAS = 2
"""Arenas for ``visiona-storage sync``: its threads pass 8 MiB parts to one another,
and with one arena per thread (glibc's default, up to 8 per core) each keeps the
freed parts it last held: peak RSS of a sync of 4 x 256 MiB to S3 went from
200-245 MiB to 168 MiB, at the same speed."""


def mallopt(param: int, value: int) -> bool:
    """Set glibc's malloc parameter `param` (``M_*``) to `value` for this process;
    whether it was set (False elsewhere than glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        call = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(call(param, value))


def limit_malloc_arenas(count: int) -> bool:
    """Let glibc's malloc make at most `count` arenas in this process; call it before
    the threads start. Whether it was set. A process-wide setting: for commands,
    not for a library call."""
    return mallopt(_M_ARENA_MAX, count)
