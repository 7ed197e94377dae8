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

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class FileIdentity:
    """Which data file a version describes."""

    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Version:
    """One object version: its data file, and what the store says about it."""

    file: FileIdentity
    etag: str
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


class CorruptSidecarError(ValueError):
    """The sidecar is not a sidecar this package wrote (truncated, edited, not JSON)."""


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


def decode(raw: bytes) -> tuple[Version, ...]:
    """Parse a sidecar; raise `CorruptSidecarError` if it is not one."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        if doc["format"] != FORMAT:
            raise CorruptSidecarError(f"unknown sidecar format {doc['format']!r}")
        return tuple(_version(item) for item in doc["versions"])
    except CorruptSidecarError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSidecarError(str(exc)) from None


def _version(item: dict[str, Any]) -> Version:
    metadata = item["metadata"]
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CorruptSidecarError("metadata is not a str to str mapping")
    identity = FileIdentity(int(item["ino"]), int(item["size"]), int(item["mtime_ns"]))
    etag, content_type = item["etag"], item["content_type"]
    if not isinstance(etag, str) or not isinstance(content_type, str):
        raise CorruptSidecarError("etag and content_type must be strings")
    return Version(identity, etag, content_type, metadata)


def match(versions: Sequence[Version], st: os.stat_result) -> Version | None:
    """The version describing the data file whose ``stat`` is `st`, if any."""
    identity = FileIdentity.of(st)
    for version in versions:
        if version.file == identity:
            return version
    return None
