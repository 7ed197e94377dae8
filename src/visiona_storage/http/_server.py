"""The HTTP server `serve` runs: uvicorn with its httptools parser, bounded so that
no client can make it hold much or keep others waiting.

uvicorn alone has no limit on the size of a request's line and headers, no
timeout before a connection's first request, none on a client that stops reading
a response, and no cap on connections. `GuardedHttpProtocol` adds each:

- a request line and headers past `ServerLimits.max_header_bytes` get 431;
- a connection must finish each request's head within `header_timeout` seconds
  of opening or of its previous response (else it is closed, with 408 if a
  head had begun);
- a response the client has not read from for `send_timeout` seconds ends the
  connection;
- past `max_connections`, a new connection closes the connection that has
  waited longest without a request running, or gets 503 if every one is busy.

Uploads that stall are cut off by the app itself (`create_app`'s body timeout),
so that holds wherever the app is mounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("visiona_storage.server")

DESCRIPTORS_PER_CONNECTION = 2
"""A connection's socket, and the file or temp file its request may hold open."""
SPARE_DESCRIPTORS = 64
"""Kept for the process itself: its listening socket, logs, the store's root and
folders, the reclaimer's held files."""


@dataclass(frozen=True)
class ServerLimits:
    """What one client may make `serve` hold, and for how long."""

    header_timeout: float = 10.0
    send_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 1000

    def fitted_to_descriptors(self) -> ServerLimits:
        """These limits with `max_connections` lowered to what the process's file
        descriptor limit can hold (after raising its soft limit to its hard one),
        so that accepting a connection never fails for want of a descriptor."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
        room = max(1, (soft - SPARE_DESCRIPTORS) // DESCRIPTORS_PER_CONNECTION)
        return ServerLimits(
            self.header_timeout, self.send_timeout, self.max_header_bytes, min(self.max_connections, room)
        )


class _Connections:
    """The connections of one server that no request is running on, oldest first."""

    def __init__(self) -> None:
        self.idle: OrderedDict[GuardedHttpProtocol, None] = OrderedDict()

    def oldest_idle(self) -> GuardedHttpProtocol | None:
        return next(iter(self.idle), None)


_SERVERS: weakref.WeakKeyDictionary[Any, _Connections] = weakref.WeakKeyDictionary()


def _canned(status: int, reason: str) -> bytes:
    body = f"{status} {reason}\n".encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HeadTooLargeError(Exception):
    """Raised in a parser callback to stop parsing a head past the limit."""


MAX_HEADER_FIELDS = 100
"""Header fields per request (431 past it): thousands of tiny ones cost milliseconds
of parsing each, well within the byte limit."""

_TOO_LARGE = _canned(431, "Request Header Fields Too Large")
_TIMEOUT = _canned(408, "Request Timeout")
_BUSY = _canned(503, "Service Unavailable")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds in this module's docstring;
    `configure` sets them for the process before the server starts."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    @classmethod
    def configure(cls, limits: ServerLimits) -> None:
        """Set the limits of every connection of this class in this process (`serve`
        runs one server per process; a subclass with its own `limits` suits others)."""
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all = _SERVERS.setdefault(self.server_state, _Connections())
        self._running = 0  # requests whose head is complete and whose response is not
        self._in_head = False
        self._head_bytes = 0  # received since the head began
        self._parsed_bytes = 0  # of request line and headers the parser has passed on
        self._too_large = False
        self._in_body = False  # from the end of a request's head to the end of its message
        self._fields = 0  # header fields of this request
        self._framing_bytes = 0  # received while a request's body is read
        self._body_bytes = 0  # of those, body
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            victim = self._all.oldest_idle()
            if victim is None:
                log.warning("refusing a connection: %d are open, all busy", len(self.connections) - 1)
                self._reply_and_close(_BUSY)
                return
            victim._close()
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._all.idle.pop(self, None)
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head that arrives in pieces is measured here, as the parser keeps an
        # unfinished header to itself; one that arrives whole, by the parser's
        # callbacks (`_count`). In a body, what is not body (chunk lines, their
        # extensions, trailers) may be at most the head's limit plus a quarter of
        # the body: an endless trailer or chunk line ends here.
        if self._in_head:
            self._head_bytes += len(data)
        elif self._in_body:
            self._framing_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._reply_and_close(_TOO_LARGE)
        elif self._framing_bytes - self._body_bytes > self.limits.max_header_bytes + self._body_bytes // 4:
            log.info("closing a connection whose body's framing outgrew its data")
            self._framing_bytes = self._body_bytes = 0
            self._drop()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            self._too_large = True
            raise _HeadTooLargeError
        if self._in_body:
            return  # a trailer field: ignored (RFC 9110 6.5); uvicorn would add it to the headers
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def _count(self, size: int) -> None:
        self._parsed_bytes += size
        if self._parsed_bytes > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadTooLargeError  # the parser stops; uvicorn calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._reply_and_close(_TOO_LARGE)
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._parsed_bytes = self._fields = 0
        self._framing_bytes = self._body_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._running += 1
        self._all.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._running = max(0, self._running - 1)
        super().on_response_complete()
        if self._running == 0 and not self.transport.is_closing():
            self._wait_for_head()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _wait_for_head(self) -> None:
        """No request runs here now: the next head must come within the timeout, and
        the connection may be closed to make room for a new one."""
        self._all.idle[self] = None
        self._all.idle.move_to_end(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._reply_and_close(_TIMEOUT)
        else:
            self._close()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        log.info("closing a connection whose client read nothing for %g s", self.limits.send_timeout)
        self._drop()

    def _drop(self) -> None:
        """End the connection now, whatever it holds unsent or unread."""
        self._all.idle.pop(self, None)
        self._cancel_timers()
        # The app may be about to send more: tell it the client is gone now, as
        # connection_lost will, so that it stops instead of writing to a closed handle.
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.abort()  # what it holds unsent goes too

    def _reply_and_close(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()
        self._all.idle.pop(self, None)

    def _close(self) -> None:
        """Close a connection no request runs on, once what it has to send is sent: a
        client that does not read that within `send_timeout` is cut off."""
        self._all.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.transport.get_write_buffer_size() and self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_timed_out)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._send_timer = None
