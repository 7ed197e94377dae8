"""The least an ASGI app on uvicorn can do with an upload: receive the body and
drop it. No signature, no hashing, no file. Its MiB/s bound what any upload
endpoint could reach with one uvicorn worker, whatever it does with the bytes."""

from __future__ import annotations

from typing import Any

HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"ok"})
