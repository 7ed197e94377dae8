"""Making a bucket ready: created if missing, with the CORS rule that lets a browser
page upload to a presigned PUT URL and read the response's ETag and metadata.

Safe to run again: the rule is found by its ID and replaced only if it differs,
and the bucket's other CORS rules are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from botocore.exceptions import ClientError

from ...driver import StorageError
from ._errors import error_code

CORS_RULE_ID = "visiona-storage"
EXPOSED_HEADERS = ("ETag", "Content-Length", "Content-Range", "Content-Type", "Last-Modified")
"""What every response exposes to the page, besides the metadata headers asked for."""

Errors = Callable[[str | None, str], AbstractContextManager[None]]


def cors_rule(origins: Sequence[str], metadata: Sequence[str] = ()) -> dict[str, Any]:
    """The CORS rule for pages on `origins`: GET, HEAD and PUT with any request header,
    exposing `EXPOSED_HEADERS` and ``x-amz-meta-<name>`` for each name in `metadata`
    (S3 takes no wildcard there: a page reads only the metadata named)."""
    exposed = [*EXPOSED_HEADERS, *(f"x-amz-meta-{name.lower()}" for name in metadata)]
    return {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": list(origins),
        "AllowedMethods": ["GET", "HEAD", "PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": exposed,
        "MaxAgeSeconds": 600,
    }


def set_up_bucket(
    client: Any,
    bucket: str,
    region: str,
    *,
    on_aws: bool,
    origins: Sequence[str],
    metadata: Sequence[str],
    errors: Errors,
) -> list[str]:
    """Create `bucket` if missing and put the CORS rule for `origins` in place (or take
    ours away if there are none); return one line per thing done or found done.

    Raises `StorageError`; where the key is denied a step, its one line names the
    permission missing and holds the policy statement to hand whoever administers
    the bucket, and, where only the change of CORS is denied, the configuration too.
    """
    try:
        rules = _cors_rules(client, bucket)
        done = [f"bucket {bucket!r}: exists"]
    except ClientError as exc:
        if error_code(exc)[0] != "NoSuchBucket":
            _raise(exc, bucket, "read the CORS rules of", "s3:GetBucketCORS", errors=errors)
        done = [_create_bucket(client, bucket, region, on_aws=on_aws, errors=errors)]
        try:
            rules = _cors_rules(client, bucket)  # none, unless made meanwhile by another
        except ClientError as again:
            _raise(again, bucket, "read the CORS rules of", "s3:GetBucketCORS", errors=errors)
    others = [rule for rule in rules if rule.get("ID") != CORS_RULE_ID]
    ours = [cors_rule(origins, metadata)] if origins else []
    if [_normal(rule) for rule in rules if rule.get("ID") == CORS_RULE_ID] == [_normal(r) for r in ours]:
        done.append(f"CORS for {', '.join(origins)}: already in place" if origins else "CORS: none asked for")
        return done
    try:
        if others or ours:
            client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": others + ours})
        else:
            client.delete_bucket_cors(Bucket=bucket)
    except ClientError as exc:
        wanted = json.dumps({"CORSRules": others + ours}, separators=(",", ":"))
        _raise(exc, bucket, "set the CORS rules of", "s3:PutBucketCORS", errors=errors, wanted=wanted)
    done.append(f"CORS for {', '.join(origins)}: applied" if origins else "CORS: our rule removed")
    return done


def _policy_statement(bucket: str) -> str:
    """The IAM policy statement that allows what `set_up_bucket` does to `bucket`."""
    statement = {
        "Effect": "Allow",
        "Action": ["s3:CreateBucket", "s3:GetBucketCORS", "s3:PutBucketCORS"],
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    return json.dumps(statement)


def _raise(
    exc: ClientError, bucket: str, action: str, permission: str, *, errors: Errors, wanted: str = ""
) -> NoReturn:
    """Raise the `StorageError` for `exc`, a failure to `action` `bucket`: where access
    was denied, one naming `permission` with the policy statement (and `wanted`, the
    CORS configuration, if given) to hand whoever administers the bucket."""
    code, status = error_code(exc)
    if code == "AccessDenied" or (status == 403 and code in ("", "403")):
        statement = _policy_statement(bucket)
        also = f" or to apply this CORS configuration: {wanted}" if wanted else ""
        raise StorageError(
            f"cannot {action} bucket {bucket!r}: access denied, the key lacks {permission}; ask whoever "
            f"administers the bucket to allow the key this policy statement: {statement}{also}"
        ) from exc
    with errors(None, action):
        raise exc


def _create_bucket(client: Any, bucket: str, region: str, *, on_aws: bool, errors: Errors) -> str:
    options: dict[str, Any] = {"Bucket": bucket}
    if on_aws and region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**options)
    except ClientError as exc:
        if error_code(exc)[0] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return f"bucket {bucket!r}: exists"  # made meanwhile
        _raise(exc, bucket, "create", "s3:CreateBucket", errors=errors)
    return f"bucket {bucket!r}: created"


def _normal(rule: dict[str, Any]) -> dict[str, Any]:
    """`rule` with its lists sorted: servers may give them back in another order."""
    return {name: sorted(value) if isinstance(value, list) else value for name, value in rule.items()}


def _cors_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        rules: list[dict[str, Any]] = client.get_bucket_cors(Bucket=bucket).get("CORSRules", [])
    except ClientError as exc:
        if error_code(exc)[0] == "NoSuchCORSConfiguration":
            return []
        raise
    return rules
