"""CORS for the /storage endpoint: Starlette's middleware, and each response's
``x-amz-meta-*`` headers exposed to the page by name, as an S3 bucket's CORS rule
exposes them, so front-end code reads an object's metadata alike on both."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Send

META_PREFIX = b"x-amz-meta-"
EXPOSE = b"access-control-expose-headers"


class MetadataCORSMiddleware(CORSMiddleware):
    """`CORSMiddleware` whose ``Access-Control-Expose-Headers`` also names the
    response's metadata headers (a page cannot see them otherwise, and the
    wildcard ``*`` is ignored on a request with credentials)."""

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        async def exposing(message: Message) -> None:
            if message["type"] == "http.response.start":
                expose_metadata(message)
            await send(message)

        await super().send(message, exposing, request_headers)


def expose_metadata(message: Message) -> None:
    """Add the names of `message`'s metadata headers to its expose header, if it has one."""
    headers: list[tuple[bytes, bytes]] = message.get("headers", [])
    names = [name for name, _ in headers if name.lower().startswith(META_PREFIX)]
    if not names:
        return
    for index, (name, value) in enumerate(headers):
        if name.lower() == EXPOSE:
            headers[index] = (name, b", ".join([value, *names]))
            return
