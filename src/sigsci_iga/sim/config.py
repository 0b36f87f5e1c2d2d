"""Simulator settings and the documented, fake demo credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    #: Status for an unknown user or site member (the reference allows 400 or 404).
    not_found_status: int = 400
    site_page_default_limit: int = 10
    site_page_max_limit: int = 1000
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
