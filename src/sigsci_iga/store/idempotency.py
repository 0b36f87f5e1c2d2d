"""Idempotency keys: the first answer to a POST, kept so a replay gets it again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sigsci_iga.errors import InvalidInputError, RequestInProgressError
from sigsci_iga.store.db import Database
from sigsci_iga.store.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer the first request with this key got."""

    status: int
    response: Any


class Idempotency:
    """Claiming a key before a POST runs, and keeping its answer after."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, scope: str, key: str, body_hash: str, now: datetime) -> Replay | None:
        """None: the key is new and now ours to answer. A `Replay`: answer that instead.

        The same key with another body is refused (422); one still being answered is busy
        (409).
        """
        try:
            with self._db.write() as conn:
                conn.execute(
                    idempotency_keys.insert().values(
                        scope=scope, key=key, body_hash=body_hash, state="running", created_at=now
                    )
                )
        except IntegrityError:
            return self._answered(scope, key, body_hash)
        return None

    def _answered(self, scope: str, key: str, body_hash: str) -> Replay:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
                )
            ).first()
        if row is None:
            # Forgotten in between (the first request failed): the caller may simply retry.
            raise RequestInProgressError("a request with this Idempotency-Key just ended; retry")
        if row.body_hash != body_hash:
            raise InvalidInputError(
                "this Idempotency-Key was used with another request body; use a new key"
            )
        if row.state != "done":
            raise RequestInProgressError(
                "a request with this Idempotency-Key is still being answered; retry shortly"
            )
        return Replay(int(row.status), row.response)

    def complete(self, scope: str, key: str, status: int, response: Any) -> None:
        with self._db.write() as conn:
            conn.execute(
                idempotency_keys.update()
                .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
                .values(state="done", status=status, response=response)
            )

    def forget(self, scope: str, key: str) -> None:
        """The request failed before it had an answer: the key may be used again."""
        with self._db.write() as conn:
            conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
                )
            )

    def expire(self, before: datetime) -> int:
        with self._db.write() as conn:
            result = conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < before)
            )
            return int(result.rowcount or 0)
