"""Service tokens: creating, listing and revoking them, and authenticating a bearer token.

A token reads `sigsci_iga_<id>_<secret><check>`:

- `sigsci_iga_`: a fixed prefix, so secret scanners (and people) recognise a leaked token;
- `<id>`: 12 random base62 characters, the identifier the repository finds the token by;
- `<secret>`: 43 base62 characters encoding 32 bytes (256 bits) from `secrets`;
- `<check>`: 6 base62 characters, the CRC-32 of everything before it, so a scanner can tell a
  real token from a look-alike, and a mistyped one is refused without a database read.

The repository keeps only HMAC-SHA256(server key, token). The key comes from the settings
(`SIGSCI_IGA_TOKEN_KEY_FILE` or `SIGSCI_IGA_TOKEN_KEY`) and is never stored, printed or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sigsci_iga.app.access import Principal
from sigsci_iga.app.context import AppContext
from sigsci_iga.app.credentials import resolve_secret
from sigsci_iga.domain.access import Role
from sigsci_iga.domain.secrets import SecretRef
from sigsci_iga.errors import AuthenticationError, ConfigError, InvalidInputError
from sigsci_iga.settings import Settings
from sigsci_iga.store import TokenRecord

TOKEN_PREFIX = "sigsci_iga_"  # noqa: S105  (the public prefix, not a secret)
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ID_LENGTH = 12
SECRET_BYTES = 32
#: 62**43 > 2**256: enough characters for every 32-byte value.
SECRET_LENGTH = 43
CHECK_LENGTH = 6
TOKEN_PATTERN = re.compile(
    rf"{TOKEN_PREFIX}(?P<id>[0-9A-Za-z]{{{ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<check>[0-9A-Za-z]{{{CHECK_LENGTH}}})",
    re.ASCII,
)
TOKEN_LENGTH = len(TOKEN_PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECK_LENGTH
#: Longer Authorization values are refused before they are parsed or hashed.
MAX_AUTHORIZATION_LENGTH = 256
#: A key shorter than this is refused: the hash is only as strong as the key.
MIN_KEY_LENGTH = 32
DEFAULT_LIFETIME = timedelta(days=90)
#: Verification writes `last used` at most this often per token.
LAST_USED_INTERVAL = timedelta(minutes=1)

_NAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,99}", re.ASCII)
_LIFETIME = re.compile(r"([1-9][0-9]{0,5})([mhdw])", re.ASCII)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Compared against when no token has the identifier, so an unknown identifier costs the
#: same hashing and comparison as a wrong secret.
_NO_HASH = "0" * 64


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def _check(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECK_LENGTH)


def _new_token() -> tuple[str, str]:
    """A fresh token and its identifier part."""
    public_id = "".join(secrets.choice(BASE62) for _ in range(ID_LENGTH))
    secret = _base62(int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big"), SECRET_LENGTH)
    body = f"{TOKEN_PREFIX}{public_id}_{secret}"
    return body + _check(body), public_id


def looks_like_token(text: str) -> bool:
    """The text has a token's shape and a correct check: worth treating as a leaked token."""
    match = TOKEN_PATTERN.fullmatch(text)
    return match is not None and match["check"] == _check(text[:-CHECK_LENGTH])


# -- the server key ------------------------------------------------------------------------------


class TokenKeys:
    """The current server key, and the one being rotated out if any. Never shown."""

    __slots__ = ("current", "previous")

    def __init__(self, current: bytes, previous: bytes | None) -> None:
        self.current = current
        self.previous = previous

    def __repr__(self) -> str:
        return "TokenKeys(***)"

    def digest(self, token: str, *, previous: bool = False) -> str:
        key = self.previous if previous else self.current
        assert key is not None
        return hmac.new(key, token.encode("ascii"), hashlib.sha256).hexdigest()


def _key(value: SecretStr | None, path: Path | None, env: str) -> bytes | None:
    given = value is not None and bool(value.get_secret_value().strip())
    if given and path is not None:
        raise ConfigError(f"set {env} or {env}_FILE, not both")
    if path is not None:
        secret = resolve_secret(SecretRef("file", str(path)), {}, f"the token key ({env}_FILE)")
        where = f"{env}_FILE"
    elif value is not None and given:
        secret, where = value, env
    else:
        return None
    text = secret.get_secret_value().strip()
    if len(text) < MIN_KEY_LENGTH:
        # Never say how long it is, let alone what it is.
        raise ConfigError(
            f"the token key in {where} is too short: use at least {MIN_KEY_LENGTH} random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return text.encode("utf-8")


def token_keys(settings: Settings) -> TokenKeys:
    """The server key the settings name; ConfigError says what to set when there is none.

    Call it when the service starts, so a missing or short key stops it there rather than
    failing every request.
    """
    current = _key(settings.token_key, settings.token_key_file, "SIGSCI_IGA_TOKEN_KEY")
    previous = _key(
        settings.token_key_previous,
        settings.token_key_previous_file,
        "SIGSCI_IGA_TOKEN_KEY_PREVIOUS",
    )
    if current is None:
        raise ConfigError(
            "service tokens need a server key: set SIGSCI_IGA_TOKEN_KEY_FILE to a file holding "
            f"at least {MIN_KEY_LENGTH} random characters (or SIGSCI_IGA_TOKEN_KEY to them); "
            "see 'Service tokens and roles' in the README"
        )
    return TokenKeys(current, previous if previous != current else None)


# -- the use cases -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: the only time the token itself is available."""

    record: TokenRecord
    token: SecretStr

    def to_json(self, now: datetime) -> dict[str, Any]:
        """What the creator is shown, the token included: print it once and keep nothing."""
        return {"token": self.token.get_secret_value(), **token_summary(self.record, now)}


def check_token_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            "a token name is 1 to 100 characters: lower-case letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )
    return name


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInputError(
            f"role {role!r} is not one of {', '.join(r.value for r in Role)}"
        ) from None


def parse_lifetime(text: str) -> timedelta | None:
    """`90d`, `12h`, `30m`, `2w`, or `never` (None): how long a new token stays valid."""
    value = text.strip().lower()
    if value == "never":
        return None
    match = _LIFETIME.fullmatch(value)
    if match is None:
        raise InvalidInputError(
            f"lifetime {text!r} is not a positive number with m, h, d or w (e.g. 90d), or never"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def create_token(
    ctx: AppContext,
    name: str,
    role: Role | str,
    *,
    expires_in: timedelta | None = DEFAULT_LIFETIME,
    created_by: str | None = None,
) -> IssuedToken:
    """Create a token; it is returned this once and only its keyed hash is kept.

    `expires_in` None: the token never expires. `created_by`: the principal's name when an
    admin creates it through the service.
    """
    check_token_name(name)
    checked_role = parse_role(role)
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInputError("a token's lifetime must be positive")
    keys = token_keys(ctx.settings)
    token, public_id = _new_token()
    now = ctx.clock()
    record = ctx.repository.tokens.add(
        name,
        role=checked_role.value,
        public_id=public_id,
        token_hash=keys.digest(token),
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
        created_by=created_by,
    )
    return IssuedToken(record, SecretStr(token))


def list_tokens(ctx: AppContext) -> list[TokenRecord]:
    """Every token by name, revoked and expired ones included; never a token or a hash."""
    return ctx.repository.tokens.list()


def revoke_token(ctx: AppContext, name: str, *, revoked_by: str | None = None) -> TokenRecord:
    """Revoke a token at once; its row stays for the audit. Revoking twice changes nothing."""
    return ctx.repository.tokens.revoke(name, at=ctx.clock(), by=revoked_by)


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise AuthenticationError("missing")
    # Checked before anything else looks at it: a huge or binary header costs nothing.
    if len(authorization) > MAX_AUTHORIZATION_LENGTH or not authorization.isascii():
        raise AuthenticationError("malformed")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("malformed")
    if not looks_like_token(token):
        raise AuthenticationError("malformed")
    return token


def authenticate(ctx: AppContext, authorization: str | None) -> Principal:
    """The caller an `Authorization` header value names (`Bearer <token>`).

    Whatever is wrong (no header, another scheme, a malformed, unknown, wrong, expired or
    revoked token) raises the same `AuthenticationError`; only its `reason` differs, for the
    server's log. A missing server key is a `ConfigError`. Records the use at most once per
    `LAST_USED_INTERVAL`, and re-hashes a token still hashed with the retiring key.
    """
    keys = token_keys(ctx.settings)
    token = _bearer_token(authorization)
    match = TOKEN_PATTERN.fullmatch(token)
    assert match is not None
    credential = ctx.repository.tokens.credential(match["id"])
    stored = credential.token_hash if credential is not None else _NO_HASH
    matches = hmac.compare_digest(keys.digest(token), stored)
    rehash = False
    if not matches and keys.previous is not None:
        rehash = matches = hmac.compare_digest(keys.digest(token, previous=True), stored)
    if credential is None:
        raise AuthenticationError("unknown")
    if not matches:
        raise AuthenticationError("mismatch")
    record = credential.record
    now = ctx.clock()
    if record.revoked_at is not None:
        raise AuthenticationError("revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthenticationError("expired")
    if rehash:
        ctx.repository.tokens.rehash(credential.id, token_hash=keys.digest(token), at=now)
    elif record.last_used_at is None or record.last_used_at < now - LAST_USED_INTERVAL:
        ctx.repository.tokens.mark_used(
            credential.id, at=now, unless_since=now - LAST_USED_INTERVAL
        )
    return Principal(name=record.name, role=record.role, expires_at=record.expires_at)


def token_summary(record: TokenRecord, now: datetime) -> dict[str, Any]:
    """A token as the interfaces show it: its record and its state at `now`."""
    return {**record.to_json(), "state": record.state(now)}
