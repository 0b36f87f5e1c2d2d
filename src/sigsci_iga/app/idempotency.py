"""Idempotency keys for interfaces whose callers retry: a replay gets the first answer."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from sigsci_iga.app.context import AppContext
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store.idempotency import Replay

#: How long a key's answer is kept for replays.
KEY_LIFETIME = timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def claim_key(ctx: AppContext, scope: str, key: str, body: bytes) -> Replay | None:
    """Claim `key` for a request with `body`; a `Replay` means: answer with that instead.

    Raises `InvalidInputError` (the key is malformed, or was used with another body) and
    `RequestInProgressError` (the first request with the key is still being answered).
    """
    if not _KEY.fullmatch(key):
        raise InvalidInputError("Idempotency-Key must be 1 to 255 printable ASCII characters")
    now = ctx.clock()
    ctx.repository.idempotency.expire(now - KEY_LIFETIME)
    digest = hashlib.sha256(body).hexdigest()
    return ctx.repository.idempotency.claim(scope, key, digest, now)


def complete_key(ctx: AppContext, scope: str, key: str, status: int, response: Any) -> None:
    """Keep the answer the request with `key` got."""
    ctx.repository.idempotency.complete(scope, key, status, response)


def forget_key(ctx: AppContext, scope: str, key: str) -> None:
    """The request with `key` failed without an answer worth replaying: free the key."""
    ctx.repository.idempotency.forget(scope, key)
