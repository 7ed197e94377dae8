"""Validation of `Store` arguments other than keys: metadata, content types, sizes,
ranges, conditions and TTLs. Each check returns the clean value or raises
`InvalidArgumentError` (also a ``ValueError``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from ._errors import InvalidArgumentError, PreconditionFailedError

MAX_METADATA_BYTES = 2048
"""S3's limit: the UTF-8 bytes of all metadata keys and values together."""

MAX_TTL_SECONDS = 7 * 24 * 3600
"""S3's limit for a presigned URL: 7 days."""

# The header-token characters that survive every server and proxy on the way: Ceph RGW
# turns "_" into "-", moto drops keys with "." or "~", and nginx by default drops any
# header whose name is not letters, digits and hyphens.
_TOKEN = re.compile(r"[0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


def check_metadata(metadata: Mapping[str, str] | None, key: str | None = None) -> dict[str, str]:
    """Return `metadata` with keys lowercased, as S3 stores them.

    Keys are letters, digits and ``-`` (the header names every S3 server and HTTP
    proxy passes on), unique once lowercased; values any unicode text; keys and
    values together at most 2 KB of UTF-8.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"metadata must be a mapping, not {type(metadata).__name__}", key)
    clean: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidArgumentError(
                f"metadata keys and values must be str, got {type(name).__name__}: {type(value).__name__}",
                key,
            )
        if not _TOKEN.fullmatch(name):
            raise InvalidArgumentError(
                f"metadata key {name!r} must be letters, digits and '-' only: it travels as "
                f"an x-amz-meta-* header, and servers and proxies drop or rewrite other names",
                key,
            )
        lowered = name.lower()
        if lowered == RECORDED_SHA256:
            raise InvalidArgumentError(
                f"metadata key {name!r} is reserved: the store records the content's SHA-256 there", key
            )
        if lowered in clean:
            raise InvalidArgumentError(f"metadata key {name!r} repeats another one, case aside", key)
        try:
            total += len(lowered) + len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"metadata value of {name!r} is not valid unicode text", key) from None
        clean[lowered] = value
    if total > MAX_METADATA_BYTES:
        raise InvalidArgumentError(
            f"metadata is {total} bytes of UTF-8, over the limit of {MAX_METADATA_BYTES}", key
        )
    return clean


RECORDED_SHA256 = "visiona-sha256"
"""The metadata name under which a backend without a native place for it (S3) records
an object's SHA-256; reserved on every backend, so metadata stays portable."""

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(value: str | None, key: str | None = None) -> str | None:
    """`value` in lowercase hex, if it is a SHA-256 (64 hex digits); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX_SHA256.fullmatch(value.lower()):
        raise InvalidArgumentError(f"sha256 must be 64 hex digits, not {value!r}", key)
    return value.lower()


def check_content_type(content_type: str | None, key: str | None = None) -> str | None:
    """Return `content_type` if it is printable ASCII that fits an HTTP header."""
    if content_type is None:
        return None
    if not isinstance(content_type, str) or not _HEADER_VALUE.fullmatch(content_type):
        raise InvalidArgumentError(f"content_type {content_type!r} is not a printable ASCII string", key)
    return content_type


def check_size(size: int, key: str | None = None) -> int:
    """Return `size` if it is -1 (unknown) or a byte count."""
    if isinstance(size, bool) or not isinstance(size, int) or size < -1:
        raise InvalidArgumentError(f"size must be an int >= -1 (-1 for unknown), not {size!r}", key)
    return size


def check_max_size(max_size: int, key: str | None = None) -> int:
    """Return `max_size` if it is a byte count (0 or more)."""
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise InvalidArgumentError(f"max_size must be an int >= 0, not {max_size!r}", key)
    return max_size


def check_range(start: int, end: int | None, key: str | None = None) -> tuple[int, int | None]:
    """Return (start, end) if they describe the slice ``[start, end)`` of an object."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidArgumentError(f"start must be an int >= 0, not {start!r}", key)
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or end < start):
        raise InvalidArgumentError(f"end must be None or an int >= start ({start}), not {end!r}", key)
    return start, end


def check_conditions(
    if_match: str | None, if_none_match: str | None, key: str | None = None
) -> tuple[str | None, str | None]:
    """Return the conditions of a conditional `put`: at most one; ``if_none_match="*"``
    (create only), ``if_match=etag`` (replace only that version) or ``if_match="*"``
    (replace only, whatever the version, as RFC 9110 reads ``If-Match: *``)."""
    if if_match is not None and if_none_match is not None:
        raise InvalidArgumentError("give if_match or if_none_match, not both", key)
    if if_none_match is not None and if_none_match != "*":
        raise InvalidArgumentError(f"if_none_match supports only '*', not {if_none_match!r}", key)
    if if_match is not None and (not isinstance(if_match, str) or not if_match.strip('"')):
        raise InvalidArgumentError(f"if_match must be an ETag string, not {if_match!r}", key)
    return (if_match.strip('"') if if_match is not None else None), if_none_match


def check_precondition(
    key: str, current: str | None, if_match: str | None, if_none_match: str | None, *, exists: bool
) -> None:
    """Raise `PreconditionFailedError` unless a put with these conditions (as
    `check_conditions` returns them) may replace what is at `key`: an object if
    `exists`, at ETag `current` (None where it has none, or none is there)."""
    if if_none_match == "*" and exists:
        raise PreconditionFailedError(f"object {key!r} already exists", key)
    if if_match == "*" and not exists:
        raise PreconditionFailedError(f"object {key!r} does not exist", key)
    if if_match not in (None, "*") and (current is None or current != if_match):
        raise PreconditionFailedError(f"object {key!r} is not at ETag {if_match!r}", key)


def check_ttl(ttl: timedelta | int | float, key: str | None = None) -> int:
    """Return `ttl` in whole seconds if it is positive and at most 7 days."""
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise InvalidArgumentError(f"ttl must be a timedelta or seconds, not {type(ttl).__name__}", key)
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise InvalidArgumentError(f"ttl must be between 1 second and 7 days, not {seconds:g} seconds", key)
    return int(seconds)
