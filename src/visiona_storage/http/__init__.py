"""The ``/storage`` HTTP endpoint and the server that `visiona-storage serve` runs
(the ``server`` extra: ``pip install 'visiona-storage[server]'``).

    from visiona_storage.http import create_app
    app.mount("/", create_app(store, cors_origins=["https://app.example.com"]))

- `create_app`: the ASGI app, mountable in any Starlette or FastAPI service; it
  bounds what an upload may hold wherever it runs (`_app`, `_upload_body`).
- `GuardedHttpProtocol` and `ServerLimits`: uvicorn's HTTP protocol with bounds on
  heads, idle and slow connections and their number, for running the app under
  uvicorn yourself as `serve` does (`_server`).
"""

from __future__ import annotations

from .._extras import require

require("server")

from ._app import create_app  # noqa: E402 - only once the extra is known to be there
from ._server import GuardedHttpProtocol, ServerLimits  # noqa: E402

__all__ = ["GuardedHttpProtocol", "ServerLimits", "create_app"]
