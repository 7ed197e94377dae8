"""`visiona-storage sync` from localfs to a real Ceph RGW against `rclone copy`
(Debian's rclone) and `aws s3 sync` (awscli from PyPI) over the same files, in the
same run: wall time and peak RSS of each command, and a no-change re-run over
10,000 objects against rclone's (ours with its state cache, in a file of the run's
own, and, as a note, with ``--no-state``).

Each tool runs as the command a user types, in a process of its own, at its
default parallelism (ours 8 transfers; rclone 4 transfers and 8 checkers; aws 10
requests), into a fresh bucket each run; the three alternate run by run. The
baselines skip the store's metadata sidecars (``--exclude '*.meta.json'``).

    .venv/bin/python bench/sync_vs_rclone.py [--runs 3] [--small 1000] [--large 4] [--many 10000]
                                             [--rerun-only]

Starts a throw-away Ceph cluster with scripts/ceph-rgw (root, Debian packages) unless
CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY and CEPH_RGW_SECRET_KEY point at one; installs
rclone with apt and awscli with pip (into a venv of its own) when missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import visiona_storage as vs
from _common import Figure, install_commands, table
from s3_vs_boto3 import boto3_client, ceph_env

MiB = 1 << 20
TOOLS = ("ours", "rclone", "aws")
EXCLUDED = ("*.meta.json", ".visiona-storage/**")
"""What the baselines leave out of the local root: the store's own files."""


def figures(
    runs: int = 3,
    small: int = 1000,
    large: int = 4,
    many: int = 10_000,
    folder: str | None = None,
    *,
    rerun_only: bool = False,
) -> list[Figure]:
    """The sync figures; every process's wall time and peak RSS. With `rerun_only`,
    only the no-change re-run's."""
    install_commands({"rclone": "rclone", "time": "time"})
    with tempfile.TemporaryDirectory(dir=folder) as work:
        aws = _awscli(work)
        with ceph_env(os.path.join(work, "ceph")) as env:
            if rerun_only:
                return [_rerun_figure(_dataset(Path(work, "many"), many, 1024), many, runs, env, aws, work)]
            sets = {
                f"{small} x 1 MiB": _dataset(Path(work, "small"), small, MiB),
                f"{large} x 256 MiB": _dataset(Path(work, "large"), large, 256 * MiB),
            }
            found: list[Figure] = []
            for name, root in sets.items():
                found += _copy_figures(name, root, runs, env, aws, work)
                shutil.rmtree(root)
            found.append(_rerun_figure(_dataset(Path(work, "many"), many, 1024), many, runs, env, aws, work))
            return found


def _copy_figures(name: str, root: Path, runs: int, env: dict[str, str], aws: str, work: str) -> list[Figure]:
    seconds: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    rss: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    client = boto3_client(env)
    for run in range(runs + 1):
        for tool in TOOLS:
            bucket = f"copy-{tool}-{run}"
            client.create_bucket(Bucket=bucket)
            took, peak = _run(_command(tool, root, bucket, env, aws, work), _tool_env(tool, env))
            _check_copied(client, bucket, root)
            _empty(client, bucket)
            if run:  # the first round warms up
                seconds[tool].append(took)
                rss[tool].append(peak)
    title = f"sync localfs to Ceph, {name}"
    return [
        Figure(title, "rclone copy", "s", seconds["ours"], seconds["rclone"], 1.0, higher_is_better=False),
        Figure(title, "aws s3 sync", "s", seconds["ours"], seconds["aws"], 1.0, higher_is_better=False),
        Figure(
            f"{title}: peak RSS",
            "rclone's",
            "MiB",
            rss["ours"],
            rss["rclone"],
            limit=256,
            higher_is_better=False,
            note=f"aws s3 sync {max(rss['aws']):.0f} MiB",
        ),
    ]


def _rerun_figure(root: Path, many: int, runs: int, env: dict[str, str], aws: str, work: str) -> Figure:
    """A re-run that finds nothing to copy, ours against rclone's, each over the
    bucket it filled itself."""
    client = boto3_client(env)
    seconds: dict[str, list[float]] = {"ours": [], "rclone": []}
    uncached: list[float] = []
    for tool in seconds:
        bucket = f"rerun-{tool}"
        client.create_bucket(Bucket=bucket)
        _run(_command(tool, root, bucket, env, aws, work), _tool_env(tool, env))
    for run in range(runs + 1):
        for tool, times in seconds.items():
            took, _ = _run(_command(tool, root, f"rerun-{tool}", env, aws, work), _tool_env(tool, env))
            if run:
                times.append(took)
        no_state = _command("ours", root, "rerun-ours", env, aws, work, cached=False)
        took, _ = _run(no_state, _tool_env("ours", env))
        if run:
            uncached.append(took)
    for tool in seconds:
        _empty(client, f"rerun-{tool}")
    return Figure(
        f"sync re-run with nothing to copy, {many} objects, localfs to Ceph",
        "rclone copy",
        "s",
        seconds["ours"],
        seconds["rclone"],
        1.0,
        higher_is_better=False,
        note=f"--no-state {statistics.median(uncached):.1f} s",
    )


def _dataset(root: Path, count: int, size: int) -> Path:
    """A local store of `count` random objects of `size` bytes."""
    with vs.LocalFSStore(root, fsync=False) as store:
        for i in range(count):
            store.put(f"models/{i:05d}.bin", os.urandom(size), metadata={"index": str(i)})
    return root


def _command(
    tool: str, root: Path, bucket: str, env: dict[str, str], aws: str, work: str, *, cached: bool = True
) -> list[str]:
    """The command line of `tool`; ours with the run's own state cache, or with
    none if not `cached`."""
    endpoint = env["CEPH_RGW_ENDPOINT"]
    if tool == "ours":
        config = Path(work, f"sync-{bucket}.yaml")
        s3 = {
            "endpoint": endpoint,
            "bucket": bucket,
            "access_key": env["CEPH_RGW_ACCESS_KEY"],
            "secret_key": env["CEPH_RGW_SECRET_KEY"],
        }
        config.write_text(yaml.safe_dump({"storage": {"localfs": {"root": str(root)}, "s3": s3}}))
        return [
            sys.executable,
            "-m",
            "visiona_storage",
            "--config",
            str(config),
            "sync",
            "--from",
            "localfs",
            "--to",
            "s3",
            *(["--state", str(Path(work, "sync-state.sqlite"))] if cached else ["--no-state"]),
        ]
    if tool == "rclone":
        excluded = [arg for pattern in EXCLUDED for arg in ("--exclude", pattern)]
        return ["rclone", "copy", str(root), f"ceph:{bucket}", *excluded]
    excluded = [arg for pattern in EXCLUDED for arg in ("--exclude", pattern.replace("**", "*"))]
    return [
        aws,
        "s3",
        "sync",
        str(root),
        f"s3://{bucket}",
        "--endpoint-url",
        endpoint,
        "--only-show-errors",
        *excluded,
    ]


def _tool_env(tool: str, env: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}  # rclone refuses one over plain HTTP
    out.update(
        {
            "RCLONE_CONFIG_CEPH_TYPE": "s3",
            "RCLONE_CONFIG_CEPH_PROVIDER": "Ceph",
            "RCLONE_CONFIG_CEPH_ENDPOINT": env["CEPH_RGW_ENDPOINT"],
            "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": env["CEPH_RGW_ACCESS_KEY"],
            "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": env["CEPH_RGW_SECRET_KEY"],
            "AWS_ACCESS_KEY_ID": env["CEPH_RGW_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": env["CEPH_RGW_SECRET_KEY"],
            "AWS_DEFAULT_REGION": "us-east-1",
            # Ceph RGW 16 refuses the streaming checksums newer botocore sends by default.
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }
    )
    return out


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `command`; its wall seconds and peak RSS in MiB. Raises if it fails.

    GNU time reports the peak: a child's own ``ru_maxrss`` would include the pages
    it shared with this (large) process between fork and exec."""
    started = time.perf_counter()
    result = subprocess.run(
        ["time", "-f", "peak-rss-kib %M", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    took = time.perf_counter() - started
    errors = result.stderr.decode(errors="replace")
    if result.returncode:
        raise RuntimeError(f"{command[0]} {command[1]} failed: {errors[-2000:]}")
    peak = int(errors.rsplit("peak-rss-kib ", 1)[1].split()[0])
    return took, peak / 1024


def _check_copied(client: object, bucket: str, root: Path) -> None:
    """Every object of `root` arrived, at its size (the tools verify the bytes)."""
    with vs.LocalFSStore(root, fsync=False) as store:
        wanted = {info.key: info.size for info in store.list()}
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):  # type: ignore[attr-defined]
        found.update((item["Key"], item["Size"]) for item in page.get("Contents", ()))
    if found != wanted:
        raise RuntimeError(f"{bucket}: {len(found)} objects arrived of {len(wanted)}")


def _empty(client: object, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):  # type: ignore[attr-defined]
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})  # type: ignore[attr-defined]
    client.delete_bucket(Bucket=bucket)  # type: ignore[attr-defined]


def _awscli(work: str) -> str:
    """The ``aws`` command: the one on the PATH, else awscli installed from PyPI into
    a venv of its own (it pins its own botocore)."""
    found = shutil.which("aws")
    if found:
        return found
    venv = os.path.join(work, "awscli")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "awscli"], check=True)
    return os.path.join(venv, "bin", "aws")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=1000, help="1 MiB objects")
    parser.add_argument("--large", type=int, default=4, help="256 MiB objects")
    parser.add_argument("--many", type=int, default=10_000, help="1 KiB objects of the re-run")
    parser.add_argument("--dir", default=None, help="where the local files go (default: a temp folder)")
    parser.add_argument("--rerun-only", action="store_true", help="only the no-change re-run figure")
    options = parser.parse_args()
    found = figures(
        options.runs, options.small, options.large, options.many, options.dir, rerun_only=options.rerun_only
    )
    print(table(found))


if __name__ == "__main__":
    main()
