"""User metadata in HTTP headers (x-amz-meta-*), so that any unicode value round-trips.

S3 carries metadata as ``x-amz-meta-*`` HTTP headers, which hold printable
ASCII only and lose leading or trailing spaces. A value that is not plain
printable ASCII (or that could be mistaken for an encoded one) travels as an
RFC 2047 encoded word, ``=?UTF-8?B?<base64>?=``, the form S3 itself uses for
non-ASCII metadata, and is decoded on the way back.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

_PLAIN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_PREFIX, _SUFFIX = "=?UTF-8?B?", "?="
_ENCODED = re.compile(r"=\?UTF-8\?B\?([A-Za-z0-9+/]*={0,2})\?=", re.IGNORECASE)


def encode_value(value: str) -> str:
    """The header-safe form of a metadata value."""
    if _PLAIN.fullmatch(value) and not value.startswith("=?"):
        return value
    return _PREFIX + base64.b64encode(value.encode("utf-8")).decode("ascii") + _SUFFIX


def decode_value(value: str) -> str:
    """The value `encode_value` was given."""
    match = _ENCODED.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return value


def encode(metadata: Mapping[str, str]) -> dict[str, str]:
    """`metadata` with each value in its header-safe form."""
    return {key: encode_value(value) for key, value in metadata.items()}


def decode(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata `encode` was given, names lowercased as HTTP reads them."""
    return {key.lower(): decode_value(value) for key, value in metadata.items()}
