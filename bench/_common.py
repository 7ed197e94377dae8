"""Helpers shared by the benchmarks: timing, peak memory, and the figure table.

A `Figure` holds our samples and its baseline's, measured in the same run and
interleaved, so each run gives one ratio; the table shows the median ratio and
its min-max over the runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

MiB = 1 << 20


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def install_commands(packages: dict[str, str]) -> None:
    """apt-get the Debian package of each command in `packages` (command: package)
    that is not on the PATH; needs root."""
    missing = [package for command, package in packages.items() if shutil.which(command) is None]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env
    )


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes `pids` have used, their ended
    threads included (10 ms ticks); a process that is gone counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds the main thread of process `pid` has run (the scheduler's
    nanoseconds, so exact where ticks are 10 ms); 0.0 if the process is gone."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return 0.0


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's children that have ended and
    been waited for (a `subprocess.run`, say)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB (VmHWM: unlike ``ru_maxrss``, not inherited across exec)."""
    return _status_mib("VmHWM")


def rss_mib() -> float:
    """This process's RSS now, in MiB."""
    return _status_mib("VmRSS")


def _status_mib(field_name: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def interleaved(
    runs: int,
    ours: Callable[[], object],
    theirs: Callable[[], object],
    settle: Callable[[], object] | None = None,
) -> tuple[list[float], list[float]]:
    """Seconds of `runs` runs of each, alternating, after one warm-up of each.

    `settle`, if given, runs untimed after every action: it waits for work an
    action left in the background (a replaced file still being freed), so that
    the next action, ours or theirs, does not pay for it.
    """
    mine: list[float] = []
    other: list[float] = []
    for index in range(runs + 1):
        for action, times in ((theirs, other), (ours, mine)):
            took = timed(action)
            if index:  # the first round is the warm-up
                times.append(took)
            if settle is not None:
                settle()
    return mine, other


@dataclass
class Figure:
    """One row of the table: our figure against its baseline's, run by run.

    For a rate (`higher_is_better`), ratio = ours / baseline; for a time or a size,
    ratio = baseline / ours, so that above 1.0 always means we did better. A figure
    with a `limit` is judged by its own value instead (a memory bound in MiB).
    """

    name: str
    baseline: str
    unit: str
    ours: list[float]
    theirs: list[float]
    target: float | None = None
    higher_is_better: bool = True
    limit: float | None = None
    note: str = ""
    ratios: list[float] = field(init=False)

    def __post_init__(self) -> None:
        pairs = zip(self.ours, self.theirs, strict=True)
        if self.higher_is_better:
            self.ratios = [o / t if t else 0.0 for o, t in pairs]
        else:
            self.ratios = [t / o if o else 0.0 for o, t in pairs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else 0.0

    @property
    def met(self) -> bool | None:
        if self.limit is not None:
            return max(self.ours) <= self.limit
        if self.target is None:
            return None
        return self.ratio >= self.target

    def goal(self) -> str:
        if self.limit is not None:
            return f"<= {self.limit:g} {self.unit}"
        return "" if self.target is None else f">= {self.target:g}"


def _median_range(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    digits = 0 if median >= 100 else (1 if median >= 10 else 2)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| figure | ours | baseline | unit | ratio, median (min-max) | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: ""}[f.met]
        ratio = "-" if f.limit is not None else _median_range(f.ratios)
        lines.append(
            f"| {f.name} | {_median_range(f.ours)} | {f.baseline}: {_median_range(f.theirs)} | {f.unit} "
            f"| {ratio} | {f.goal()} | {met} |"
        )
    notes = [f"- {f.name}, against {f.baseline}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def machine(folder: str = ".") -> dict[str, str]:
    """What the figures were measured on (`folder`: where the local figures wrote)."""
    with open("/proc/cpuinfo") as cpuinfo:
        models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    with open("/proc/meminfo") as meminfo:
        memory = next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))
    disk = subprocess.run(
        ["df", "--output=source,fstype", folder], check=False, capture_output=True, text=True
    ).stdout
    return {
        "cpu": f"{len(models)} x {models[0] if models else '?'}",
        "memory": f"{int(memory) / (1 << 20):.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "disk": " ".join(disk.split()[2:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_json(path: str, figures: list[Figure], about: dict[str, object], folder: str = ".") -> None:
    rows = []
    for f in figures:
        row = asdict(f)
        row["ratio"] = f.ratio
        row["met"] = f.met
        rows.append(row)
    with open(path, "w") as out:
        json.dump({"machine": machine(folder), **about, "figures": rows}, out, indent=1)
        out.write("\n")


class LoopStallWatch:
    """The worst lateness (seconds) of a task that sleeps 1 ms at a time, while it
    runs: how long the event loop was kept from it."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopStallWatch:
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - start - 0.001)
