"""The one key rule set, enforced for every backend before any backend code runs.

A key is UTF-8, 1 to 1024 bytes, made of ``/``-separated segments of 1 to 200
bytes each. No segment is empty, ``.`` or ``..``; no ``\\``; no control
characters; no segment ends in a name the local layout reserves, in any case or
form a case-insensitive filesystem would take for it (``X.META.JSON``). Anything
else (spaces, unicode, ``% & $ ' " < >``) round-trips byte for byte.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from ._errors import InvalidKeyError

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 200

RESERVED_SUFFIXES = (".meta.json", ".vs-tmp")
"""No segment ends in these: the local backend names its metadata and temporary
files so (`backends.localfs._layout`), and a key must work on every backend."""

RESERVED_NAME = ".visiona-storage"
"""No segment is this: the local backend's folder for its own files."""

_RESERVED = (*RESERVED_SUFFIXES, RESERVED_NAME)

# C0 controls, DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# The common key: ASCII letters, digits, ``_``, ``-`` and ``.`` in segments of 1
# to 200 characters, none of them ``.`` or ``..``. One regex proves such a key
# valid (once it is short enough and names nothing reserved); any other key
# takes the full rule set.
_PLAIN_KEY = re.compile(r"(?:(?!\.\.?/)[\w.\-]{1,200}/)*(?!\.\.?\Z)[\w.\-]{1,200}", re.ASCII)


def check_key(key: object) -> str:
    """Return `key` unchanged if it obeys the key rules.

    Raises `InvalidKeyError` (also a ``ValueError``) naming the broken rule.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a str, not {type(key).__name__}", None)
    if _is_plain(key):
        return key
    problem = _remembered_key_problem(key)
    if problem is not None:
        raise InvalidKeyError(f"invalid key {key!r}: {problem}", key)
    return key


def check_foreign_key(key: object) -> str:
    """Return `key` if it obeys the key rules, or is at least a key an S3 service
    can hold (text of 1 to 1024 UTF-8 bytes, no NUL, which S3's XML cannot carry):
    one another client may have written, such as ``a//b`` or ``folder/``. For
    reading and deleting on a backend that holds such keys
    (`Store.reads_foreign_keys`); writes keep the rules.

    Raises `InvalidKeyError` otherwise.
    """
    if isinstance(key, str) and (_is_plain(key) or _is_storable(key)):
        return key
    return check_key(key)


def _is_storable(key: str) -> bool:
    try:
        return 0 < len(key.encode("utf-8")) <= MAX_KEY_BYTES and "\x00" not in key
    except UnicodeEncodeError:
        return False


def key_problem(key: str) -> str | None:
    """Say which rule `key` breaks, or return ``None`` for a valid key."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid unicode text (lone surrogate)"
    if size == 0:
        return "empty"
    if size > MAX_KEY_BYTES:
        return f"{size} bytes long, over the limit of {MAX_KEY_BYTES}"
    if _CONTROL.search(key):
        return "contains a control character"
    if "\\" in key:
        return "contains a backslash"
    if key.startswith("/"):
        return "starts with '/'"
    for segment in key.split("/"):
        problem = segment_problem(segment)
        if problem is not None:
            return problem
    return None


def is_valid_key(key: str) -> bool:
    """Whether the str `key` obeys the key rules (`check_key` without the error)."""
    return _is_plain(key) or key_problem(key) is None


def _is_plain(key: str) -> bool:
    """True for a common key that one regex proves valid; False says nothing."""
    if len(key) > MAX_KEY_BYTES or _PLAIN_KEY.fullmatch(key) is None:
        return False
    lowered = key.lower()  # ASCII only: what any case-insensitive filesystem folds it to
    return not any(name in lowered for name in _RESERVED)


_remembered_key_problem = functools.lru_cache(maxsize=4096)(key_problem)
"""`key_problem` remembering recent keys: a service checks the same keys over and over."""


def segment_problem(segment: str) -> str | None:
    """Say which rule one ``/``-separated segment breaks, or return ``None``."""
    if segment == "":
        return "has an empty segment ('//' or a trailing '/')"
    if segment in (".", ".."):
        return f"has a {segment!r} segment"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"has a segment over {MAX_SEGMENT_BYTES} bytes"
    reserved = reserved_name(segment)
    if reserved == RESERVED_NAME:
        return f"uses the reserved name {RESERVED_NAME!r}"
    if reserved is not None:
        return f"has a segment ending in the reserved suffix {reserved!r}"
    return None


def reserved_name(segment: str) -> str | None:
    """The reserved name `segment` is, or ends in, as a case-insensitive filesystem
    may see it (`RESERVED_NAME` or one of `RESERVED_SUFFIXES`); None if none."""
    for folded in _folded(segment):
        if folded == RESERVED_NAME:
            return RESERVED_NAME
        for suffix in RESERVED_SUFFIXES:
            if folded.endswith(suffix):
                return suffix
    return None


def _folded(segment: str) -> tuple[str, str]:
    """What a case-insensitive filesystem may take `segment` for: its case fold, and
    the case fold of its compatibility form (a long s is ``s``, a fullwidth J is ``J``)."""
    return segment.casefold(), unicodedata.normalize("NFKC", segment).casefold()


def check_prefix(prefix: object) -> str:
    """Return `prefix` if it is a str that could start a key.

    Any string is a valid prefix as long as it is text of at most 1024 bytes;
    a prefix no valid key can start with simply lists nothing. Raises
    `InvalidKeyError` otherwise.
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix must be a str, not {type(prefix).__name__}", None)
    try:
        size = len(prefix.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKeyError(f"invalid prefix {prefix!r}: not valid unicode text", prefix) from None
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(f"invalid prefix: {size} bytes long, over {MAX_KEY_BYTES}", prefix)
    return prefix


def prefix_can_match(prefix: str, *, foreign: bool = False) -> bool:
    """Whether some valid key starts with `prefix` (a checked prefix); with `foreign`,
    some key `check_foreign_key` takes."""
    if prefix == "":
        return True
    if foreign:
        return "\x00" not in prefix
    if _CONTROL.search(prefix) or "\\" in prefix or prefix.startswith("/"):
        return False
    *complete, partial = prefix.split("/")
    if any(segment_problem(segment) is not None for segment in complete):
        return False
    return len(partial.encode("utf-8")) <= MAX_SEGMENT_BYTES


def sort_key(key: str) -> bytes:
    """The order S3 lists keys in: ascending UTF-8 bytes."""
    return key.encode("utf-8")
