"""`LocalFSStore`: objects as plain files under a root folder.

The store is put together from one part per job: `_committing` (put, the piece
writer, delete), `_reading` (get, stat), `_listing` (list) and `_cleanup` (what
crashed writers left), over the state and helpers of `_common`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ..._errors import StorageError
from ..._signing import URLSigner
from ..._store import Store
from ._cleanup import CleanupReport, clean_up
from ._committing import Committing
from ._common import os_errors
from ._layout import INTERNAL_DIR
from ._listing import Listing
from ._reclaim import Reclaimer
from ._signing_keys import load_or_create_keys

_STALE_TEMP_AGE = 60.0


def identity_of(root: str | os.PathLike[str]) -> str:
    """The `Store.identity` of a LocalFSStore on `root`: ``localfs:`` and the root's
    real path (symlinks resolved; a root still to be made, as it will be)."""
    return f"localfs:{os.path.realpath(root)}"


class LocalFSStore(Committing, Listing, Store):
    """A `Store` keeping key ``a/b/c.nef`` as the file ``root/a/b/c.nef``.

    Metadata lives in ``c.nef.meta.json`` beside it. Writes stream to a temp file
    in the same folder and are published by rename; with `fsync` (the default)
    data, sidecar and folder are synced before `put` returns. Without it nothing
    is: a process crash still leaves every object whole, but after a power cut an
    object written in the last half minute may be its previous version, empty, or
    reported unreadable. The blocks of a replaced or deleted object of 8 MiB or
    more are freed by a background thread just after `put` or `delete` returns
    (see `_reclaim`); a write that finds the disk full waits for them, and so does
    `close`. Nothing outside `root` is ever read or written, and symlinks under it
    are never followed. Raises `StorageError` if the root cannot be opened.
    """

    lists_details = True
    lists_metadata = True

    def __init__(
        self,
        root: str | os.PathLike[str] = "./data/storage",
        base_url: str = "http://localhost:3001/storage",
        *,
        fsync: bool = True,
        signing_keys: Mapping[str, str] | None = None,
        signing_key_id: str | None = None,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.base_url = base_url.rstrip("/")
        self.fsync = fsync
        self._signing_keys = dict(signing_keys) if signing_keys else None
        if self._signing_keys is not None:
            URLSigner(self._signing_keys, signing_key_id)  # a bad key fails here, not at first use
        self._signing_key_id = signing_key_id
        self._signer: URLSigner | None = None
        self._reclaimer = Reclaimer()
        try:
            os.makedirs(self.root, exist_ok=True)
            self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._root_dev = os.fstat(self._root_fd).st_dev
        except OSError as exc:
            raise StorageError(f"cannot open storage root {self.root!r}: {exc.strerror}") from exc
        self._identity = identity_of(self.root)

    def __repr__(self) -> str:
        return f"LocalFSStore(root={self.root!r}, base_url={self.base_url!r}, fsync={self.fsync})"

    @property
    def identity(self) -> str:
        """``localfs:`` and the root's real path (symlinks resolved)."""
        return self._identity

    @property
    def signer(self) -> URLSigner:
        """The signer of this store's presigned URLs: the configured keys, or else a key
        generated once and kept in ``root/.visiona-storage/signing-keys.json`` (mode 0600)
        so that URLs survive restarts. Raises `ConfigError` if that file is damaged."""
        if self._signer is None:
            if self._signing_keys is not None:
                self._signer = URLSigner(self._signing_keys, self._signing_key_id)
            else:
                with os_errors(None, "keep the signing key of"):
                    self._signer = load_or_create_keys(self.root, INTERNAL_DIR, "signing-keys.json")
        return self._signer

    @property
    def url_signer(self) -> URLSigner:
        """`signer`: the HTTP endpoint verifies this store's URLs with it."""
        return self.signer

    def _presigned_url(
        self, method: str, key: str, ttl_seconds: int, content_type: str | None, max_size: int | None
    ) -> str:
        params = self.signer.sign(
            method, key, ttl_seconds, content_type if method == "PUT" else None, max_size
        )
        return f"{self.base_url}/{quote(key, safe='/')}?{urlencode(params)}"

    # maintenance
    def cleanup(self, *, min_age_seconds: float = _STALE_TEMP_AGE) -> CleanupReport:
        """Remove what crashed writers left under the root, and report what it left alone.

        It removes only what it can prove the store made: temp files whose writer
        is gone (and older than `min_age_seconds`), and sidecars in the store's own
        format whose object is gone. A file with a reserved-looking name that the
        store did not make (a person's ``notes.meta.json``) is kept, logged and
        listed in the report. Safe to run while other threads and processes use the
        store. Raises `StorageError`.
        """
        self._check_open()
        with os_errors(None, "clean up"):
            return clean_up(self._root_fd, min_age_seconds)

    def _close(self) -> None:
        self._reclaimer.drain()  # the space of replaced and deleted objects is back
        os.close(self._root_fd)
