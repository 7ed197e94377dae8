"""S3 timestamps as aware UTC datetimes, parsed fast.

A listing says ``LastModified`` in ISO 8601 with milliseconds
(``2026-01-02T03:04:05.678Z``), a HEAD or GET says ``Last-Modified`` in the HTTP
date format (``Fri, 02 Jan 2026 03:04:05 GMT``). botocore parses both with
dateutil, which costs about 0.1 ms a key: most of the time a listing of 10,000
objects takes. `parse_timestamp` reads both formats with the standard library
and hands anything else to botocore's parser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.utils import parse_timestamp as botocore_parse_timestamp


def parse_timestamp(value: Any) -> datetime:
    """`value` (ISO 8601, an HTTP date, or whatever botocore reads) as an aware UTC
    datetime; a time without a zone is taken as UTC. Raises `ValueError` (as
    botocore's parser does) for text that is no timestamp."""
    when: datetime | None = None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
    if when is None:
        when = botocore_parse_timestamp(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
