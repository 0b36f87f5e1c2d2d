"""Simulator settings and the documented, fake demo credentials."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from sigsci_iga.sim.faults import FaultRule

#: Demo corp and owner. These are public fakes that only the simulator accepts.
DEMO_CORP = "testcorp"
DEMO_EMAIL = "owner@testcorp.example"
DEMO_NAME = "Demo Owner"
DEMO_TOKEN = "sim-demo-token"  # noqa: S105  # a documented fake credential for the simulator
DEMO_PASSWORD = "sim-demo-password"  # noqa: S105  # a documented fake credential for the simulator

#: A read-only demo user: an observer with access to the first two sites.
OBSERVER_EMAIL = "observer@testcorp.example"
OBSERVER_NAME = "Demo Observer"
OBSERVER_TOKEN = "sim-observer-token"  # noqa: S105  # a documented fake credential
OBSERVER_PASSWORD = "sim-observer-password"  # noqa: S105  # a documented fake credential

API_PREFIX = "/api/v0"


def demo_headers(email: str = DEMO_EMAIL, token: str = DEMO_TOKEN) -> dict[str, str]:
    """Access-token headers for the demo owner (or any email/token pair)."""
    return {"x-api-user": email, "x-api-token": token}


def observer_headers() -> dict[str, str]:
    """Access-token headers for the observer demo user."""
    return demo_headers(OBSERVER_EMAIL, OBSERVER_TOKEN)


@dataclass
class SimConfig:
    """Everything that shapes one simulated corp; the same config and seed give the same data."""

    corp: str = DEMO_CORP
    corp_display_name: str = "Test Corp"
    seed: int = 1
    #: Total users, including the demo owner and the demo observer.
    users: int = 200
    sites: int = 20
    #: Average explicit site memberships per non-owner user.
    memberships_per_user: float = 3.0
    #: Owners, including the demo owner; owners are implicit members of every site.
    owners: int = 3
    admin_share: float = 0.1
    observer_share: float = 0.25
    pending_share: float = 0.05
    mfa_share: float = 0.4
    api_user_share: float = 0.02
    #: The real string for invited-not-registered users was never observed.
    pending_status: str = "pending"
    #: Status for an unknown user or site member: 400 `ID not found` (the one answer recorded,
    #: in 2019) or 404; the body says `ID not found` either way.
    not_found_status: int = 400
    #: The sites list answers `{"data": [...]}` (the reference's checklist); these add the
    #: `totalCount` and `next` keys of the reference's paginated lists.
    sites_total_count: bool = False
    sites_next_links: bool = False
    site_page_default_limit: int = 10
    #: A silent cap: at most this many sites per page whatever `limit` asks, without saying so.
    site_page_max_limit: int = 1000
    #: Invites ignore `apiUser` (a tool notes it must be set by a later update); True honours it.
    invite_api_user: bool = False
    #: PATCH/PUT on a user ignore `name` (only role, memberships and apiUser are documented).
    update_renames: bool = False
    #: Which activity feeds carry userAddedToSite/userRemovedFromSite: "corp", "site" or "both".
    membership_events: str = "both"
    #: "sensitive": a path's email must match the stored spelling exactly; "insensitive".
    #: Emails are stored as given either way.
    email_matching: str = "sensitive"
    activity_page_default_limit: int = 100
    activity_page_max_limit: int = 1000
    activity_retention_days: int = 30
    #: Lifetime of API access tokens in seconds from their creation; 0 means they never expire.
    token_expiry_seconds: int = 0
    #: Lifetime of /auth session tokens (the corp's sessionMaxAgeDashboard).
    session_max_age_seconds: int = 2_592_000
    #: Server-side limit over a sliding minute; 0 turns it off.
    rate_limit_per_minute: int = 0
    #: 429, or 400 with {"message": "Rate limit exceeded"}.
    rate_limit_status: int = 429
    #: Added to every /api/v0 response.
    latency_ms: int = 0
    #: How long a `timeout` fault stalls over real HTTP before answering.
    timeout_fault_seconds: float = 30.0
    faults: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Reject settings the generator cannot honour."""
        if not re.fullmatch(r"[0-9a-z_.-]+", self.corp):
            raise ValueError("corp must match ^[0-9a-z_.-]+$")
        if self.users < 2:
            raise ValueError("users must be at least 2 (the demo owner and the demo observer)")
        if self.sites < 1:
            raise ValueError("sites must be at least 1")
        if self.owners < 1:
            raise ValueError("owners must be at least 1 (the demo owner)")
        if self.owners > self.users - 1:
            raise ValueError("owners must leave room for the demo observer")
        if self.not_found_status not in (400, 404):
            raise ValueError("not_found_status must be 400 or 404")
        if self.rate_limit_status not in (400, 429):
            raise ValueError("rate_limit_status must be 400 or 429")
        if self.site_page_default_limit < 1 or self.site_page_max_limit < 1:
            raise ValueError("site page limits must be positive")
        if self.membership_events not in MEMBERSHIP_FEEDS:
            raise ValueError(f"membership_events must be one of {', '.join(MEMBERSHIP_FEEDS)}")
        if self.email_matching not in EMAIL_MATCHING:
            raise ValueError(f"email_matching must be one of {', '.join(EMAIL_MATCHING)}")
        if self.rate_limit_per_minute < 0 or self.latency_ms < 0:
            raise ValueError("rate_limit_per_minute and latency_ms must not be negative")


MEMBERSHIP_FEEDS = ("corp", "site", "both")
EMAIL_MATCHING = ("sensitive", "insensitive")

#: Settings the admin API may change while the simulator runs, and the JSON type each takes.
SWITCHES: dict[str, type] = {
    "pending_status": str,
    "not_found_status": int,
    "sites_total_count": bool,
    "sites_next_links": bool,
    "site_page_default_limit": int,
    "site_page_max_limit": int,
    "invite_api_user": bool,
    "update_renames": bool,
    "membership_events": str,
    "email_matching": str,
    "rate_limit_per_minute": int,
    "rate_limit_status": int,
    "latency_ms": int,
}


def switch_values(config: SimConfig) -> dict[str, Any]:
    """The run-time switchable settings and their current values."""
    return {name: getattr(config, name) for name in SWITCHES}


def apply_switches(config: SimConfig, changes: dict[str, Any]) -> None:
    """Change switches in place, all or none; raises ValueError naming a bad key or value."""
    for name, value in changes.items():
        kind = SWITCHES.get(name)
        if kind is None:
            raise ValueError(f"unknown setting {name!r}; known: {', '.join(SWITCHES)}")
        # bool is an int in Python; a JSON true must not pass for a status code, nor 1 for true.
        if type(value) is not kind:
            raise ValueError(f"{name} must be a {kind.__name__}")
    dataclasses.replace(config, **changes)  # runs __post_init__: refuses impossible values
    for name, value in changes.items():
        setattr(config, name, value)
