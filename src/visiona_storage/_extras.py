"""The optional parts of the library and the packages each needs (pyproject's extras)."""

from __future__ import annotations

import importlib.util

from ._errors import MissingExtraError

EXTRAS = {
    "s3": ("the S3 backend", ("boto3",)),
    "server": ("the HTTP endpoint (and serve)", ("starlette", "uvicorn", "anyio", "httptools")),
}


def require(extra: str) -> None:
    """Raise `MissingExtraError` naming ``pip install 'visiona-storage[extra]'`` unless
    every package `extra` brings can be imported."""
    what, modules = EXTRAS[extra]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}: pip install 'visiona-storage[{extra}]'"
            f" (from a clone: pip install '.[{extra}]')"
        )
