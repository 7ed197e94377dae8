"""The local filesystem backend."""

from ._store import LocalFSStore

__all__ = ["LocalFSStore"]
