"""The S3 backend (boto3): AWS, MinIO, Cloudflare R2, Backblaze B2, Ceph RGW."""

from ._store import S3Store

__all__ = ["S3Store"]
