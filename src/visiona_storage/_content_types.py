"""Content types guessed from a key's extension, from a fixed table.

The table does not depend on the host: ``/etc/mime.types`` calls a Kneron
``.nef`` model a Nikon photo, and model files must come back as bytes.
"""

from __future__ import annotations

DEFAULT_CONTENT_TYPE = "application/octet-stream"

_BY_EXTENSION: dict[str, str] = {
    # Models and tensors: opaque bytes.
    ".nef": DEFAULT_CONTENT_TYPE,
    ".onnx": DEFAULT_CONTENT_TYPE,
    ".bin": DEFAULT_CONTENT_TYPE,
    ".pt": DEFAULT_CONTENT_TYPE,
    ".pth": DEFAULT_CONTENT_TYPE,
    ".ckpt": DEFAULT_CONTENT_TYPE,
    ".safetensors": DEFAULT_CONTENT_TYPE,
    ".tflite": DEFAULT_CONTENT_TYPE,
    ".pb": DEFAULT_CONTENT_TYPE,
    ".h5": DEFAULT_CONTENT_TYPE,
    ".npy": DEFAULT_CONTENT_TYPE,
    ".npz": DEFAULT_CONTENT_TYPE,
    ".pkl": DEFAULT_CONTENT_TYPE,
    # Text and data.
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".html": "text/html",
    ".xml": "application/xml",
    # Archives.
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
    # Images (snapshots, screenshots).
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
}


def guess_content_type(key: str) -> str:
    """The content type for `key` by its extension (case-insensitive), else octet-stream."""
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return DEFAULT_CONTENT_TYPE
    return _BY_EXTENSION.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE)
