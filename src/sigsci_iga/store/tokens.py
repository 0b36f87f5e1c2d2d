"""Service tokens: their keyed hashes, roles, lifetimes and revocation; one transaction per call.

Nothing here sees a token or the server key: the application layer hashes, and hands over
the identifier part and the hash.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from sigsci_iga.domain.access import Role
from sigsci_iga.errors import InvalidInputError, RecordNotFoundError
from sigsci_iga.store.db import Database
from sigsci_iga.store.records import TokenCredential, TokenRecord
from sigsci_iga.store.tables import TOKEN_ROLES, api_tokens

_LISTED = (
    api_tokens.c.name,
    api_tokens.c.role,
    api_tokens.c.created_at,
    api_tokens.c.created_by,
    api_tokens.c.expires_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
    api_tokens.c.revoked_by,
)


def _record(row: Row[*tuple[Any, ...]]) -> TokenRecord:
    return TokenRecord(
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


class Tokens:
    """Adding, listing, revoking and verifying service tokens."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        *,
        role: str,
        public_id: str,
        token_hash: str,
        created_at: datetime,
        expires_at: datetime | None,
        created_by: str | None = None,
    ) -> TokenRecord:
        """Store a new token's hash; a name already taken (even by a revoked token) is refused."""
        if role not in TOKEN_ROLES:
            raise InvalidInputError(f"role {role!r} is not one of {', '.join(TOKEN_ROLES)}")
        try:
            with self._db.write() as conn:
                taken = conn.execute(
                    sa.select(api_tokens.c.id).where(api_tokens.c.name == name)
                ).first()
                if taken is not None:
                    raise InvalidInputError(_name_taken(name))
                conn.execute(
                    api_tokens.insert(),
                    {
                        "name": name,
                        "public_id": public_id,
                        "token_hash": token_hash,
                        "role": role,
                        "created_at": created_at,
                        "created_by": created_by,
                        "expires_at": expires_at,
                    },
                )
        except IntegrityError as exc:
            # Two processes creating the same name at once: the unique index decides.
            raise InvalidInputError(_name_taken(name)) from exc
        return self.get(name)

    def get(self, name: str) -> TokenRecord:
        with self._db.read() as conn:
            row = conn.execute(sa.select(*_LISTED).where(api_tokens.c.name == name)).first()
        if row is None:
            raise RecordNotFoundError(f"token {name!r} does not exist")
        return _record(row)

    def list(self) -> builtins.list[TokenRecord]:
        """Every token, revoked and expired ones included, by name."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(*_LISTED).order_by(api_tokens.c.name)).all()
        return [_record(row) for row in rows]

    def revoke(self, name: str, *, at: datetime, by: str | None = None) -> TokenRecord:
        """Mark a token revoked, keeping its row; revoking it again changes nothing."""
        with self._db.write() as conn:
            result = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_by=by)
            )
            if result.rowcount == 0:
                exists = conn.execute(
                    sa.select(api_tokens.c.id).where(api_tokens.c.name == name)
                ).first()
                if exists is None:
                    raise RecordNotFoundError(f"token {name!r} does not exist")
        return self.get(name)

    def credential(self, public_id: str) -> TokenCredential | None:
        """The token whose identifier part is `public_id`, with its stored hash, if any."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(api_tokens.c.id, api_tokens.c.token_hash, *_LISTED).where(
                    api_tokens.c.public_id == public_id
                )
            ).first()
        if row is None:
            return None
        return TokenCredential(id=row.id, record=_record(row), token_hash=row.token_hash)

    def mark_used(self, token_id: int, *, at: datetime, unless_since: datetime) -> bool:
        """Record a use, unless one was recorded at or after `unless_since`; True if written.

        Verification reads; only this conditional write (at most once per interval per token)
        turns it into a write, so a busy client does not make every request take the lock.
        """
        with self._db.write() as conn:
            result = conn.execute(
                api_tokens.update()
                .where(
                    api_tokens.c.id == token_id,
                    sa.or_(
                        api_tokens.c.last_used_at.is_(None),
                        api_tokens.c.last_used_at < unless_since,
                    ),
                )
                .values(last_used_at=at)
            )
        return bool(result.rowcount)

    def rehash(self, token_id: int, *, token_hash: str, at: datetime) -> None:
        """Replace a token's hash (made with a retiring key) by one made with the current key."""
        with self._db.write() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id)
                .values(token_hash=token_hash, last_used_at=at)
            )


def _name_taken(name: str) -> str:
    return (
        f"token name {name!r} is already taken (names are never reused, even after a token "
        "is revoked); choose another"
    )
