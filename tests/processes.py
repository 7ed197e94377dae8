"""Helpers for tests that run `workers.py` commands in their own processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKERS = str(Path(__file__).with_name("workers.py"))


def spawn(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """Start ``workers.py ARGS...`` with its output piped (and its input, if `stdin`)."""
    return subprocess.Popen(
        [sys.executable, WORKERS, *args],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    """Wait for a worker; its last output line, parsed. Fails the test if the worker failed."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_all(args_list: list[list[str]], timeout: float = 300) -> list[dict[str, Any]]:
    """Run one worker per argument list, all at once; their results in the same order."""
    procs = [spawn(*args) for args in args_list]
    return [finish(proc, timeout) for proc in procs]
