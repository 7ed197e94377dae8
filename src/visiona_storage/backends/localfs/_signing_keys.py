"""The local backend's signing key file: made on first use under the store's
internal folder, read on every start."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets

from ..._errors import ConfigError
from ..._signing import URLSigner
from ._layout import temp_name

log = logging.getLogger("visiona_storage.signing")


def load_or_create_keys(root: str, folder: str, name: str) -> URLSigner:
    """The signer whose key is kept in ``root/folder/name`` (mode 0600), made on first use.

    `folder` and the file are opened relative to `root` without following symlinks,
    so a symlink planted there can neither plant a key nor receive one: it raises
    `ConfigError`, as does a damaged file. Two processes starting together agree on
    one key: the file is published with a hard link, which fails if the other one got
    there first.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700, dir_fd=root_fd)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            dir_fd = os.open(folder, flags, dir_fd=root_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ConfigError(
                    f"{os.path.join(root, folder)} must be a folder, not a symlink or a file: "
                    "remove it to make a new signing key"
                ) from exc
            raise
    finally:
        os.close(root_fd)
    try:
        try:
            return _read_keys(dir_fd, name, os.path.join(root, folder, name))
        except FileNotFoundError:
            pass
        key_id = "k" + secrets.token_hex(4)
        body = json.dumps({"active": key_id, "keys": {key_id: secrets.token_hex(32)}}).encode()
        temp = temp_name()  # a clean-up knows it for the store's own
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp, dir_fd=dir_fd)
        return _read_keys(dir_fd, name, os.path.join(root, folder, name))
    finally:
        os.close(dir_fd)


def _read_keys(dir_fd: int, name: str, path: str) -> URLSigner:
    try:
        # O_NONBLOCK: a FIFO in its place reads as empty (damaged) instead of hanging.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"the signing key file {path} is a symlink: remove it") from exc
        raise
    try:
        mode = os.fstat(fd).st_mode & 0o777
        raw = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    if mode & 0o077:
        log.warning("the signing key file %s can be read by others (mode %o): chmod 600 it", path, mode)
    damaged = f"the signing key file {path} is damaged: delete it to make a new key"
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(damaged) from None
    shaped = isinstance(doc, dict) and isinstance(doc.get("keys"), dict)
    if not shaped or not isinstance(doc.get("active"), str):
        raise ConfigError(damaged)
    try:
        return URLSigner(doc["keys"], doc["active"])
    except ConfigError as exc:
        raise ConfigError(f"{damaged} ({exc})") from None
