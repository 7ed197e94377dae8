"""The least an ASGI app on uvicorn can do per request: 4 KiB from memory, no
routing, no signature, no file. Its requests per second are this machine's
ceiling for any Python ASGI endpoint with one worker."""

from __future__ import annotations

from typing import Any

BODY = b"x" * 4096
HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"4096")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
