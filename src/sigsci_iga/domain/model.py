"""Pure snapshot and state types: what an import read, and what the repository currently holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sigsci_iga.domain.text import did_you_mean
from sigsci_iga.errors import InvalidInputError

#: JSON-compatible value as stored in extra attributes, history and serialised diffs.
JsonValue = Any


class AccountStatus(StrEnum):
    """Account status in the repository; `suspended` means "gone from the target at import"."""

    ACTIVE = "active"
    PENDING = "pending"
    SUSPENDED = "suspended"


class EntitlementStatus(StrEnum):
    """Entitlement values are never deleted, only inactivated when the target drops them."""

    ACTIVE = "active"
    INACTIVE = "inactive"


class EntitlementType(StrEnum):
    """The entitlement types a Signal Sciences endpoint governs."""

    SITE = "Site"
    CORP_ROLE = "CorpRole"


class CorpRole(StrEnum):
    """The values of a `CorpRole` entitlement; roles are corp-wide since 2019."""

    OWNER = "owner"
    ADMIN = "admin"
    USER = "user"
    OBSERVER = "observer"


#: The names roles had before 2019, which the API and old exports may still use.
_LEGACY_ROLES = {f"corp{role.value}": role for role in CorpRole}
#: Built once: iterating the enum on every call cost 1.5 s of a 50,000-user import.
_ROLE_NAMES = frozenset(r.value for r in CorpRole)


def normalize_role(value: str) -> str:
    """Read legacy `corpOwner`-style names as the modern ones; keep unknown values as they are."""
    lowered = value.strip().lower()
    if lowered in _LEGACY_ROLES:
        return _LEGACY_ROLES[lowered].value
    if lowered in _ROLE_NAMES:
        return lowered
    # Go defines "none" and "unknown" too; keep whatever the server said rather than guessing.
    return value


def corp_role(value: str) -> CorpRole:
    """A role someone asks for (legacy names read as modern ones); anything else is refused."""
    normalized = normalize_role(value)
    if normalized not in {r.value for r in CorpRole}:
        known = [r.value for r in CorpRole]
        raise InvalidInputError(
            f"role {value!r} is not one of {', '.join(known)}{did_you_mean(value, known)}"
        )
    return CorpRole(normalized)


#: Fields of an account that the diff compares and the history records.
ACCOUNT_FIELDS: tuple[str, ...] = ("name", "role", "status", "mfa_enabled", "created", "extra")

#: `extra` key holding the email as the target spells it, when that is not the lower-cased key.
#: Targets may match emails in paths exactly, so calls name the account this way.
SERVER_EMAIL = "server_email"


def address_of(email: str, extra: Mapping[str, JsonValue]) -> str:
    """The email as the target spells it (the key itself unless `extra` records another case)."""
    spelled = extra.get(SERVER_EMAIL)
    return spelled if isinstance(spelled, str) and spelled.lower() == email else email


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, so equal instants serialise equally whatever offset the source used."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def parse_iso(value: str | None) -> datetime | None:
    """Inverse of `iso`; naive input is read as UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """One account as the target reported it; `status` is `active` or `pending`."""

    email: str
    name: str = ""
    role: str = "user"
    status: str = AccountStatus.ACTIVE.value
    mfa_enabled: bool = False
    created: datetime | None = None
    sites: frozenset[str] = frozenset()
    extra: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.status not in (AccountStatus.ACTIVE, AccountStatus.PENDING):
            raise ValueError(f"account {self.email}: status must be active or pending")

    @property
    def address(self) -> str:
        """The email as the target spells it: what calls about this account must name."""
        return address_of(self.email, self.extra)

    def field_values(self) -> dict[str, JsonValue]:
        """The compared fields as JSON-compatible values (dates as UTC ISO strings)."""
        return {
            "name": self.name,
            "role": self.role,
            "status": str(self.status),
            "mfa_enabled": self.mfa_enabled,
            "created": iso(self.created),
            "extra": dict(self.extra),
        }

    def to_json(self) -> dict[str, JsonValue]:
        return {"email": self.email, **self.field_values(), "sites": sorted(self.sites)}

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> AccountSnapshot:
        return cls(
            email=data["email"],
            name=data.get("name", ""),
            role=data.get("role", "user"),
            status=data.get("status", AccountStatus.ACTIVE.value),
            mfa_enabled=bool(data.get("mfa_enabled", False)),
            created=parse_iso(data.get("created")),
            sites=frozenset(data.get("sites", ())),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    """One site as the target reported it."""

    name: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class CorpSnapshot:
    """Everything a full import read from one corp."""

    accounts: tuple[AccountSnapshot, ...]
    sites: tuple[SiteSnapshot, ...]

    def __post_init__(self) -> None:
        emails = [a.email for a in self.accounts]
        if len(set(emails)) != len(emails):
            raise ValueError("corp snapshot lists an account email twice")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("corp snapshot lists a site name twice")


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account as the repository holds it; `sites`/`roles` are its current links."""

    email: str
    name: str
    role: str
    status: str
    mfa_enabled: bool
    created: datetime | None
    extra: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)
    sites: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @property
    def address(self) -> str:
        """The email as the target spelled it at the last read."""
        return address_of(self.email, self.extra)

    def field_values(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "role": self.role,
            "status": str(self.status),
            "mfa_enabled": self.mfa_enabled,
            "created": iso(self.created),
            "extra": dict(self.extra),
        }


@dataclass(frozen=True, slots=True)
class EntitlementState:
    """One entitlement value as the repository holds it."""

    type: str
    value: str
    display_name: str
    status: str


@dataclass(frozen=True, slots=True)
class CurrentCounts:
    """Sizes the thresholds compare removals against."""

    accounts: int
    links: int
    sites: int


@dataclass(frozen=True, slots=True)
class RepositoryView:
    """The current state of one endpoint, read for a diff; `version` bumps on every apply."""

    accounts: Mapping[str, AccountState]
    sites: Mapping[str, EntitlementState]
    roles: Mapping[str, EntitlementState]
    version: int = 0

    @classmethod
    def empty(cls) -> RepositoryView:
        return cls(accounts={}, sites={}, roles={}, version=0)

    def counts(self) -> CurrentCounts:
        """Non-suspended accounts, all links, active sites."""
        accounts = 0
        links = 0
        for account in self.accounts.values():
            if account.status != AccountStatus.SUSPENDED:
                accounts += 1
            links += len(account.sites) + len(account.roles)
        sites = sum(1 for s in self.sites.values() if s.status == EntitlementStatus.ACTIVE)
        return CurrentCounts(accounts=accounts, links=links, sites=sites)
