"""What every part of `LocalFSStore` shares: the open root, how a key maps to a
folder and a name, sidecar writing, and the one translator of ``OSError``."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from ..._errors import InvalidKeyError, StorageError, StorageFullError
from ..._models import ObjectInfo, object_info
from . import _sidecar as sidecar
from . import _tree as tree
from ._layout import SIDECAR_SUFFIX
from ._reclaim import Reclaimer
from ._tempfile import create_exclusive

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ATTEMPTS = 50
"""How often a read or a commit tries again when a writer or a delete changes what
it looks at meanwhile, before it gives up."""


class LocalRoot:
    """The state the parts of `LocalFSStore` work on: the root folder, open, and
    whether writes are synced."""

    root: str
    fsync: bool
    _root_fd: int
    _root_dev: int
    _reclaimer: Reclaimer

    def _write_sidecar(self, dir_fd: int, name: str, versions: list[sidecar.Version]) -> None:
        """Publish `versions` as the sidecar of `name` in the folder `dir_fd`: written
        to a staging file made exclusively, then renamed over the old sidecar."""
        data = sidecar.encode(versions)
        while True:
            staging, fd = create_exclusive(dir_fd, os.O_WRONLY | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            except BaseException as exc:
                os.close(fd)
                tree.unlink(dir_fd, staging)
                if isinstance(exc, OSError) and self._reclaimer.made_room(exc):
                    continue  # a large delete's space came back: write it again
                raise
            break
        os.close(fd)
        tree.replace(dir_fd, staging, name + SIDECAR_SUFFIX, lazy=not self.fsync)
        if self.fsync:
            # The sidecar naming the new file must be durable before the file is renamed in.
            tree.fsync_folder(dir_fd)


class PutPlan(NamedTuple):
    """What a put stores besides its data, and on which condition."""

    key: str
    metadata: dict[str, str]
    content_type: str
    if_match: str | None
    if_none_match: str | None


def split_key(key: str) -> tuple[str, str]:
    """``"a/b/c"`` -> (``"a/b"``, ``"c"``); ``"c"`` -> (``""``, ``"c"``)."""
    folder, _, name = key.rpartition("/")
    return folder, name


def info_of(key: str, version: sidecar.Version, st: os.stat_result) -> ObjectInfo:
    """The `ObjectInfo` of a data file whose ``stat`` is `st`, at `version`."""
    # Each Version's metadata is a dict of its own: parsed for this read, or the put's copy.
    return describe(key, st, version.etag, version.content_type, version.metadata)


def describe(
    key: str, st: os.stat_result, etag: str, content_type: str, metadata: dict[str, str]
) -> ObjectInfo:
    """The `ObjectInfo` of the data file whose ``stat`` is `st`, with what its sidecar says."""
    return object_info(
        key=key,
        size=st.st_size,
        content_type=content_type,
        last_modified=EPOCH + timedelta(0, 0, st.st_mtime_ns // 1000),  # days, seconds, microseconds
        etag=etag,
        metadata=metadata,
        sha256=etag,
    )


def corrupt(key: str, exc: sidecar.CorruptSidecarError) -> StorageError:
    return StorageError(
        f"the metadata of {key!r} is unreadable (its {SIDECAR_SUFFIX} sidecar is truncated "
        f"or invalid: {exc}); delete or overwrite the object",
        key,
    )


class os_errors:  # noqa: N801 - used like a function: ``with os_errors(key, "store"):``
    """Translate ``OSError`` into the `StorageError` tree; the one place that does.

    A class rather than a generator context manager: it wraps every call, and
    costs a third as much.
    """

    __slots__ = ("action", "key")

    def __init__(self, key: str | None, action: str) -> None:
        self.key = key
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        key, action = self.key, self.action
        if isinstance(exc, sidecar.CorruptSidecarError):
            raise corrupt(key or "", exc) from None
        if not isinstance(exc, OSError) or isinstance(exc, StorageError):
            return
        what = f"{key!r}" if key is not None else "the store"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(f"cannot {action} {what}: no space left on the device", key) from exc
        if exc.errno == errno.ENAMETOOLONG:
            raise InvalidKeyError(f"cannot {action} {what}: name too long for this filesystem", key) from exc
        if exc.errno == errno.ELOOP:
            raise StorageError(f"cannot {action} {what}: a symlink is in the way", key) from exc
        raise StorageError(f"cannot {action} {what}: {exc.strerror or exc}", key) from exc
