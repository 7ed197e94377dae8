"""`LocalFSStore`: objects as plain files under a root folder."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote, urlencode

from ..._arguments import check_precondition
from ..._body import Body
from ..._content_types import guess_content_type
from ..._errors import (
    InvalidKeyError,
    KeyConflictError,
    NotFoundError,
    SizeMismatchError,
    StorageError,
    StorageFullError,
)
from ..._keys import is_valid_key, segment_problem
from ..._models import DEFAULT_CHUNK_SIZE, ObjectInfo, ObjectReader, object_info
from ..._signing import URLSigner
from ..._store import Store
from ..._writer import PutWriter
from . import _sidecar as sidecar
from . import _tree as tree
from ._cleanup import CleanupReport, clean_up, is_our_sidecar
from ._layout import INTERNAL_DIR, SIDECAR_SUFFIX
from ._linux import open_beneath
from ._reclaim import Reclaimer
from ._signing_keys import load_or_create_keys
from ._tempfile import TempFile, create_exclusive
from ._writing import write_behind, write_body

log = logging.getLogger("visiona_storage.localfs")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_READ_ATTEMPTS = 50
_STALE_TEMP_AGE = 60.0
_SIDECAR_READ = 65536


class LocalFSStore(Store):
    """A `Store` keeping key ``a/b/c.nef`` as the file ``root/a/b/c.nef``.

    Metadata lives in ``c.nef.meta.json`` beside it. Writes stream to a temp file
    in the same folder and are published by rename; with `fsync` (the default)
    data, sidecar and folder are synced before `put` returns. Without it nothing
    is: a process crash still leaves every object whole, but after a power cut an
    object written in the last half minute may be its previous version, empty, or
    reported unreadable. The blocks of a
    replaced or deleted object of 8 MiB or more are freed by a background thread
    just after `put` or `delete` returns (see `_reclaim`); a write that finds the
    disk full waits for them, and so does `close`. Nothing outside `root` is
    ever read or written, and symlinks under it are never followed.
    """

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

    def __repr__(self) -> str:
        return f"LocalFSStore(root={self.root!r}, base_url={self.base_url!r}, fsync={self.fsync})"

    @property
    def signer(self) -> URLSigner:
        """The signer of this store's presigned URLs: the configured keys, or else a key
        generated once and kept in ``root/.visiona-storage/signing-keys.json`` (mode 0600)
        so that URLs survive restarts. Raises `ConfigError` if that file is damaged."""
        if self._signer is None:
            if self._signing_keys is not None:
                self._signer = URLSigner(self._signing_keys, self._signing_key_id)
            else:
                with _os_errors(None, "keep the signing key of"):
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

    # put

    def _put(
        self,
        key: str,
        body: Body,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> ObjectInfo:
        # A small body is written in an instant: its commit reuses the folder's
        # descriptor. A large one may stream for minutes, so its commit walks the
        # path again (the folder may have been renamed or pruned meanwhile).
        small = 0 <= body.size < DEFAULT_CHUNK_SIZE
        with _os_errors(key, "store"):
            temp, dir_fd = self._begin_put(key, if_match, if_none_match, keep_folder=small)
            try:
                etag = write_body(temp, body, fsync=self.fsync)
                opened, dir_fd = dir_fd, None
                put = _PutPlan(key, metadata, content_type, if_match, if_none_match)
                return self._finish_put(put, temp, etag, opened=opened)
            finally:
                temp.discard()
                if dir_fd is not None:
                    os.close(dir_fd)

    def _open_writer(
        self,
        key: str,
        size: int,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> _LocalWriter:
        with _os_errors(key, "store"):
            temp, _ = self._begin_put(key, if_match, if_none_match, keep_folder=False)
        return _LocalWriter(self, _PutPlan(key, metadata, content_type, if_match, if_none_match), size, temp)

    def _begin_put(
        self, key: str, if_match: str | None, if_none_match: str | None, *, keep_folder: bool
    ) -> tuple[TempFile, int | None]:
        """The temp file a put writes into, in the key's folder (made if missing),
        and that folder's descriptor if `keep_folder`. Checks the slot and the
        conditions first, to fail before streaming; the checks that count are made
        again at commit. Raises ``OSError`` and the errors of `_check_slot` and
        `_check_condition`."""
        folder, name = _split(key)
        dir_fd = tree.open_folder(self._root_fd, folder, create=True, key=key)
        assert dir_fd is not None
        try:
            found = self._check_slot(dir_fd, name, key)
            if if_match is not None or if_none_match is not None:
                self._check_condition(dir_fd, name, key, if_match, if_none_match, found=found)
            temp = TempFile(dir_fd, durable=self.fsync, on_full=self._reclaimer.made_room)
        except BaseException:
            os.close(dir_fd)
            raise
        if keep_folder:
            return temp, dir_fd
        os.close(dir_fd)
        return temp, None

    def _finish_put(self, put: _PutPlan, temp: TempFile, etag: str, *, opened: int | None) -> ObjectInfo:
        """Publish the written `temp` at the put's key (see `_commit`, which takes
        over `opened`); what `stat` now returns."""
        st = temp.stat()
        version = sidecar.Version(sidecar.FileIdentity.of(st), etag, put.content_type, put.metadata)
        self._commit(put.key, temp, version, put.if_match, put.if_none_match, opened=opened)
        return _info(put.key, version, st)

    def _commit(
        self,
        key: str,
        temp: TempFile,
        version: sidecar.Version,
        if_match: str | None,
        if_none_match: str | None,
        *,
        opened: int | None = None,
    ) -> None:
        """Publish `temp` at `key`, under the folder's lock.

        The key's path is walked again here unless the caller passes the folder it
        `opened` an instant ago (this takes it over and closes it): a folder renamed
        or swapped for a symlink while a body streamed must not carry the object
        off, and one removed meanwhile (pruned by a delete) is made again.
        """
        folder, name = _split(key)
        for _ in range(_MAX_READ_ATTEMPTS):
            if opened is not None:
                dir_fd, opened = opened, None
            else:
                walked = tree.open_folder(self._root_fd, folder, create=True, key=key)
                assert walked is not None
                dir_fd = walked
            try:
                with tree.folder_lock(dir_fd):
                    old = self._check_slot(dir_fd, name, key, clear_empty_folder=True)
                    current = self._check_condition(dir_fd, name, key, if_match, if_none_match, found=old)
                    versions = [version] + ([current] if current is not None else [])
                    self._write_sidecar(dir_fd, name, versions)
                    held = self._reclaimer.hold(dir_fd, name, old)
                    try:
                        temp.publish(dir_fd, name)
                        if self.fsync:
                            tree.fsync_folder(dir_fd)
                    finally:  # the replaced file's blocks are freed in the background
                        self._reclaimer.release(held)
                    return
            except tree.FolderVanishedError:
                continue
            finally:
                os.close(dir_fd)
        raise StorageError(f"the folder of {key!r} keeps disappearing", key)

    def _write_sidecar(self, dir_fd: int, name: str, versions: Sequence[sidecar.Version]) -> None:
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

    def _check_slot(
        self, dir_fd: int, name: str, key: str, *, clear_empty_folder: bool = False
    ) -> os.stat_result | None:
        """Raise unless `name` is free or a regular file (an empty folder is removed
        if `clear_empty_folder`); that file's ``lstat``, or None."""
        st = tree.lstat(dir_fd, name)
        if st is None or stat.S_ISREG(st.st_mode):
            return st
        if stat.S_ISLNK(st.st_mode):
            raise tree.symlink_error(key, key)
        if stat.S_ISDIR(st.st_mode):
            if clear_empty_folder:
                if tree.remove_if_empty(dir_fd, name):
                    return None
            elif not _has_entries(dir_fd, name):
                return None
            raise KeyConflictError(
                f"cannot store {key!r}: objects exist under {key + '/'!r}, and on a "
                f"filesystem a folder cannot also be an object",
                key,
            )
        raise StorageError(f"{key!r} is not a regular file", key)

    def _check_condition(
        self,
        dir_fd: int,
        name: str,
        key: str,
        if_match: str | None,
        if_none_match: str | None,
        *,
        found: os.stat_result | None,
    ) -> sidecar.Version | None:
        """Check the put's condition against the object in place, whose ``lstat``
        `_check_slot` just `found` (None: no object); return its version.

        An object whose sidecar is unreadable can be overwritten, but matches no ETag.
        """
        current: sidecar.Version | None = None
        exists = found is not None
        if found is not None:
            try:
                current = self._version(dir_fd, name, key, found)[0]
            except NotFoundError:
                exists = False
            except sidecar.CorruptSidecarError:
                pass  # exists, at no ETag
        etag = current.etag if current is not None else None
        check_precondition(key, etag, if_match, if_none_match, exists=exists)
        return current

    # get, stat

    def _get(self, key: str, start: int, end: int | None, *, hash_foreign: bool = True) -> ObjectReader:
        """The common get opens the data file and its sidecar with `open_beneath` (no
        symlink, nowhere outside the root) and trusts them as `_stat` does: the
        sidecar must name the very file opened. Anything else goes `_get_carefully`."""
        fd = open_beneath(self._root_fd, key, tree.FILE_FLAGS)
        if fd is not None:
            try:
                info = self._trusted_open(key, fd)
            except BaseException:
                os.close(fd)
                raise
            if info is not None:
                return _reader(info, fd, start, end)
            os.close(fd)
        return self._get_carefully(key, start, end, hash_foreign=hash_foreign)

    def _trusted_open(self, key: str, fd: int) -> ObjectInfo | None:
        """`_trusted_info` for the data file open at `fd` (left open)."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        sidecar_fd = open_beneath(self._root_fd, key + SIDECAR_SUFFIX, tree.FILE_FLAGS)
        return None if sidecar_fd is None else self._trusted_info(key, st, sidecar_fd)

    def _get_nowait(self, key: str, start: int, end: int | None) -> ObjectReader | None:
        """`_get`, unless the object is a file with no version of the store's yet (put
        under the root by hand): hashing it may take seconds, so None."""
        try:
            return self._get(key, start, end, hash_foreign=False)
        except _WouldHashError:
            return None

    def _get_carefully(
        self, key: str, start: int, end: int | None, *, hash_foreign: bool = True
    ) -> ObjectReader:
        folder, name = _split(key)
        with _os_errors(key, "read"):
            dir_fd = self._folder(folder, key)
            try:
                fd, version, st = self._open(dir_fd, name, key, hash_foreign=hash_foreign)
            finally:
                os.close(dir_fd)
            return _reader(_info(key, version, st), fd, start, end)

    def _stat(self, key: str) -> ObjectInfo:
        """The common stat in four system calls; anything unusual goes `_stat_carefully`.

        The sidecar is opened with `open_beneath` (no symlink, nowhere outside the
        root). The data file is ``lstat``ed by path, which the kernel resolves
        through any symlinked folder, so its answer counts only if it is the very
        inode (device, inode number, size and mtime) that sidecar names. Anything
        else (no sidecar, a foreign file, a symlink, a change in between, an
        unreadable sidecar) goes the careful way, which also raises the right error.
        """
        try:
            st = os.stat(key, dir_fd=self._root_fd, follow_symlinks=False)
        except OSError:
            return self._stat_carefully(key)
        fd = open_beneath(self._root_fd, key + SIDECAR_SUFFIX, tree.FILE_FLAGS)
        if fd is None:
            return self._stat_carefully(key)
        info = self._trusted_info(key, st, fd)
        return self._stat_carefully(key) if info is None else info

    def _trusted_info(self, key: str, st: os.stat_result, sidecar_fd: int) -> ObjectInfo | None:
        """The `ObjectInfo` of the data file whose stat is `st` (its ``lstat``, or
        the ``fstat`` of it opened), if the sidecar open at `sidecar_fd` (closed
        here) is one this store wrote and names that very file: a regular file on
        the root's device. None otherwise, and then the caller goes the careful
        way, which raises the right error if any.
        """
        try:
            raw = os.read(sidecar_fd, _SIDECAR_READ)
        except OSError:
            return None
        finally:
            os.close(sidecar_fd)
        if len(raw) == _SIDECAR_READ or st.st_dev != self._root_dev or not stat.S_ISREG(st.st_mode):
            return None
        try:
            entry = sidecar.find_written(raw, st)
        except sidecar.CorruptSidecarError:
            return None
        if entry is None:
            return None
        return _describe(key, st, entry["etag"], entry["content_type"], entry["metadata"])

    def _stat_carefully(self, key: str) -> ObjectInfo:
        folder, name = _split(key)
        with _os_errors(key, "stat"):
            dir_fd = self._folder(folder, key)
            try:
                version, st = self._version(dir_fd, name, key)
            finally:
                os.close(dir_fd)
        return _info(key, version, st)

    def _folder(self, folder: str, key: str) -> int:
        dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=key)
        if dir_fd is None:
            raise NotFoundError(f"no object at key {key!r}", key)
        return dir_fd

    def _open(
        self, dir_fd: int, name: str, key: str, *, hash_foreign: bool = True
    ) -> tuple[int, sidecar.Version, os.stat_result]:
        """Open the data file and find the version that describes exactly that file.

        A file with no version of the store's (put there by hand) is hashed, and
        the version found is recorded in its sidecar, so that it is hashed once;
        unless not `hash_foreign`: then this raises `_WouldHashError`.
        """
        # Compared between attempts: which data file and which sidecar (never access times).
        seen: tuple[object, ...] | None = None
        for _ in range(_MAX_READ_ATTEMPTS):
            fd = self._open_data(dir_fd, name, key)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise NotFoundError(f"no object at key {key!r}", key)
                raw = self._read_sidecar(dir_fd, name, key)
                version = sidecar.find(raw, st) if raw is not None else None
                state = (st.st_ino, st.st_size, st.st_mtime_ns, raw)
                if version is None and (raw is None or seen == state):
                    if not hash_foreign:
                        raise _WouldHashError
                    version = _adopt(fd, st, key)  # stable, yet no version of ours: foreign
                    self._record(dir_fd, name, st, raw, version)
                if version is not None:
                    return fd, version, st
                seen = state  # a writer committed meanwhile; look again
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise StorageError(f"object {key!r} keeps changing while being opened", key)

    def _record(
        self, dir_fd: int, name: str, st: os.stat_result, raw: bytes | None, version: sidecar.Version
    ) -> None:
        """Keep the `version` found for a file put there by hand in its sidecar, if the
        file and the sidecar are still as they were read (under the folder lock, so
        no commit runs in between). A store that cannot write (a read-only root)
        simply hashes the file again next time."""
        try:
            with tree.folder_lock(dir_fd):
                now = tree.lstat(dir_fd, name)
                if now is None or sidecar.FileIdentity.of(now) != version.file or now.st_dev != st.st_dev:
                    return
                if self._read_sidecar(dir_fd, name, name) != raw:
                    return
                self._write_sidecar(dir_fd, name, [version])
        except (OSError, StorageError, tree.FolderVanishedError) as exc:
            log.debug("could not record the version of %r: %s", name, exc)

    def _version(
        self, dir_fd: int, name: str, key: str, known: os.stat_result | None = None
    ) -> tuple[sidecar.Version, os.stat_result]:
        """Like `_open`, without opening the data unless it has no version (a foreign file).
        `known` is the data file's ``lstat`` if the caller has just taken it."""
        seen: tuple[object, ...] | None = None
        for _ in range(_MAX_READ_ATTEMPTS):
            st, known = known or tree.lstat(dir_fd, name), None
            if st is None or stat.S_ISDIR(st.st_mode):
                raise NotFoundError(f"no object at key {key!r}", key)
            if stat.S_ISLNK(st.st_mode):
                raise tree.symlink_error(key, key)
            raw = self._read_sidecar(dir_fd, name, key)
            version = sidecar.find(raw, st) if raw is not None else None
            if version is not None:
                return version, st
            state = (st.st_ino, st.st_size, st.st_mtime_ns, raw)
            if raw is None or seen == state:
                fd, version, st = self._open(dir_fd, name, key)
                os.close(fd)
                return version, st
            seen = state
        raise StorageError(f"object {key!r} keeps changing while being read", key)

    def _open_data(self, dir_fd: int, name: str, key: str) -> int:
        try:
            return os.open(name, tree.FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise NotFoundError(f"no object at key {key!r}", key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise tree.symlink_error(key, key) from None
            raise

    def _read_sidecar(self, dir_fd: int, name: str, key: str) -> bytes | None:
        """The bytes of the sidecar; None if there is none."""
        try:
            fd = os.open(name + SIDECAR_SUFFIX, tree.FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise tree.symlink_error(key, key + SIDECAR_SUFFIX) from None
            raise
        try:
            raw = os.read(fd, _SIDECAR_READ)
            if len(raw) == _SIDECAR_READ:  # far beyond any sidecar this store writes
                # At most past the largest sidecar: a bigger file (put there by hand)
                # is cut short, so it reads as damaged instead of filling memory.
                raw += os.read(fd, sidecar.MAX_SIDECAR_BYTES + 1 - len(raw))
        finally:
            os.close(fd)
        return raw

    # delete

    def _delete(self, key: str) -> None:
        folder, name = _split(key)
        with _os_errors(key, "delete"):
            dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=key)
            if dir_fd is None:
                return
            try:
                with tree.folder_lock(dir_fd):
                    st = tree.lstat(dir_fd, name)
                    if st is not None and stat.S_ISLNK(st.st_mode):
                        raise tree.symlink_error(key, key)
                    held = self._reclaimer.hold(dir_fd, name, st)
                    try:
                        if st is not None and stat.S_ISREG(st.st_mode):
                            tree.unlink(dir_fd, name)
                            tree.unlink(dir_fd, name + SIDECAR_SUFFIX)
                        elif is_our_sidecar(dir_fd, name + SIDECAR_SUFFIX):  # a crashed delete's
                            tree.unlink(dir_fd, name + SIDECAR_SUFFIX)
                        if self.fsync:
                            tree.fsync_folder(dir_fd)
                    finally:  # its blocks are freed in the background
                        self._reclaimer.release(held)
            except tree.FolderVanishedError:
                return
            finally:
                os.close(dir_fd)
            tree.prune_empty_folders(self._root_fd, folder, key)

    # list

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder, start = _split(prefix)
        with _os_errors(prefix, "list"):
            try:
                dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=prefix)
            except StorageError:
                return
            if dir_fd is None:
                return
            yield from self._walk(dir_fd, folder + "/" if folder else "", start)

    def _walk(self, top_fd: int, top_prefix: str, start: str) -> Iterator[ObjectInfo]:
        """Yield the objects under the open folder `top_fd` in S3 order; closes `top_fd`.

        One folder is open at a time, however deep the tree: going down closes the
        parent, which is opened again (by its path, from the root) on the way back.
        """
        dir_fd = top_fd
        stack: list[tuple[str, Iterator[tuple[str, bool]]]] = []
        try:
            stack.append((top_prefix, iter(_sorted_entries(dir_fd, top_prefix, start))))
            while stack:
                prefix, entries = stack[-1]
                entry = next(entries, None) if dir_fd >= 0 else None
                if entry is None:
                    stack.pop()
                    if dir_fd >= 0:
                        os.close(dir_fd)
                    dir_fd = self._reopen(stack[-1][0]) if stack else -1
                    continue
                name, is_dir = entry
                if not is_dir:
                    info = self._list_entry(dir_fd, name, prefix + name)
                    if info is not None:
                        yield info
                    continue
                try:
                    child = os.open(name, tree.DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue  # removed or replaced meanwhile
                os.close(dir_fd)
                dir_fd = child
                below = prefix + name + "/"
                stack.append((below, iter(_sorted_entries(child, below, ""))))
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)

    def _reopen(self, prefix: str) -> int:
        """The folder a listing returns to (``"a/b/"``), or -1 if it is gone meanwhile."""
        folder = prefix.rstrip("/")
        try:
            dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=folder)
        except StorageError:
            return -1  # replaced by a file or a symlink while its subfolder was listed
        return -1 if dir_fd is None else dir_fd

    def _list_entry(self, dir_fd: int, name: str, key: str) -> ObjectInfo | None:
        """The common listed key in four system calls, as `_stat` does it, relative
        to its folder; anything unusual goes `_list_entry_carefully`."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            fd = os.open(name + SIDECAR_SUFFIX, tree.FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            return self._list_entry_carefully(dir_fd, name, key)
        info = self._trusted_info(key, st, fd)
        return self._list_entry_carefully(dir_fd, name, key) if info is None else info

    def _list_entry_carefully(self, dir_fd: int, name: str, key: str) -> ObjectInfo | None:
        try:
            version, st = self._version(dir_fd, name, key)
        except NotFoundError:
            return None  # deleted while listing
        except sidecar.CorruptSidecarError as exc:
            log.warning("list skips %r: %s", key, _corrupt(key, exc))
            return None
        except StorageError as exc:
            log.warning("list skips %r: %s", key, exc)
            return None
        return _info(key, version, st)

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
        with _os_errors(None, "clean up"):
            return clean_up(self._root_fd, min_age_seconds)

    def _close(self) -> None:
        self._reclaimer.drain()  # the space of replaced and deleted objects is back
        os.close(self._root_fd)


class _PutPlan(NamedTuple):
    """What a put stores besides its data, and on which condition."""

    key: str
    metadata: dict[str, str]
    content_type: str
    if_match: str | None
    if_none_match: str | None


class _LocalWriter(PutWriter):
    """A put of a `LocalFSStore` fed piece by piece: each piece is hashed and written
    to the temp file as it comes; `commit` publishes it as `put` does."""

    def __init__(self, store: LocalFSStore, put: _PutPlan, size: int, temp: TempFile) -> None:
        self._store = store
        self._put = put
        self._key = put.key
        self._size = size
        self._temp: TempFile | None = temp
        self._digest = hashlib.sha256()
        self._written = 0
        self._writing: Future[None] | None = None

    def write(self, data: bytes) -> None:
        temp = self._open_temp()
        if 0 <= self._size < self._written + len(data):
            raise self._mismatch(f"more than {self._size}")
        if type(data) is not bytes:
            data = bytes(data)  # it is still being written after this returns
        with _os_errors(self._key, "store"):
            self._wait_for_writing()
            self._writing = write_behind(temp, data)
            self._digest.update(data)
        self._written += len(data)

    def _wait_for_writing(self) -> None:
        """Wait for the piece being written (raising its error, if any)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def commit(self) -> ObjectInfo:
        temp = self._open_temp()
        try:
            if 0 <= self._size != self._written:
                raise self._mismatch(self._written)
            with _os_errors(self._key, "store"):
                self._wait_for_writing()
                if temp.durable:
                    temp.sync()
                return self._store._finish_put(self._put, temp, self._digest.hexdigest(), opened=None)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(Exception):  # the put is dropped whatever its write did
                self._wait_for_writing()
            self._temp.discard()
            self._temp = None

    def _open_temp(self) -> TempFile:
        if self._temp is None:
            raise StorageError(f"the put of {self._key!r} is over", self._key)
        return self._temp

    def _mismatch(self, actual: int | str) -> SizeMismatchError:
        return SizeMismatchError(
            f"data for {self._key!r} is {actual} bytes, not the declared {self._size}; nothing was stored",
            self._key,
        )


class _FileReader(ObjectReader):
    def __init__(self, info: ObjectInfo, fd: int, start: int, stop: int) -> None:
        super().__init__(info, stop - start)
        self._fd = fd
        self._offset = start

    def _read(self, size: int) -> bytes:
        with _os_errors(self.info.key, "read"):
            data = os.pread(self._fd, size, self._offset)
        self._offset += len(data)
        return data

    def _readinto(self, view: memoryview) -> int:
        with _os_errors(self.info.key, "read"):
            count = os.preadv(self._fd, [view], self._offset)
        self._offset += count
        return count

    def _release(self) -> None:
        os.close(self._fd)

    def fileno(self) -> int:
        return self._fd


def _reader(info: ObjectInfo, fd: int, start: int, end: int | None) -> _FileReader:
    """A reader of bytes [start, end) of the open data file, clipped to its size."""
    stop = info.size if end is None else min(end, info.size)
    return _FileReader(info, fd, min(start, stop), stop)


def _split(key: str) -> tuple[str, str]:
    """``"a/b/c"`` -> (``"a/b"``, ``"c"``); ``"c"`` -> (``""``, ``"c"``)."""
    folder, _, name = key.rpartition("/")
    return folder, name


def _sorted_entries(dir_fd: int, prefix: str, start: str) -> list[tuple[str, bool]]:
    """The folder's objects and subfolders as (name, is_folder), in S3 key order.

    A folder ``d`` sorts as ``d/``, which places every key below it exactly where
    S3's byte order puts it. Only names that are valid keys are listed: never
    sidecars, temp files, symlinks or the store's own folder.
    """
    found = []
    with os.scandir(dir_fd) as scan:
        for entry in scan:
            name = entry.name
            if name.endswith(SIDECAR_SUFFIX):  # half the names in a folder of objects
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and not entry.is_file(follow_symlinks=False):
                continue
            if is_dir and segment_problem(name) is not None:
                continue
            try:
                order = name.encode("utf-8") + (b"/" if is_dir else b"")
            except UnicodeEncodeError:
                continue  # not a UTF-8 name: never made by this store
            if start and not order.startswith(start.encode("utf-8")):
                continue
            if is_dir or is_valid_key(prefix + name):
                found.append((order, name, is_dir))
    found.sort()
    return [(name, is_dir) for _, name, is_dir in found]


class _WouldHashError(Exception):
    """Raised inside `_get_nowait` where only hashing the file would tell its ETag."""


def _adopt(fd: int, st: os.stat_result, key: str) -> sidecar.Version:
    """A version for a data file with no sidecar of ours (copied in by hand)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, DEFAULT_CHUNK_SIZE, offset):
        digest.update(chunk)
        offset += len(chunk)
    return sidecar.Version(sidecar.FileIdentity.of(st), digest.hexdigest(), guess_content_type(key), {})


def _info(key: str, version: sidecar.Version, st: os.stat_result) -> ObjectInfo:
    # Each Version's metadata is a dict of its own: parsed for this read, or the put's copy.
    return _describe(key, st, version.etag, version.content_type, version.metadata)


def _describe(
    key: str, st: os.stat_result, etag: str, content_type: str, metadata: dict[str, str]
) -> ObjectInfo:
    """The `ObjectInfo` of the data file whose ``stat`` is `st`, with what its sidecar says."""
    return object_info(
        key=key,
        size=st.st_size,
        content_type=content_type,
        last_modified=_EPOCH + timedelta(0, 0, st.st_mtime_ns // 1000),  # days, seconds, microseconds
        etag=etag,
        metadata=metadata,
    )


def _has_entries(dir_fd: int, name: str) -> bool:
    try:
        fd = os.open(name, tree.DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return True
    try:
        with os.scandir(fd) as scan:
            return any(True for _ in scan)
    finally:
        os.close(fd)


def _corrupt(key: str, exc: sidecar.CorruptSidecarError) -> StorageError:
    return StorageError(
        f"the metadata of {key!r} is unreadable (its {SIDECAR_SUFFIX} sidecar is truncated "
        f"or invalid: {exc}); delete or overwrite the object",
        key,
    )


class _os_errors:  # noqa: N801 - used like a function: ``with _os_errors(key, "store"):``
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
            raise _corrupt(key or "", exc) from None
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
