"""Configuration: YAML (with ``${VAR}`` and ``${VAR:-default}`` from the environment),
or the environment alone, into a typed `StorageConfig`, and `open_store`.

    storage:
      backend: localfs            # or s3
      localfs: {root: ./data/storage, base_url: http://localhost:3001/storage}
      s3: {endpoint: "", bucket: visiona-models, region: us-east-1,
           access_key: "${S3_ACCESS_KEY}", secret_key: "${S3_SECRET_KEY}"}
      server: {host: 127.0.0.1, port: 3001, cors_origins: [], workers: 1,
               header_timeout: 10, body_timeout: 30, send_timeout: 30,
               max_header_bytes: 65536, max_connections: 1000}

A bad configuration raises `ConfigError` naming the field and the problem;
secret values never appear in errors or in ``repr``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from ._errors import ConfigError
from ._store import Store

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRETS = {"secret_key", "access_key", "signing_keys"}


@dataclass(frozen=True)
class LocalFSConfig:
    root: str = "./data/storage"
    base_url: str = ""
    """Where presigned URLs point; by default `serve`'s address from the server
    section (``http://localhost:3001/storage``)."""
    fsync: bool = True
    signing_keys: dict[str, str] | None = field(default=None, repr=False)
    signing_key_id: str | None = None


@dataclass(frozen=True)
class S3Config:
    endpoint: str = ""
    bucket: str = ""
    """Required with the s3 backend."""
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    part_size: int = 8 << 20
    concurrency: int = 4
    max_connections: int = 64
    """Connections kept open for reuse (`S3Store`'s `max_connections`)."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose pages may use the bucket's presigned URLs (`visiona-storage setup`
    applies the CORS rule)."""
    cors_expose_metadata: tuple[str, ...] = ()
    """Metadata names whose ``x-amz-meta-*`` headers those pages may read."""


MAX_WORKERS = 64
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 3001
    cors_origins: tuple[str, ...] = ()
    workers: int = 1
    """Processes `serve` runs, each with its own event loop; they share the port."""
    header_timeout: float = 10.0
    """Seconds a connection has to send each request's line and headers, from when it
    opens or its previous response ends."""
    body_timeout: float = 30.0
    """Seconds within which an upload must send 16 KiB more, or its end (else 408,
    nothing stored)."""
    send_timeout: float = 30.0
    """Seconds a download may go without the client reading (then it is cut off)."""
    max_header_bytes: int = 65536
    """The most bytes of request line and headers (431 past it)."""
    max_connections: int = 1000
    """Open connections per worker; lowered to what the file descriptor limit holds."""


@dataclass(frozen=True)
class StorageConfig:
    """The whole ``storage:`` section, typed and checked."""

    backend: str = "localfs"
    localfs: LocalFSConfig = field(default_factory=LocalFSConfig)
    s3: S3Config = field(default_factory=S3Config)
    server: ServerConfig = field(default_factory=ServerConfig)


ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | StorageConfig | None


def load_config(source: ConfigSource = None, environ: Mapping[str, str] | None = None) -> StorageConfig:
    """The configuration from a YAML file path, a parsed mapping, a `StorageConfig`,
    or (with ``None``) the environment alone. Raises `ConfigError`."""
    env = os.environ if environ is None else environ
    if isinstance(source, StorageConfig):
        return check_config(source)
    if source is None:
        return check_config(_from_environment(env))
    if isinstance(source, Mapping):
        document: Any = source
        where = "the configuration"
    else:
        where = os.fspath(source)
        try:
            with open(where, encoding="utf-8") as f:
                document = yaml.safe_load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {where}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("storage"), Mapping):
        raise ConfigError(f"{where}: expected a top-level 'storage:' section")
    unknown = set(document) - {"storage"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level field(s) {sorted(unknown)}")
    return check_config(_build(StorageConfig, _expand_storage(document["storage"], env), "storage"))


def open_store(source: ConfigSource = None) -> Store:
    """Open the store a configuration describes; with none, localfs at ./data/storage
    (or what ``STORAGE_BACKEND`` and the ``S3_*`` environment variables say)."""
    config = load_config(source)
    if config.backend == "s3":
        from .backends.s3 import S3Store  # noqa: PLC0415 - boto3 only when asked for (MissingExtraError)

        s3 = config.s3
        return S3Store(
            s3.bucket,
            endpoint=s3.endpoint,
            region=s3.region,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            part_size=s3.part_size,
            concurrency=s3.concurrency,
            max_connections=s3.max_connections,
        )
    from .backends.localfs import LocalFSStore  # noqa: PLC0415 - avoids an import cycle

    local = config.localfs
    return LocalFSStore(
        local.root,
        base_url=local.base_url,
        fsync=local.fsync,
        signing_keys=local.signing_keys,
        signing_key_id=local.signing_key_id,
    )


def _from_environment(env: Mapping[str, str]) -> StorageConfig:
    def get(name: str, default: str) -> str:
        return env.get(name) or default

    s3 = S3Config(
        endpoint=get("S3_ENDPOINT", ""),
        bucket=get("S3_BUCKET", ""),
        region=get("S3_REGION", S3Config.region),
        access_key=env.get("S3_ACCESS_KEY") or None,
        secret_key=env.get("S3_SECRET_KEY") or None,
    )
    local = LocalFSConfig(
        root=get("STORAGE_ROOT", LocalFSConfig.root), base_url=get("STORAGE_BASE_URL", LocalFSConfig.base_url)
    )
    return StorageConfig(backend=get("STORAGE_BACKEND", "localfs").lower(), localfs=local, s3=s3)


class _UnsetError(Exception):
    """A ``${VAR}`` whose variable is not set, in a section the configuration does not use."""


def _expand_storage(raw: Any, env: Mapping[str, str]) -> Any:
    """The ``storage:`` section with ``${VAR}`` substituted. A variable that is not
    set is an error in the sections in use (the chosen backend's and the server's);
    in the other backend's section, a field naming one is left out, so a file can
    describe both backends and use either."""
    if not isinstance(raw, Mapping):
        return raw
    backend = _expand(raw.get("backend", "localfs"), "storage.backend", env)
    used = {"backend", "server", backend if isinstance(backend, str) else "localfs"}
    expanded: dict[Any, Any] = {}
    for name, section in raw.items():
        where = f"storage.{name}"
        if name in used or not isinstance(section, Mapping):
            expanded[name] = _expand(section, where, env)
            continue
        fields_set = {}
        for field_name, value in section.items():
            try:
                fields_set[field_name] = _expand(value, f"{where}.{field_name}", env, lenient=True)
            except _UnsetError:
                continue
        expanded[name] = fields_set
    return expanded


def _expand(value: Any, where: str, env: Mapping[str, str], *, lenient: bool = False) -> Any:
    """Substitute ``${VAR}`` and ``${VAR:-default}`` in every string; an unset
    variable without a default raises `ConfigError` (`_UnsetError` if `lenient`)."""
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{where}.{k}", env, lenient=lenient) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", env, lenient=lenient) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if lenient:
            raise _UnsetError(name)
        raise ConfigError(f"{where}: environment variable {name} is not set (use ${{{name}:-default}})")

    return _VAR.sub(replace, value)


def _build(cls: type[Any], raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields")
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(map(str, unknown))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _field_value(cls, name, value, f"{where}.{name}")
    return cls(**values)


def _field_value(cls: type[Any], name: str, value: Any, where: str) -> Any:
    nested = {"localfs": LocalFSConfig, "s3": S3Config, "server": ServerConfig}
    if cls is StorageConfig and name in nested:
        return _build(nested[name], value, where)
    default = getattr(cls(), name)
    secret = name in _SECRETS
    shown = "a secret" if secret else repr(value)
    if name in ("cors_origins", "cors_expose_metadata"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {shown}")
        return tuple(value)
    if name == "signing_keys":
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where}: expected a mapping of key id to secret")
        return {str(k): v for k, v in value.items()}
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {shown}")
        return value
    if isinstance(default, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{where}: expected a number of seconds, got {shown}")
        return number
    if isinstance(default, int):
        digits = isinstance(value, str) and value.isascii() and value.isdigit()
        if isinstance(value, bool) or not (isinstance(value, int) or digits):
            raise ConfigError(f"{where}: expected a whole number, got {shown}")
        return int(value)
    if value is None:
        return default
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected text, got {shown}")
    text = str(value)
    return text if text or default is not None else None


def _serve_url(server: ServerConfig) -> str:
    """The ``/storage`` URL that `serve` answers on, as a client on this machine reaches it."""
    host = "localhost" if server.host in ("127.0.0.1", "0.0.0.0", "::", "") else server.host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}/storage"


def check_config(config: StorageConfig) -> StorageConfig:
    """`config`, if its values make sense together; raises `ConfigError` naming the field."""
    if config.backend not in ("localfs", "s3"):
        raise ConfigError(f"storage.backend: must be 'localfs' or 's3', not {config.backend!r}")
    if not config.localfs.base_url:
        config = replace(config, localfs=replace(config.localfs, base_url=_serve_url(config.server)))
    if not config.localfs.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"storage.localfs.base_url: must be an http(s) URL, not {config.localfs.base_url!r}"
        )
    if not config.localfs.root:
        raise ConfigError("storage.localfs.root: must not be empty")
    if config.backend == "s3" and not config.s3.bucket:
        raise ConfigError("storage.s3.bucket: the s3 backend needs a bucket (S3_BUCKET without a file)")
    if config.backend == "s3" and bool(config.s3.access_key) != bool(config.s3.secret_key):
        raise ConfigError("storage.s3: give both access_key and secret_key, or neither")
    if config.s3.max_connections < 1:
        raise ConfigError("storage.s3.max_connections: must be at least 1")
    if not 0 < config.server.port < 65536:
        raise ConfigError(f"storage.server.port: {config.server.port} is not a TCP port")
    server = config.server
    if not 0 < server.workers <= MAX_WORKERS:
        raise ConfigError(f"storage.server.workers: must be 1 to {MAX_WORKERS}, not {server.workers}")
    for name in ("header_timeout", "body_timeout", "send_timeout"):
        if not 0 < getattr(server, name) <= MAX_TIMEOUT:
            raise ConfigError(f"storage.server.{name}: must be above 0 and at most {MAX_TIMEOUT} seconds")
    if not 1024 <= server.max_header_bytes <= 1 << 20:
        raise ConfigError("storage.server.max_header_bytes: must be 1024 to 1048576")
    if server.max_connections < 1:
        raise ConfigError("storage.server.max_connections: must be at least 1")
    return config
