"""The S3 backend (boto3): AWS, MinIO, Cloudflare R2, Backblaze B2, Ceph RGW. Needs
the ``s3`` extra; without it, importing this raises `MissingExtraError`."""

from ..._extras import require

require("s3")

from ._store import S3Store  # noqa: E402 - only once the extra is known to be there

__all__ = ["S3Store"]
