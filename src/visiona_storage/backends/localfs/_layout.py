"""Names in the local backend's layout: the sidecar beside each object, temp
files, the store's own folder. Each is reserved by the key rules (`_keys`), so no
key can name one.

    root/a/b/c.nef             the object at key ``a/b/c.nef``
    root/a/b/c.nef.meta.json   its sidecar: version, size, content type, metadata
    root/a/b/.vs-<hex>.vs-tmp  a temp file, named only while being published
    root/.visiona-storage/     the store's own files (the signing key file)
"""

from __future__ import annotations

import re
import secrets

from ..._keys import RESERVED_NAME, RESERVED_SUFFIXES

SIDECAR_SUFFIX = ".meta.json"
"""Suffix of the metadata file beside each object."""

TEMP_SUFFIX = ".vs-tmp"
"""Suffix of temporary files."""

INTERNAL_DIR = RESERVED_NAME
"""Folder under the root for the store's own files (signing keys)."""

assert (SIDECAR_SUFFIX, TEMP_SUFFIX) == RESERVED_SUFFIXES

_TEMP_NAME = re.compile(r"\.vs-[0-9a-f]{32}\.vs-tmp")


def temp_name() -> str:
    """A new name for one of the local backend's temporary files: ``.vs-<32 hex>.vs-tmp``.

    Random, so a writer never meets a file that is already there (it creates its
    temp file exclusively, and picks another name if one is), and distinctive, so
    a clean-up can tell the store's own temp files from a person's ``x.vs-tmp``.
    """
    return f".vs-{secrets.token_hex(16)}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """Whether `name` has the form `temp_name` gives."""
    return _TEMP_NAME.fullmatch(name) is not None
