"""``visiona-storage sync``: the command over `visiona_storage.sync`.

``--from`` and ``--to`` each name a backend of the configuration (``localfs``,
``s3``) or the path of another configuration file. Output: with ``--dry-run``,
one line per object that would be copied or deleted; a summary line; one line on
stderr per key that failed (then the exit status is 1); on a terminal, a
progress line on stderr while it runs (``--progress`` elsewhere: a line every
`LOGGED_EVERY` seconds). ``--state FILE`` keeps the state cache in
FILE instead of the default (a FILE that cannot be used is an error, where the
default one is only warned about); ``--no-state`` runs without one.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from ._config import StorageConfig, check_config, load_config, open_store
from ._errors import ConfigError
from ._malloc import SYNC_ARENAS, limit_malloc_arenas
from ._store import Store
from ._sync import DEFAULT_WORKERS, SyncEvent, SyncReport, check_identities_apart, sync
from ._sync_state import SyncState, reason
from .backends.memory import MemoryStore

BACKENDS = ("localfs", "s3")


def add_sync_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sync`` among the command line's subcommands."""
    parser = commands.add_parser(
        "sync",
        help="copy to DST what SRC holds (verified, skipping what DST already has); --delete the rest",
    )
    where = "localfs, s3 (from the configuration), or another configuration file"
    parser.add_argument("--from", dest="source", required=True, metavar="SRC", help=where)
    parser.add_argument("--to", dest="target", required=True, metavar="DST", help=where)
    parser.add_argument("--prefix", default="", help="only keys that start with this")
    parser.add_argument(
        "--delete", action="store_true", help="delete objects under the prefix that SRC does not have"
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"parallel transfers (default {DEFAULT_WORKERS})"
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="the state cache of what earlier runs verified "
        "(default: $XDG_CACHE_HOME/visiona-storage/sync.sqlite)",
    )
    cache.add_argument(
        "--no-state",
        dest="state",
        action="store_false",
        help="use no state cache: prove every listed pair by stat or by hashing",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress line (default: on a terminal)",
    )
    parser.set_defaults(run=run_sync)


def run_sync(args: argparse.Namespace) -> int:
    """Run ``sync`` as `args` say; the exit status."""
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    config = load_config(args.config)
    limit_malloc_arenas(SYNC_ARENAS)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    source = config_named(config, args.source, "--from")
    target = config_named(config, args.target, "--to")
    if source.backend == "localfs" and not os.path.isdir(source.localfs.root):
        # Opening it would make an empty root, and --delete would then empty the destination.
        raise ConfigError(
            f"--from {args.source!r}: the localfs root {os.path.abspath(source.localfs.root)} "
            f"does not exist (a source is never created)"
        )
    if isinstance(args.state, str):
        _check_state_file(args.state)
    # Checked before opening them too: opening a localfs destination makes its root.
    check_identities_apart(_identity(source), _identity(target))
    with open_store(source) as src, _open_destination(target, dry_run=args.dry_run) as dst:
        output = _Output(sys.stdout, sys.stderr if show else None, dry_run=args.dry_run)
        report = sync(
            src,
            dst,
            args.prefix,
            delete=args.delete,
            dry_run=args.dry_run,
            workers=args.workers,
            progress=output.event,
            state=True if args.state is None else args.state,
        )
        output.finish(report)
    return 0 if report.ok else 1


def _open_destination(config: StorageConfig, *, dry_run: bool) -> Store:
    """The destination store. A localfs root that does not exist is made, with a
    line on stderr (a mistyped root shows at once); a dry run makes nothing and
    compares against an empty store instead."""
    if config.backend != "localfs" or os.path.lexists(config.localfs.root):
        return open_store(config)  # a root that is not a folder: open_store says so
    root = os.path.abspath(config.localfs.root)
    if dry_run:
        print(f"visiona-storage: the destination root {root} does not exist yet", file=sys.stderr)
        return MemoryStore()
    print(f"visiona-storage: making the destination root {root}", file=sys.stderr)
    return open_store(config)


def _check_state_file(path: str) -> None:
    """Raise `ConfigError` if the state file a user named cannot be used: asked for
    by name, it is not quietly done without, as the default one is."""
    try:
        SyncState(Path(path)).close()
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(
            f"--state {path}: cannot be used ({reason(exc)}); name another file, or run with --no-state"
        ) from None


def _identity(config: StorageConfig) -> str | None:
    """The `Store.identity` a localfs store of `config` will have; None for others."""
    if config.backend != "localfs":
        return None
    from .backends.localfs._store import identity_of  # noqa: PLC0415 - as open_store does

    return identity_of(config.localfs.root)


def config_named(config: StorageConfig, name: str, option: str) -> StorageConfig:
    """The configuration of the store `name` means: a backend of `config`, or the
    one another configuration file describes. Raises `ConfigError`."""
    if name in BACKENDS:
        return check_config(replace(config, backend=name))
    try:
        return load_config(name)
    except ConfigError as exc:
        if os.path.exists(name):  # a configuration file, with a mistake in it
            raise ConfigError(f"{option} {name}: {exc}") from None
        raise ConfigError(f"{option} {name!r}: not one of {', '.join(BACKENDS)}; {exc}") from None


LOGGED_EVERY = 5.0
"""Seconds between progress lines written to a file or a pipe."""


class _Output:
    """What ``sync`` prints as keys are settled (called one event at a time)."""

    def __init__(self, out: TextIO, progress: TextIO | None, *, dry_run: bool) -> None:
        self.out = out
        self.progress = progress
        self.dry_run = dry_run
        self.report = SyncReport(dry_run=dry_run)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._redraws = progress is not None and progress.isatty()
        """A terminal gets one line drawn over and over; a file or pipe (``--progress``
        redirected) a line marked ``progress:`` every `LOGGED_EVERY` seconds, each
        ended, the first after `LOGGED_EVERY` seconds (none for a shorter sync)."""
        self._drawn = 0.0 if self._redraws else self.started

    def event(self, event: SyncEvent) -> None:
        with self._lock:
            self.report._add(event)
            if self.dry_run and event.action in ("copy", "delete"):
                self._clear()
                print(f"would {event.action} {shown(event.key)}", file=self.out)
            if event.action == "fail":
                self._clear()
                print(f"visiona-storage: failed: {shown(event.key)}: {event.error}", file=sys.stderr)
            now = time.monotonic()
            every = 0.1 if self._redraws else LOGGED_EVERY
            if self.progress is not None and now - self._drawn >= every:
                self._drawn = now
                line = self._summary(now)
                self.progress.write(f"\r{line}" if self._redraws else f"progress: {line}\n")
                self.progress.flush()

    def finish(self, report: SyncReport) -> None:
        self._clear()
        print(self._summary(time.monotonic(), report), file=self.out)

    def _summary(self, now: float, report: SyncReport | None = None) -> str:
        """The progress line, or with the final `report`, the summary: it also says
        why keys were skipped, and how many without a request of their own."""
        r = report or self.report
        verb = "would copy" if self.dry_run else "copied"
        gone = "would delete" if self.dry_run else "deleted"
        seconds = now - self.started
        live = report is None and not self.dry_run and seconds >= 1
        rate = f" at {size_shown(r.bytes_copied / seconds)}/s" if live else ""
        why = ""
        if report is not None and r.skipped:
            why = (
                f" (the same bytes, content type and metadata at both ends;"
                f" {r.skipped_as_listed} without a request of their own)"
            )
        return (
            f"{verb} {r.copied} ({size_shown(r.bytes_copied)}{rate}), skipped {r.skipped}{why}, "
            f"{gone} {r.deleted}, failed {r.failed} in {seconds:.1f} s"
        )

    def _clear(self) -> None:
        if self.progress is not None and self._redraws and self._drawn:
            self.progress.write("\r\x1b[K")
            self.progress.flush()


def size_shown(count: float) -> str:
    """`count` bytes for a person: ``512 B``, ``4.0 KiB``, ``340.2 MiB``, ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError  # the loop returns at GiB


def shown(key: str) -> str:
    """`key` as a line shows it: quoted with escapes if it holds control characters
    (an S3 key another client wrote could otherwise fake lines or drive the terminal)."""
    return key if key.isprintable() else json.dumps(key, ensure_ascii=False)
