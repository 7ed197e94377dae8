"""User metadata in HTTP headers (x-amz-meta-*), so that any unicode value round-trips.

S3 carries metadata as ``x-amz-meta-*`` HTTP headers, which hold printable
ASCII only and lose leading or trailing spaces. A value that is not plain
printable ASCII (or that could be mistaken for an encoded one) travels as an
RFC 2047 encoded word, ``=?UTF-8?B?<base64>?=``, the form S3 itself uses for
non-ASCII metadata, and is decoded on the way back.

Values other clients wrote read as the text they meant: RFC 2047 encoded words
in either encoding and any charset (aws-cli and SDKs send ``=?utf-8?q?...?=``
too), and raw UTF-8 bytes (rclone sends them), which HTTP libraries read as
Latin-1. (A value that really is Latin-1 text and whose bytes also form valid
UTF-8, such as raw ``Ã©``, reads as the UTF-8 text, ``é``: rare, and the only way
to read what rclone writes.)
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
    if _PLAIN.fullmatch(value) and "=?" not in value:  # else it might read as encoded words
        return value
    return _PREFIX + base64.b64encode(value.encode("utf-8")).decode("ascii") + _SUFFIX


def decode_value(value: str) -> str:
    """The value `encode_value` was given, or the text another client's header value
    means: its encoded words decoded. A value with none stays as it is."""
    match = _ENCODED.fullmatch(value)
    if match is not None:
        try:
            return base64.b64decode(match.group(1), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return value
    if "=?" in value:
        return _decode_words(value)
    return value


def _undo_latin1(value: str) -> str:
    """`value` read as UTF-8 if it is UTF-8 bytes that were read as Latin-1 (every
    character below 256, some above 127, and they form valid UTF-8)."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _decode_words(value: str) -> str:
    """`value` with its RFC 2047 encoded words (``=?charset?B|Q?...?=``) decoded."""
    import email.errors  # noqa: PLC0415 - rare: only values other clients wrote
    import email.header  # noqa: PLC0415

    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def encode(metadata: Mapping[str, str]) -> dict[str, str]:
    """`metadata` with each value in its header-safe form."""
    return {key: encode_value(value) for key, value in metadata.items()}


def decode(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata `encode` was given, or another client meant, from header values as
    an HTTP library returns them (bytes read as Latin-1, as ``http.client`` and so
    botocore do); names lowercased as HTTP reads them."""
    return {key.lower(): decode_value(_undo_latin1(value)) for key, value in metadata.items()}
