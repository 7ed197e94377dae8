"""Every benchmark figure against its baseline, in one run: a Markdown table of ratios
on stdout and the same as JSON.

    .venv/bin/python bench/run.py [--runs 7] [--json bench/results.json] [--dir /work]
                                  [--only localfs,obstore,http,s3,async,sync]

Each figure interleaves our runs with its baseline's after a warm-up, and reports the
median and min-max of the per-run ratio (above 1.0: we did better). Baselines are
started or installed here: nginx and wrk from Debian, a throw-away Ceph cluster
(scripts/ceph-rgw), obstore from the dev extra, rclone from Debian, awscli from
PyPI. Needs root for the Debian packages.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import async_vs_obstore
import http_vs_nginx
import localfs_files
import localfs_vs_obstore
import s3_vs_boto3
import sync_vs_rclone
from _common import Figure, machine, table, write_json

GROUPS = ("localfs", "obstore", "http", "s3", "async", "sync")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per figure after a warm-up (default 7)")
    parser.add_argument("--json", default="bench/results.json", help="where to write the figures")
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    parser.add_argument(
        "--only", default=",".join(GROUPS), help="comma-separated groups: " + ",".join(GROUPS)
    )
    parser.add_argument("--mib", type=int, default=256, help="size of the big-file figures")
    parser.add_argument("--objects", type=int, default=10_000, help="small objects put and stat'ed")
    parser.add_argument("--listed", type=int, default=100_000, help="keys listed")
    parser.add_argument("--s3-sizes", default="64,1024", help="S3 object sizes in MiB")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    options = parser.parse_args()
    groups = options.only.split(",")
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    figures: list[Figure] = []
    if "localfs" in groups:
        print("== localfs: big files", file=sys.stderr)
        figures += localfs_files.figures(options.runs, options.mib, options.dir)
    if "obstore" in groups:
        print("== localfs against obstore LocalStore", file=sys.stderr)
        figures += localfs_vs_obstore.figures(options.runs, options.objects, options.listed, options.dir)
    if "http" in groups:
        print("== serve against nginx", file=sys.stderr)
        figures += http_vs_nginx.figures(options.runs, options.mib, options.seconds, options.dir)
    if "s3" in groups:
        print("== S3Store against boto3 and obstore on Ceph", file=sys.stderr)
        sizes = tuple(int(size) for size in options.s3_sizes.split(","))
        figures += s3_vs_boto3.figures(options.runs, sizes, options.dir)
    if "async" in groups:
        print("== AsyncStore against obstore's async API and our sync API", file=sys.stderr)
        figures += async_vs_obstore.figures(options.runs, options.mib, options.dir)
    if "sync" in groups:
        print("== sync localfs to Ceph against rclone and aws s3 sync", file=sys.stderr)
        figures += sync_vs_rclone.figures(min(options.runs, 3), folder=options.dir)
    seconds = time.monotonic() - started

    about = machine(options.dir or ".")
    print(f"{len(figures)} figures in {seconds:.0f} s, {options.runs} runs each after a warm-up")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in about.items()))
    print()
    print(table(figures))
    missed = [f for f in figures if f.met is False]
    print(f"\n{len(missed)} of {sum(f.met is not None for f in figures)} targets missed")
    if options.json:
        os.makedirs(os.path.dirname(options.json) or ".", exist_ok=True)
        command = "bench/run.py " + " ".join(sys.argv[1:])
        write_json(
            options.json, figures, {"command": command.strip(), "seconds": round(seconds)}, options.dir or "."
        )


if __name__ == "__main__":
    main()
