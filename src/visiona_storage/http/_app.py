"""The ``/storage`` HTTP endpoint: presigned GET, HEAD and PUT of any `Store`, as an
ASGI (Starlette) app that any Starlette or FastAPI service can mount.

    app = create_app(store, cors_origins=["https://app.example.com"])

GET and HEAD answer with ``ETag``, ``Last-Modified``, ``Content-Type``,
``Content-Length`` and the metadata as ``x-amz-meta-*``, honour a single
``Range`` (206, or 416) and ``If-None-Match`` (304). PUT streams the body into
`Store.put`, with ``x-amz-meta-*`` headers as metadata, exactly as a browser
uploads to S3; an upload that ends early or runs long stores nothing. Every
request must carry a valid signature (403 otherwise); errors are a small JSON
body, and bad input never gets a 5xx.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import parse_qsl

import anyio
import anyio.lowlevel
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import _headers
from .._errors import (
    ConfigError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyConflictError,
    NotFoundError,
    PreconditionFailedError,
    SignatureError,
    SizeMismatchError,
    StorageError,
    StorageFullError,
    UnsupportedError,
)
from .._keys import check_key
from .._models import ObjectInfo, ObjectReader
from .._signing import SignedRequest, URLSigner
from .._store import Store, start_put
from .._writer import PutWriter
from ._cors import MetadataCORSMiddleware
from ._malloc_trim import MemoryReturner
from ._upload_body import (
    PIECE,
    BodyTimeoutError,
    BodyTooLargeError,
    PieceBudget,
    cut_off_when_idle,
    push_body,
    receive_all,
    receive_body,
)

log = logging.getLogger("visiona_storage.http")

CHUNK_SIZE = 1 << 20
"""Objects up to this size are read whole in one worker-thread call."""
STREAM_CHUNK = 256 << 10
"""A bigger object is sent in pieces of this size at first. A client that stops
reading holds at most two of them (one unsent in its connection, one read ahead),
so 300 such clients hold about 150 MiB."""
FAST_CHUNK = 1 << 20
"""The piece size once a client has shown it reads (`FAST_AFTER` bytes taken, each
piece without waiting): a quarter of the worker-thread trips, twice the speed on
loopback."""
FAST_AFTER = 8 << 20
"""More than a socket's send buffer takes: a client that never reads stalls before it,
so it holds two small pieces. One that reads this much at speed and then stops
holds two large ones (2 MiB) until the send timeout cuts it off."""
WAITED = 0.005
"""Seconds a piece may take to be sent and still count as taken without waiting."""
SMALL_ON_LOOP = 64 << 10
"""Objects up to this size of a local store are read on the event loop."""
META_PREFIX = "x-amz-meta-"
EXPOSED_HEADERS = ["ETag", "Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[StorageError], int, str]] = [
    (InvalidKeyError, 400, "InvalidKey"),
    (SizeMismatchError, 400, "IncompleteBody"),
    (InvalidArgumentError, 400, "InvalidArgument"),
    (NotFoundError, 404, "NoSuchKey"),
    (SignatureError, 403, "AccessDenied"),
    (PreconditionFailedError, 412, "PreconditionFailed"),
    (KeyConflictError, 409, "KeyConflict"),
    (StorageFullError, 507, "InsufficientStorage"),
    (UnsupportedError, 501, "NotImplemented"),
]


BODY_TIMEOUT = 30.0
"""Seconds an upload may go without sending a byte of its body before it is cut off
(408): a client that stalls holds no thread, but it holds its piece and a file."""
SMALL_PUT_THREADS = 8
"""Worker threads that whole small uploads (at most one piece) may take at once."""
PIECE_THREADS = 4
"""Worker threads that large uploads' pieces and commits may take at once. Hashing
and writing a piece keeps a core busy, so a few threads fill the machine, and a
burst of large uploads leaves cores for everything else."""
QUEUED_PIECES = 64
"""Pieces of 1 MiB that all uploads together may hold waiting to be written or being
written: past it, uploads wait (their clients with them, by TCP), so a flood of
fast uploads holds about this plus the piece each is filling."""
DOWNLOAD_THREADS = 16
"""Worker threads that downloads' reads may take at once. Small uploads, large
uploads and downloads each have their own threads, apart from the event loop's
default pool, so none can starve another, nor the service the app is mounted in."""


class _Threads(NamedTuple):
    small_puts: anyio.CapacityLimiter
    pieces: anyio.CapacityLimiter
    reads: anyio.CapacityLimiter
    queued: PieceBudget


def create_app(
    store: Store,
    *,
    signer: URLSigner | None = None,
    cors_origins: Sequence[str] = (),
    prefix: str = "/storage",
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """The ASGI app serving `store` under ``{prefix}/{key}``.

    `signer` verifies the presigned URLs; by default the store's own
    (`Store.url_signer`: a `LocalFSStore` has one). `cors_origins` are the origins a browser page may
    call it from. An upload that sends nothing for `body_timeout` seconds gets
    408 and stores nothing. Raises `ConfigError` if there is no signer.
    """
    signer = signer if signer is not None else store.url_signer
    if not isinstance(signer, URLSigner):
        raise ConfigError(f"{type(store).__name__} has no URL signer: pass signer=")
    if not isinstance(body_timeout, (int, float)) or isinstance(body_timeout, bool) or not body_timeout > 0:
        raise ConfigError(f"body_timeout must be a number of seconds above 0, not {body_timeout!r}")
    endpoint = _Endpoint(store, signer, body_timeout)
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                MetadataCORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "HEAD", "PUT"],
                allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS,
                max_age=600,
            )
        )
    route = Route(prefix.rstrip("/") + "/{key:path}", endpoint, methods=["GET", "HEAD", "PUT"])
    return Starlette(routes=[route], middleware=middleware)


class _Endpoint:
    """The route's ASGI app. A GET or HEAD reads the few request headers it needs
    straight from the scope: small GETs are most of the traffic, and a Starlette
    `Request` with the wrapper that makes one cost about as much as the store's
    get."""

    def __init__(self, store: Store, signer: URLSigner, body_timeout: float) -> None:
        self.store = store
        self.signer = signer
        self.body_timeout = body_timeout
        self._limiters: _Threads | None = None
        self._memory = MemoryReturner()

    def _threads(self) -> _Threads:
        """The limits of each kind of request's worker threads, made in the event loop."""
        if self._limiters is None:
            self._limiters = _Threads(
                anyio.CapacityLimiter(SMALL_PUT_THREADS),
                anyio.CapacityLimiter(PIECE_THREADS),
                anyio.CapacityLimiter(DOWNLOAD_THREADS),
                PieceBudget(QUEUED_PIECES),
            )
        return self._limiters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._handle(scope, receive)
        await response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> Response:
        key = scope["path_params"].get("key", "")
        try:
            check_key(key)
            query = _query(scope["query_string"])
            coding = _transfer_coding(scope["headers"])
            if coding not in (None, "chunked"):
                # RFC 9112 6.3: a body whose framing cannot be read is a bad request.
                message = f"Transfer-Encoding {coding!r} is not supported; send chunked or Content-Length"
                return _json(400, "InvalidRequest", message, key, _CLOSE)
            if scope["method"] == "PUT":
                headers = Headers(scope=scope)
                content_type = headers.get("content-type")
                signed = self.signer.verify("PUT", key, query, content_type)
                return await self._upload(scope, receive, headers, key, signed)
            self.signer.verify("GET", key, query, None)
            return await self._download(_get_headers(scope), key, head=scope["method"] == "HEAD")
        except StorageError as exc:
            return _error(exc)
        except BodyTooLargeError:
            return _json(413, "EntityTooLarge", "the upload is larger than the URL allows", key)
        except BodyTimeoutError:
            message = f"no byte of the body came for {self.body_timeout:g} s; nothing was stored"
            return _json(408, "RequestTimeout", message, key, _CLOSE)
        except ClientDisconnect:
            return _json(400, "IncompleteBody", "the client went away before the body ended", key)
        except Exception:
            log.exception("unexpected failure serving %r", key)
            return _json(500, "InternalError", "the server failed; nothing was changed", key)

    # GET and HEAD

    async def _download(self, headers: dict[str, str], key: str, *, head: bool) -> Response:
        """`headers` are the request's `_GET_HEADERS` that it carries."""
        wanted = _parse_range(headers.get("range"))
        info, reader, body = await self._get_wanted(key, wanted)
        if_range = headers.get("if-range")
        if wanted is not None and if_range is not None and not _if_range_matches(if_range, info):
            # A resumed download of another version: the whole object, never its tail
            # (RFC 9110 13.1.5), or the client would splice two versions together.
            if reader is not None:
                reader.close()
            wanted = None
            info, reader, body = await self._get_wanted(key, None)
        try:
            response = self._respond(headers, key, info, wanted)
            if response.status_code >= 300 or head:
                return response
            if body is not None:
                response.body = body
                return response
            assert reader is not None
            stream = _stream(reader, self._threads().reads, self._memory)
            streaming = _ClosingStreamingResponse(stream, status_code=response.status_code)
            streaming.raw_headers = response.raw_headers
            reader = None  # the stream closes it
            return streaming
        finally:
            if reader is not None:
                reader.close()

    async def _get_wanted(
        self, key: str, wanted: tuple[int | None, int | None] | None
    ) -> tuple[ObjectInfo, ObjectReader | None, bytes | None]:
        """`_fetch`: on the event loop where the store can open the object without
        waiting (microseconds for a local file), else in one thread hop."""
        fetched = self._fetch_nowait(key, wanted)
        if fetched is None:
            fetched = await anyio.to_thread.run_sync(self._fetch, key, wanted, limiter=self._threads().reads)
        return fetched

    def _fetch(
        self, key: str, wanted: tuple[int | None, int | None] | None
    ) -> tuple[ObjectInfo, ObjectReader | None, bytes | None]:
        """The object's info, and a reader of the wanted bytes, or those bytes
        themselves if the object is at most `CHUNK_SIZE` bytes."""
        return _read_if_small(self._open(key, wanted), CHUNK_SIZE)

    def _fetch_nowait(
        self, key: str, wanted: tuple[int | None, int | None] | None
    ) -> tuple[ObjectInfo, ObjectReader | None, bytes | None] | None:
        """`_fetch` on the event loop, for an object the store opens without waiting
        (`Store.get_nowait`) and reads whole if at most `SMALL_ON_LOOP` bytes; None
        when that cannot be (a suffix range, which needs a stat first)."""
        if wanted is not None and wanted[0] is None:
            return None
        start, end = (0, None) if wanted is None else _slice(wanted)
        reader = self.store.get_nowait(key, start, end)
        return None if reader is None else _read_if_small(reader, SMALL_ON_LOOP)

    def _respond(
        self,
        request_headers: dict[str, str],
        key: str,
        info: ObjectInfo,
        wanted: tuple[int | None, int | None] | None,
    ) -> Response:
        """The status and headers for a GET or HEAD of `info`; the body comes after.

        The reader `_open` made for `wanted` holds exactly the bytes promised here."""
        headers = _object_headers(info)
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None and _etag_matches(if_none_match, info.etag):
            del headers["Content-Length"]  # a 304 has no body, and must not promise one
            return Response(status_code=304, headers=headers)
        if_match = request_headers.get("if-match")
        if if_match is not None and not _etag_matches(if_match, info.etag, strong=True):
            return _json(412, "PreconditionFailed", "the object is not at that ETag", key)
        if wanted is None:
            return Response(status_code=200, headers=headers)
        first, last = _resolve(wanted, info.size)
        if first is None:
            return _json(
                416,
                "InvalidRange",
                "the range is not satisfiable",
                key,
                {"Content-Range": f"bytes */{info.size}"},
            )
        status = 200
        if (first, last) != (0, info.size - 1):
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
        headers["Content-Length"] = str(last - first + 1)
        return Response(status_code=status, headers=headers)

    def _open(self, key: str, wanted: tuple[int | None, int | None] | None) -> ObjectReader:
        """A reader of the requested bytes, and the info of the object they belong to."""
        if wanted is None:
            return self.store.get(key)
        first, last = wanted
        if first is not None:
            return self.store.get(key, *_slice(wanted))
        assert last is not None  # a suffix range: the last `last` bytes
        for _ in range(5):
            size = self.store.stat(key).size
            reader = self.store.get(key, max(0, size - last))
            if reader.info.size == size:
                return reader
            reader.close()  # replaced in between; measure again
        raise StorageError(f"object {key!r} keeps changing while being read", key)

    # PUT

    async def _upload(
        self, scope: Scope, receive: Receive, headers: Headers, key: str, signed: SignedRequest
    ) -> Response:
        """Receive the body in this loop and store it: a small one whole, in one
        worker-thread hop; a large or unknown one piece by piece (`push_body`)."""
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise InvalidArgumentError("Content-Length is not a number", key)
        size = int(length) if length is not None else -1
        if signed.max_size is not None and size > signed.max_size:
            raise BodyTooLargeError
        metadata = _metadata_of(scope["headers"])
        content_type = headers.get("content-type") or None
        if_none_match, if_match = headers.get("if-none-match"), headers.get("if-match")

        def put(data: bytes) -> ObjectInfo:
            return self.store.put(
                key, data, size, metadata, content_type, if_match=if_match, if_none_match=if_none_match
            )

        def start() -> PutWriter:
            return start_put(
                self.store, key, size, metadata, content_type, if_match=if_match, if_none_match=if_none_match
            )

        threads = self._threads()
        if 0 <= size <= PIECE:
            try:
                async with cut_off_when_idle(self.body_timeout) as idle:
                    data = await receive_all(receive_body(receive, limit=signed.max_size, idle=idle))
                info = await anyio.to_thread.run_sync(put, data, limiter=threads.small_puts)
            finally:
                if size > SMALL_ON_LOOP:
                    self._memory.soon()
        else:
            writer = await anyio.to_thread.run_sync(start, limiter=threads.pieces)
            try:
                async with cut_off_when_idle(self.body_timeout) as idle:
                    chunks = receive_body(receive, limit=signed.max_size, idle=idle)
                    await push_body(chunks, writer, threads.pieces, idle, threads.queued)
                info = await anyio.to_thread.run_sync(writer.commit, limiter=threads.pieces)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(writer.abort)
                raise
            finally:
                self._memory.soon()
        return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})


def _slice(wanted: tuple[int | None, int | None]) -> tuple[int, int | None]:
    """The ``[start, end)`` slice of a range that has its first byte."""
    first, last = wanted
    assert first is not None
    return first, None if last is None else last + 1


def _read_if_small(reader: ObjectReader, small: int) -> tuple[ObjectInfo, ObjectReader | None, bytes | None]:
    """(info, the reader, None) for an object over `small` bytes; else (info, None,
    its wanted bytes), the reader closed."""
    if reader.info.size > small:
        return reader.info, reader, None
    with reader:
        return reader.info, None, reader.read()


async def _stream(
    reader: ObjectReader, limiter: anyio.CapacityLimiter, memory: MemoryReturner
) -> AsyncIterator[bytes]:
    """The reader's bytes in pieces of `STREAM_CHUNK`, or of `FAST_CHUNK` while the
    client keeps taking them as fast as they come; closes the reader at the end."""
    taken = 0  # bytes the client took, each piece without waiting, since it last waited
    try:
        while True:
            size = FAST_CHUNK if taken >= FAST_AFTER else STREAM_CHUNK
            chunk = await anyio.to_thread.run_sync(reader.read, size, limiter=limiter)
            if not chunk:
                return
            sending = time.monotonic()
            yield chunk
            taken = taken + len(chunk) if time.monotonic() - sending < WAITED else 0
    finally:
        reader.close()
        memory.soon()


class _ClosingStreamingResponse(StreamingResponse):
    """A `StreamingResponse` that closes its body iterator however it ends: cut off
    mid-send (a client that stopped reading), the iterator would otherwise keep its
    reader (a file descriptor) and its last piece until the garbage collector ran."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            closing = getattr(self.body_iterator, "aclose", None)
            if closing is not None:
                with anyio.CancelScope(shield=True):
                    await closing()


_META_PREFIX_BYTES = META_PREFIX.encode("ascii")
_CLOSE = {"Connection": "close"}
"""Where the request's framing cannot be trusted, or its client stalls: the
connection ends with the response. Other refused uploads leave it to the server,
which reads and drops the rest of the body, so the client gets to read the answer
(closing on unread data makes TCP reset the connection, answer and all)."""


def _transfer_coding(raw_headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The request's Transfer-Encoding, lowercased, all of them joined; None if none."""
    codings = [
        value.decode("latin-1").strip().lower()
        for name, value in raw_headers
        if name.lower() == b"transfer-encoding"
    ]
    return ", ".join(codings) if codings else None


def _metadata_of(raw_headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``x-amz-meta-*`` request headers as metadata. A value in raw UTF-8 (as
    rclone sends) is the text it spells; other bytes are read as Latin-1, as HTTP
    reads them; an RFC 2047 encoded word is decoded (`_headers`)."""
    found = {}
    for name, value in raw_headers:
        lowered = name.lower()
        if lowered.startswith(_META_PREFIX_BYTES):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = value.decode("latin-1")
            found[lowered[len(_META_PREFIX_BYTES) :].decode("latin-1")] = _headers.decode_value(text)
    return found


_GET_HEADERS = frozenset((b"range", b"if-none-match", b"if-match", b"if-range"))


def _get_headers(scope: Scope) -> dict[str, str]:
    """The request headers a GET or HEAD looks at, by lowercase name, read as
    Starlette's ``request.headers`` reads them (the first of a repeated one)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _GET_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _query(raw: bytes) -> dict[str, str]:
    """The query string's parameters, as Starlette's ``request.query_params`` reads
    them (the last of a repeated name wins); split by hand when nothing in it is
    escaped, as in the URLs the store signs, which is most of a small GET's parsing."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(field.partition("=")[::2] for field in text.split("&") if field)


def _parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """A single ``bytes=`` range as (first, last) inclusive, (None, n) for the last n
    bytes; ``None`` for no range or one to ignore (malformed, or several: RFC 9110
    lets a server answer those with the whole object)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or len(header) > 100:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    first = int(first_text) if first_text else None
    last = int(last_text) if last_text else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _resolve(wanted: tuple[int | None, int | None], size: int) -> tuple[int | None, int]:
    """The inclusive (first, last) byte of `wanted` in an object of `size`; first is
    None if the range is unsatisfiable."""
    first, last = wanted
    if first is None:  # suffix
        assert last is not None
        if last == 0 or size == 0:
            return None, 0
        return max(0, size - last), size - 1
    if first >= size:
        return None, 0
    return first, size - 1 if last is None else min(last, size - 1)


def _if_range_matches(if_range: str, info: ObjectInfo) -> bool:
    """Whether an ``If-Range`` validator names the object's current version: its ETag,
    compared strongly, or exactly its ``Last-Modified`` date, if that is at least a
    second old (a date has whole seconds: two versions written within one share it,
    so only an older one is a strong validator, RFC 9110 13.1.5)."""
    value = if_range.strip()
    if value.startswith('"'):
        return value == f'"{info.etag}"'
    if value.startswith("W/"):
        return False  # a weak validator never allows a range
    settled = (datetime.now(UTC) - info.last_modified).total_seconds() >= 1
    return settled and value == _http_date(info.last_modified)


def _etag_matches(header: str, etag: str, *, strong: bool = False) -> bool:
    """Whether an ``If-None-Match`` (weak comparison) or, with `strong`, an
    ``If-Match`` list names `etag` (RFC 9110 8.8.3.2)."""
    if header.strip() == "*":
        return True
    for raw in header.split(","):
        candidate = raw.strip()
        if candidate.startswith("W/"):
            if strong:
                continue
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


_ACTIVE_TYPES = frozenset(
    (
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
    )
)


def runs_in_a_browser(content_type: str) -> bool:
    """Whether a browser would run script in a document of `content_type`: HTML, SVG,
    XML (whose stylesheets and namespaces can carry script) and JavaScript."""
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence in _ACTIVE_TYPES or essence.endswith("+xml")


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    """The headers that describe `info`. Every object is served ``nosniff``, so a
    browser takes its stated type; one a browser would run script in is also
    sandboxed (``Content-Security-Policy: sandbox``): an uploaded SVG or HTML page
    opened from this origin runs with none of its rights."""
    content_type = info.content_type or "application/octet-stream"
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": _http_date(info.last_modified),
        "Content-Type": content_type,
        "Content-Length": str(info.size),
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if runs_in_a_browser(content_type):
        headers["Content-Security-Policy"] = "sandbox"
    for name, value in info.metadata.items():
        headers[META_PREFIX + name] = _headers.encode_value(value)
    return headers


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(when: datetime) -> str:
    """`when` as an HTTP date (RFC 9110 IMF-fixdate, always in English), as
    ``email.utils.format_datetime(when, usegmt=True)`` writes it, formatted
    directly because it is on every GET and HEAD."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    day, month = _DAYS[when.weekday()], _MONTHS[when.month]
    fields = (day, when.day, month, when.year, when.hour, when.minute, when.second)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % fields  # noqa: UP031 - faster than f-string specs


def _error(exc: StorageError) -> Response:
    for error_type, status, code in _STATUS:
        if isinstance(exc, error_type):
            return _json(status, code, str(exc), exc.key)
    log.error("storage failure: %s", exc)
    return _json(500, "InternalError", str(exc), exc.key)


def _json(
    status: int, code: str, message: str, key: str | None, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"error": code, "message": message, "key": key}, status_code=status, headers=headers)
