"""The simulator's stored records and the timestamp format the API uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROLES = ("owner", "admin", "user", "observer")
_LEGACY_ROLES = {"corp" + r: r for r in ROLES}


def normalize_role(value: object) -> str | None:
    """The modern role for a role string (legacy `corpUser` too), or None if it is not one."""
    if not isinstance(value, str):
        return None
    lowered = value.strip().lower()
    if lowered in ROLES:
        return lowered
    return _LEGACY_ROLES.get(lowered)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, dropping trailing zeros of the milliseconds as the API does."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += f".{millis:03d}".rstrip("0")
    return text + "Z"


@dataclass(slots=True)
class UserRecord:
    """A corp user; owners keep no explicit site rows (they are members of every site)."""

    email: str
    name: str
    role: str
    status: str
    created: str
    mfa_enabled: bool = False
    api_user: bool = False
    access_token_allowed: bool = True
    sso_provisioned: bool = False
    auth_status: str = "none"
    corp_auth_type: str = "builtin"
    sites: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """The raw record, for the admin API and tests."""
        return {
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "created": self.created,
            "mfaEnabled": self.mfa_enabled,
            "apiUser": self.api_user,
            "accessTokenAllowed": self.access_token_allowed,
            "ssoProvisioned": self.sso_provisioned,
            "authStatus": self.auth_status,
            "corpAuthType": self.corp_auth_type,
            "sites": sorted(self.sites),
        }


@dataclass(slots=True)
class SiteRecord:
    """A site and its explicit (non-owner) members."""

    name: str
    display_name: str
    created: str
    agent_level: str = "log"
    members: set[str] = field(default_factory=set)


@dataclass(slots=True, frozen=True)
class Event:
    """One activity (audit) event; `site` names the site whose feed may also carry it."""

    id: str
    seq: int
    event_type: str
    msg_data: dict[str, str]
    message: str
    created: datetime
    site: str | None = None
    #: False for a membership event the `membership_events` switch keeps off the corp feed.
    on_corp_feed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The event as the activity endpoints return it."""
        return {
            "id": self.id,
            "eventType": self.event_type,
            "msgData": dict(self.msg_data),
            "message": self.message,
            "attachments": [],
            "created": rfc3339(self.created),
        }
