"""The exception tree of visiona-storage.

Every error a `Store` raises is a `StorageError`; backends translate their own
failures (``OSError``, ``botocore`` errors) into this tree, so calling code never
sees a raw backend exception::

    StorageError
    ├── NotFoundError            (also FileNotFoundError)   no object at that key
    ├── InvalidKeyError          (also ValueError)          the key breaks the key rules
    ├── InvalidArgumentError     (also ValueError)          bad metadata, range, TTL, size...
    │   ├── SizeMismatchError                               the data did not match `size`
    │   └── ChecksumMismatchError                           the data did not match `sha256`
    ├── PreconditionFailedError                             if_match / if_none_match failed
    ├── KeyConflictError                                    `a/b` and `a/b/c` on a filesystem
    ├── SignatureError                                      a presigned URL failed verification
    ├── ConfigError                                         a bad configuration field
    ├── StorageFullError                                    the backend has no space left
    ├── DataReadError           (also OSError)              reading the caller's data failed
    └── UnsupportedError        (also NotImplementedError) the backend lacks the capability
"""

from __future__ import annotations

import errno


class StorageError(Exception):
    """Base of every error raised by visiona-storage.

    `key` is the object key the error concerns, or ``None`` where none applies.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotFoundError(StorageError, FileNotFoundError):
    """No object exists at `key`."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message, key)
        self.errno = errno.ENOENT
        self.strerror = message


class InvalidKeyError(StorageError, ValueError):
    """The key (or prefix) breaks the key rules; nothing was done."""


class InvalidArgumentError(StorageError, ValueError):
    """An argument other than the key is invalid (metadata, range, TTL, size...)."""


class SizeMismatchError(InvalidArgumentError):
    """The data given to `put` was shorter or longer than its declared size; nothing was stored."""


class ChecksumMismatchError(InvalidArgumentError):
    """The data given to `put` did not hash to its declared `sha256`; nothing was stored."""


class PreconditionFailedError(StorageError):
    """A conditional write (`if_match` / `if_none_match`) failed; nothing was stored."""


class KeyConflictError(StorageError):
    """The key cannot coexist with an existing object (``a/b`` vs ``a/b/c`` on a filesystem)."""


class SignatureError(StorageError):
    """A presigned URL is expired, tampered with, or signed by an unknown key."""


class ConfigError(StorageError):
    """The configuration is invalid; the message names the field."""


class MissingExtraError(ConfigError, ImportError):
    """A part of the library needs packages its install left out; the message names
    the ``pip install`` that adds them. Also an ``ImportError``."""


class StorageFullError(StorageError):
    """The backend ran out of space; the previous version of the object is intact."""


class DataReadError(StorageError, OSError):
    """Reading the data given to `put` raised an ``OSError`` (a failing disk, a
    closed file, a broken pipe); nothing was stored and the object's previous
    version, if any, is intact. ``__cause__`` is that error, and `errno` is its errno.

    Any other exception the caller's data raises reaches the caller unchanged.
    """

    def __init__(self, message: str, key: str | None = None, cause: OSError | None = None) -> None:
        super().__init__(message, key)
        self.errno = cause.errno if cause is not None else None
        self.strerror = message

    def __reduce__(self) -> tuple[type[DataReadError], tuple[str, str | None], dict[str, object]]:
        return type(self), (str(self), self.key), {"errno": self.errno}


class UnsupportedError(StorageError, NotImplementedError):
    """The backend does not offer this operation."""
