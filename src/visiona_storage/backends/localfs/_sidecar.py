"""The metadata sidecar ``<name>.meta.json`` and how it is tied to its data file.

Data and sidecar are two files, so no single rename can publish both. Instead
each sidecar version names the exact data file it describes (inode, size and
modification time), and a commit publishes a sidecar holding *both* the new
version and the version of the data file still in place, then renames the new
data file in. At every instant, crash or not, the data file in place has its
version in the sidecar; a reader picks the version that matches the file it
opened, so data and metadata can never disagree.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

FORMAT = 1
MAX_SIDECAR_BYTES = 1 << 20
"""Far above any sidecar the store writes (metadata is at most a few KiB); a bigger
file is not one of its sidecars."""

_DECODER = json.JSONDecoder()


class FileIdentity(NamedTuple):
    """Which data file a version describes."""

    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


class Version(NamedTuple):
    """One object version: its data file, and what the store says about it."""

    file: FileIdentity
    etag: str
    content_type: str
    metadata: dict[str, str]


class CorruptSidecarError(ValueError):
    """The sidecar is not a sidecar this package wrote (truncated, edited, not JSON)."""


Entries = list[dict[str, Any]]
"""A sidecar's versions as parsed, newest first, not yet checked one by one."""


def encode(versions: Sequence[Version]) -> bytes:
    """The sidecar's bytes for `versions`, newest first."""
    doc = {
        "format": FORMAT,
        "versions": [
            {
                "etag": v.etag,
                "content_type": v.content_type,
                "metadata": v.metadata,
                "ino": v.file.ino,
                "size": v.file.size,
                "mtime_ns": v.file.mtime_ns,
            }
            for v in versions
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def find(raw: bytes, st: os.stat_result) -> Version | None:
    """The version in the sidecar `raw` that describes the data file whose ``stat``
    is `st`, if any. Raises `CorruptSidecarError` if `raw` is not a sidecar.

    It first looks for the entry the way `encode` writes it (see `find_written`,
    which stat, get and list call directly on their common path), and parses just
    that entry; a sidecar written any other way is parsed whole.
    """
    entry = find_written(raw, st)
    if entry is None:
        return match(parse(raw), st)
    return _version(entry, (st.st_ino, st.st_size, st.st_mtime_ns))


def find_written(raw: bytes, st: os.stat_result) -> dict[str, Any] | None:
    """The checked entry (see `checked`) for the data file whose ``stat`` is `st`,
    in a sidecar exactly as `encode` writes it; None if it is not found that way
    (then `find` parses the sidecar whole). Raises `CorruptSidecarError` if that
    entry is malformed.

    An entry ends with its file identity, ``..."mtime_ns":N}``, and starts
    with ``{"etag":``. Outside strings that text marks nothing
    else, and inside a JSON string it cannot occur (its quotes would be
    escaped), except ``{"etag":`` opening a metadata map with an ``etag`` key:
    then the object parsed from there ends before the identity, and this
    returns None.
    """
    tail = b'"mtime_ns":%d}' % st.st_mtime_ns
    end = raw.find(tail)
    if end < 0 or not raw.startswith(_WRITTEN_HEAD):
        return None
    start = raw.rfind(_ENTRY_HEAD, 0, end)
    if start < 0:
        return None
    try:
        text = raw[start : end + len(tail)].decode("utf-8")
        item, stop = _DECODER.raw_decode(text)
    except ValueError:
        return None
    if stop != len(text) or item.get("ino") != st.st_ino or item.get("size") != st.st_size:
        return None
    return checked(item)


_WRITTEN_HEAD = b'{"format":%d,"versions":[' % FORMAT
_ENTRY_HEAD = b'{"etag":'


def parse(raw: bytes) -> Entries:
    """A sidecar's version entries; raise `CorruptSidecarError` if it is not a sidecar.

    Only the entry a reader `match`es is then checked in full: a stat or a listing
    builds one `Version`, not one per entry.
    """
    try:
        text = raw.decode("utf-8")
        doc, end = _DECODER.raw_decode(text)
        if end != len(text):
            raise CorruptSidecarError("data after the end of the sidecar")
        if doc["format"] != FORMAT:
            raise CorruptSidecarError(f"unknown sidecar format {doc['format']!r}")
        entries = doc["versions"]
        if type(entries) is not list:
            raise CorruptSidecarError("versions is not a list")
        return entries
    except CorruptSidecarError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSidecarError(str(exc)) from None


def match(entries: Entries, st: os.stat_result) -> Version | None:
    """The version describing the data file whose ``stat`` is `st`, if any.

    Raises `CorruptSidecarError` if an entry is not an object with a file
    identity, or the matching entry is malformed.
    """
    ino, size, mtime_ns = st.st_ino, st.st_size, st.st_mtime_ns
    try:
        for item in entries:
            if item["ino"] == ino and item["size"] == size and item["mtime_ns"] == mtime_ns:
                return _version(checked(item), (ino, size, mtime_ns))
    except (KeyError, TypeError) as exc:
        raise CorruptSidecarError(f"a version is not an object with {exc}") from None
    return None


def checked(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` if its ``etag`` and ``content_type`` are strings and its ``metadata``
    maps strings to strings; raises `CorruptSidecarError` otherwise."""
    try:
        metadata, etag, content_type = entry["metadata"], entry["etag"], entry["content_type"]
    except KeyError as exc:
        raise CorruptSidecarError(f"a version lacks {exc}") from None
    if type(etag) is not str or type(content_type) is not str:
        raise CorruptSidecarError("etag and content_type must be strings")
    if type(metadata) is not dict:
        raise CorruptSidecarError("metadata is not a mapping")
    for value in metadata.values():  # JSON object keys are always strings
        if type(value) is not str:
            raise CorruptSidecarError("metadata is not a str to str mapping")
    return entry


def _version(entry: dict[str, Any], identity: tuple[int, int, int]) -> Version:
    """The `Version` of a `checked` entry."""
    return _new_version((_new_identity(identity), entry["etag"], entry["content_type"], entry["metadata"]))


# NamedTuple's generated __new__ runs Python code per call; a reader builds one
# Version per stat, so it goes straight to tuple.__new__.
_new_identity = functools.partial(tuple.__new__, FileIdentity)
_new_version = functools.partial(tuple.__new__, Version)


def is_sidecar(raw: bytes) -> bool:
    """Whether `raw` is a sidecar in this package's format: every version names a
    data file. A clean-up removes an orphan sidecar only if it is one."""
    try:
        entries = parse(raw)
        return all(
            type(item) is dict and all(type(item.get(field)) is int for field in ("ino", "size", "mtime_ns"))
            for item in entries
        )
    except CorruptSidecarError:
        return False
