"""HMAC-signed URLs for backends that serve objects themselves (the local backend).

A URL carries an absolute expiry, the id of the key that signed it, an optional
maximum size, and an HMAC-SHA256 over all of those plus the HTTP method, the
object key and, for a PUT, the content type the upload must carry. Several keys
may verify (rotation); one signs. Verification compares in constant time and
says why it refused in a `SignatureError`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ._arguments import MAX_TTL_SECONDS, check_max_size, check_ttl
from ._errors import ConfigError, SignatureError

EXPIRES = "X-VS-Expires"
KEY_ID = "X-VS-Key-Id"
MAX_SIZE = "X-VS-Max-Size"
SIGNATURE = "X-VS-Signature"
SIGNED_PARAMS = (EXPIRES, KEY_ID, MAX_SIZE, SIGNATURE)

log = logging.getLogger("visiona_storage.signing")

_ALGORITHM = "VS1-HMAC-SHA256"
_DIGITS = re.compile(r"[0-9]+")
"""ASCII digits only: ``str.isdigit`` also takes ``²`` and ``①``, which ``int`` refuses."""
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class SignedRequest:
    """What a verified URL allows."""

    expires: int
    max_size: int | None


class URLSigner:
    """Signs and verifies presigned URLs with HMAC-SHA256 keys, one of which signs."""

    def __init__(self, keys: Mapping[str, str | bytes], active: str | None = None) -> None:
        if not keys:
            raise ConfigError("signing_keys: at least one key is needed")
        self._keys: dict[str, bytes] = {}
        for key_id, secret in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise ConfigError(f"signing_keys: key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if not isinstance(secret, (str, bytes)):
                kind = type(secret).__name__
                raise ConfigError(f"signing_keys: the key {key_id!r} must be text, not {kind}")
            raw = secret.encode("utf-8") if isinstance(secret, str) else secret
            if len(raw) < _MIN_SECRET_BYTES:
                raise ConfigError(
                    f"signing_keys: the key {key_id!r} is shorter than {_MIN_SECRET_BYTES} bytes"
                )
            self._keys[key_id] = raw
        self.active = active if active is not None else next(iter(self._keys))
        if not isinstance(self.active, str) or self.active not in self._keys:
            raise ConfigError(f"signing_key_id: {self.active!r} is not one of the signing_keys")

    def __repr__(self) -> str:
        return f"URLSigner(key_ids={sorted(self._keys)!r}, active={self.active!r})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def sign(
        self, method: str, key: str, ttl_seconds: int, content_type: str | None, max_size: int | None
    ) -> dict[str, str]:
        """The query parameters that let `method` on `key` through until now + `ttl_seconds`
        (1 second to 7 days). Raises `InvalidArgumentError` for a TTL out of that range
        or a negative `max_size`."""
        check_ttl(ttl_seconds, key)
        if max_size is not None:
            check_max_size(max_size, key)
        expires = int(time.time()) + ttl_seconds
        params = {EXPIRES: str(expires), KEY_ID: self.active}
        if max_size is not None:
            params[MAX_SIZE] = str(max_size)
        params[SIGNATURE] = self._mac(
            self._keys[self.active],
            method=method,
            key=key,
            expires=expires,
            key_id=self.active,
            content_type=content_type,
            max_size=max_size,
        )
        return params

    def verify(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        content_type: str | None,
        now: float | None = None,
    ) -> SignedRequest:
        """Check a request's signature; raise `SignatureError` saying why it is refused
        (malformed, unknown key, tampered, expired, or valid for more than 7 days)."""
        signature, key_id, expires_text = params.get(SIGNATURE), params.get(KEY_ID), params.get(EXPIRES)
        if not signature or not key_id or not expires_text:
            raise SignatureError("the request is not signed", key)
        secret = self._keys.get(key_id)
        if secret is None:
            raise SignatureError("the URL was signed by an unknown or retired key", key)
        if not _DIGITS.fullmatch(expires_text) or len(expires_text) > 12:
            raise SignatureError("the URL's expiry is malformed", key)
        max_text = params.get(MAX_SIZE)
        if max_text is not None and (not _DIGITS.fullmatch(max_text) or len(max_text) > 19):
            raise SignatureError("the URL's max size is malformed", key)
        expires, max_size = int(expires_text), int(max_text) if max_text is not None else None
        signed_type = content_type if method == "PUT" else None
        expected = self._mac(
            secret,
            method=method,
            key=key,
            expires=expires,
            key_id=key_id,
            content_type=signed_type,
            max_size=max_size,
        )
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
            raise SignatureError(
                "the signature does not match (tampered URL, other method, key or content type)", key
            )
        now = time.time() if now is None else now
        if now > expires:
            raise SignatureError("the URL has expired", key)
        if expires - now > MAX_TTL_SECONDS:
            raise SignatureError("the URL's expiry is more than 7 days away", key)
        return SignedRequest(expires, max_size)

    @staticmethod
    def _mac(
        secret: bytes,
        *,
        method: str,
        key: str,
        expires: int,
        key_id: str,
        content_type: str | None,
        max_size: int | None,
    ) -> str:
        # Keys and content types hold no control characters, so newlines separate fields
        # unambiguously.
        text = "\n".join(
            [
                _ALGORITHM,
                method,
                key,
                str(expires),
                key_id,
                content_type or "",
                "" if max_size is None else str(max_size),
            ]
        )
        return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
