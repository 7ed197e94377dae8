"""The local filesystem backend."""

from ._cleanup import CleanupReport
from ._store import LocalFSStore

__all__ = ["CleanupReport", "LocalFSStore"]
