"""The least a presigned GET of a local object can do as an ASGI app on uvicorn:
split the query, check the signature, `store.get` and read the object, send it
with its ETag, type and length. No Starlette, no routing, no Range, no
conditional headers, no error handling. Its requests per second bound what the
`/storage` endpoint could reach with one Python worker, whatever its framework.

The store's root comes from ``VS_BENCH_ROOT``; the URL's path is ``/storage/<key>``.
"""

from __future__ import annotations

import os
from typing import Any

import visiona_storage as vs
from visiona_storage.http._app import _query  # the endpoint's own query split

store = vs.LocalFSStore(os.environ["VS_BENCH_ROOT"])
signer = store.signer
PREFIX = "/storage/"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    key = scope["path"][len(PREFIX) :]
    signer.verify("GET", key, _query(scope["query_string"]), None)
    with store.get(key) as reader:
        body, info = reader.read(), reader.info
    headers = [
        (b"content-type", info.content_type.encode("latin-1")),
        (b"etag", f'"{info.etag}"'.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
