"""The ``visiona-storage`` command: serve the /storage endpoint, and put, get, stat,
ls, rm, presign, set up, clean up and sync objects on the configured store.

Exit status: 0 on success, 1 when the store refuses or fails (missing object,
failed condition, backend error), 2 for a mistake in the command or the
configuration. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import IO, TYPE_CHECKING, Any

from ._config import StorageConfig, check_config, load_config, open_store
from ._content_types import guess_content_type
from ._errors import ConfigError, InvalidArgumentError, InvalidKeyError, StorageError
from ._extras import require
from ._models import DEFAULT_CHUNK_SIZE
from ._sync_command import add_sync_command
from ._sync_command import shown as _shown

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .backends.localfs import CleanupReport, LocalFSStore
    from .http import ServerLimits

PROGRESS_THRESHOLD = 4 << 20


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except (ConfigError, InvalidKeyError, InvalidArgumentError) as exc:
        print(f"visiona-storage: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"visiona-storage: {exc}", file=sys.stderr)
        return 1
    except (BrokenPipeError, KeyboardInterrupt):
        return 1
    except OSError as exc:  # the user's own file
        print(f"visiona-storage: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2


DESCRIPTION = (
    "Serve the /storage endpoint, and put, get, stat, list, delete, presign, set up, clean up "
    "and sync objects on the configured store (localfs by default, or S3)."
)
CONFIG_HELP = "YAML configuration (default: the environment, else localfs at ./data/storage)"


def _parser() -> argparse.ArgumentParser:
    from . import __version__  # noqa: PLC0415 - the package imports this module's callers

    parser = argparse.ArgumentParser(prog="visiona-storage", description=DESCRIPTION)
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"visiona-storage {__version__}")
    # --config may also follow the command, as with aws: each command takes it too,
    # without a default of its own, so the one before the command stands if given.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_command_parser(common))

    serve = commands.add_parser("serve", help="serve the /storage endpoint (localfs)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 3001)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.add_argument(
        "--workers", type=int, help="processes, each with its own event loop, sharing the port (default 1)"
    )
    serve.set_defaults(run=_serve)

    put = commands.add_parser("put", help="store a file ('-' for stdin) at KEY")
    put.add_argument("key")
    put.add_argument("source", help="a file, or - for standard input")
    put.add_argument("--content-type")
    put.add_argument("--meta", action="append", default=[], metavar="NAME=VALUE", help="metadata, repeatable")
    put.add_argument("--if-none-match", help="'*': only create")
    put.add_argument("--if-match", metavar="ETAG", help="only replace this version")
    _progress_flag(put)
    put.set_defaults(run=_put)

    get = commands.add_parser("get", help="write the object at KEY to a file or stdout")
    get.add_argument("key")
    get.add_argument("dest", nargs="?", default="-", help="a file, or - for standard output (default)")
    _progress_flag(get)
    get.set_defaults(run=_get)

    stat = commands.add_parser("stat", help="print an object's info as JSON")
    stat.add_argument("key")
    stat.set_defaults(run=_stat)

    ls = commands.add_parser("ls", help="list objects under PREFIX")
    ls.add_argument("prefix", nargs="?", default="")
    ls.set_defaults(run=_ls)

    rm = commands.add_parser("rm", help="delete KEY (a missing key is fine)")
    rm.add_argument("key")
    rm.set_defaults(run=_rm)

    presign = commands.add_parser("presign", help="print a presigned URL for KEY")
    presign.add_argument("key")
    presign.add_argument("--put", action="store_true", help="a URL to upload (default: download)")
    presign.add_argument("--ttl", type=int, default=900, help="seconds it stays valid (default 900)")
    presign.add_argument("--content-type", help="the content type a PUT must carry")
    presign.add_argument("--max-size", type=int, help="the most bytes a PUT may send")
    presign.set_defaults(run=_presign)

    setup = commands.add_parser(
        "setup", help="make the configured store ready (S3: create the bucket, apply its CORS rule)"
    )
    setup.set_defaults(run=_setup)

    cleanup = commands.add_parser("cleanup", help="remove what crashed writers left (localfs)")
    cleanup.set_defaults(run=_cleanup)

    add_sync_command(commands)
    return parser


def _command_parser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """A parser class whose every instance also takes `common`'s options."""

    class CommandParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parents"] = [*kwargs.get("parents", []), common]
            super().__init__(*args, **kwargs)

    return CommandParser


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: on a terminal, for more than 4 MiB)",
    )


SERVE_CONFIG_ENV = "VISIONA_STORAGE_SERVE_CONFIG"
"""How `serve` tells its worker processes which configuration file to load."""


def _serve(args: argparse.Namespace) -> int:
    require("server")
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from .http import GuardedHttpProtocol  # noqa: PLC0415

    config = load_config(args.config)
    if args.workers is not None:
        config = replace(config, server=replace(config.server, workers=args.workers))
        check_config(config)
    store = _serve_store(config)
    cleaned = store.cleanup()
    app = _serve_app(config, store)  # made here as well, so a bad setting fails before any worker starts
    host = args.host or config.server.host
    port = args.port or config.server.port
    workers = config.server.workers
    limits = _server_limits(config)
    _check_can_listen(host, port)
    print(
        f"visiona-storage: serving {store.root} at http://{host}:{port}/storage"
        f" with {workers} worker{'s' if workers > 1 else ''}, up to {limits.max_connections}"
        f" connections each ({_cleanup_summary(cleaned)}); presigned URLs point at {store.base_url}",
        file=sys.stderr,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": not args.no_access_log,
        "http": GuardedHttpProtocol,
        "backlog": 2048,
        "timeout_keep_alive": limits.header_timeout,  # header_timeout governs idle connections
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return 0
    # Each worker is a new process that makes its own app from the same configuration.
    os.environ[SERVE_CONFIG_ENV] = os.path.abspath(args.config) if args.config else ""
    uvicorn.run("visiona_storage.cli:worker_app", factory=True, workers=workers, **options)
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """Raise `StorageError` (one line, exit status 1) if `host`:`port` cannot be
    listened on, before anything says the store is being served."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise StorageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def worker_app() -> Starlette:
    """The app one `serve` worker process runs: the store of the configuration file
    named by `SERVE_CONFIG_ENV` (the environment's if empty), as `serve` made it."""
    config = load_config(os.environ.get(SERVE_CONFIG_ENV) or None)
    _server_limits(config)
    return _serve_app(config, _serve_store(config))


def _serve_store(config: StorageConfig) -> LocalFSStore:
    from .backends.localfs import LocalFSStore  # noqa: PLC0415

    store = open_store(config)
    if not isinstance(store, LocalFSStore):
        raise ConfigError("serve is for the localfs backend: on S3, presigned URLs go to S3 itself")
    return store


def _serve_app(config: StorageConfig, store: LocalFSStore) -> Starlette:
    from .http import create_app  # noqa: PLC0415 - only the server needs it
    from .http._malloc_trim import keep_freed_heap  # noqa: PLC0415

    keep_freed_heap()  # this process serves transfers: see its docstring
    server = config.server
    return create_app(store, cors_origins=server.cors_origins, body_timeout=server.body_timeout)


def _server_limits(config: StorageConfig) -> ServerLimits:
    """The bounds of `serve`'s HTTP server from `config`, fitted to this process's
    descriptor limit and set for its connections; the limits."""
    from .http import GuardedHttpProtocol, ServerLimits  # noqa: PLC0415 - only the server needs it

    server = config.server
    limits = ServerLimits(
        header_timeout=server.header_timeout,
        send_timeout=server.send_timeout,
        max_header_bytes=server.max_header_bytes,
        max_connections=server.max_connections,
    ).fitted_to_descriptors()
    GuardedHttpProtocol.configure(limits)
    return limits


def _put(args: argparse.Namespace) -> int:
    metadata = {}
    for item in args.meta:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--meta {item!r}: expected NAME=VALUE")
        metadata[name] = value
    with open_store(args.config) as store:
        source: IO[bytes]
        if args.source == "-":
            source, size = sys.stdin.buffer, -1
        else:
            source = open(args.source, "rb")  # noqa: SIM115 - closed below
            size = _file_size(source)
        try:
            info = store.put(
                args.key,
                _with_progress(_chunks(source), size, args.progress),
                size=size,
                metadata=metadata,
                content_type=args.content_type,
                if_none_match=args.if_none_match,
                if_match=args.if_match,
            )
        finally:
            if source is not sys.stdin.buffer:
                source.close()
    print(json.dumps({"key": info.key, "size": info.size, "etag": info.etag}))
    return 0


def _get(args: argparse.Namespace) -> int:
    with open_store(args.config) as store, store.get(args.key) as reader:
        out = sys.stdout.buffer if args.dest == "-" else open(args.dest, "wb")  # noqa: SIM115
        try:
            for chunk in _with_progress(reader.iter_chunks(), reader.info.size, args.progress):
                out.write(chunk)
            out.flush()
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    return 0


def _stat(args: argparse.Namespace) -> int:
    with open_store(args.config) as store:
        info = asdict(store.stat(args.key))
    info["last_modified"] = info["last_modified"].isoformat()
    print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def _ls(args: argparse.Namespace) -> int:
    with open_store(args.config) as store:
        for info in store.list(args.prefix):
            stamp = info.last_modified.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{info.size:>14}  {stamp}  {_shown(info.key)}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with open_store(args.config) as store:
        store.delete(args.key)
    return 0


def _presign(args: argparse.Namespace) -> int:
    with open_store(args.config) as store:
        if args.put:
            url = store.presigned_put_url(args.key, args.ttl, args.content_type, max_size=args.max_size)
            wanted = args.content_type or guess_content_type(args.key)
            print(f"visiona-storage: the upload must carry Content-Type: {wanted}", file=sys.stderr)
        else:
            url = store.presigned_get_url(args.key, args.ttl)
    print(url)
    return 0


def _setup(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with open_store(config) as store:
        if config.backend == "s3":
            from .backends.s3 import S3Store  # noqa: PLC0415 - open_store has imported it

            assert isinstance(store, S3Store)
            lines = store.setup(config.s3.cors_origins, config.s3.cors_expose_metadata)
        else:
            origins = ", ".join(config.server.cors_origins) or "none"
            lines = [f"localfs root {config.localfs.root}: ready", f"serve's CORS origins: {origins}"]
    print("\n".join(lines))
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from .backends.localfs import LocalFSStore  # noqa: PLC0415

    with open_store(args.config) as store:
        if not isinstance(store, LocalFSStore):
            raise ConfigError("cleanup is for the localfs backend")
        print(_cleanup_summary(store.cleanup()))
    return 0


def _cleanup_summary(report: CleanupReport) -> str:
    summary = f"removed {report.removed} leftover files"
    if report.kept:
        summary += (
            f"; left alone {len(report.kept)} files with reserved names that the store did not make"
            f" (first: {report.kept[0]!r})"
        )
    return summary


def _file_size(f: IO[bytes]) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        return -1


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(DEFAULT_CHUNK_SIZE):
        yield chunk


def _with_progress(chunks: Iterator[bytes], total: int, wanted: bool | None) -> Iterator[bytes]:
    """Pass `chunks` through, drawing a progress bar on stderr when it is wanted."""
    show = wanted if wanted is not None else sys.stderr.isatty() and (total < 0 or total > PROGRESS_THRESHOLD)
    if not show:
        yield from chunks
        return
    done = 0
    width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 40))
    for chunk in chunks:
        done += len(chunk)
        if total > 0:
            filled = int(width * done / total)
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {_mib(done)} / {_mib(total)} {100 * done // total:3d}%")
        else:
            sys.stderr.write(f"\r{_mib(done)}")
        sys.stderr.flush()
        yield chunk
    sys.stderr.write("\n")


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


if __name__ == "__main__":
    raise SystemExit(main())
