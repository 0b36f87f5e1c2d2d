"""Typed Signal Sciences API v0 payloads.

Every model ignores unknown fields (the API adds keys over time) and accepts every alternative the
reference marks uncertain: legacy `corp*` role names (read by the domain's `normalize_role`),
pending-user status strings, lenient RFC 3339.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sigsci_iga.domain.model import normalize_role


class UserStatus(StrEnum):
    """Normalised account status: the API only ever showed `active`; invitees say something else."""

    ACTIVE = "active"
    PENDING = "pending"


def normalize_status(value: str | None) -> UserStatus:
    """`active` is active; any other string (`invited`, `pending`, ...) is a not-yet-active invitee."""
    if value is not None and value.strip().lower() == "active":
        return UserStatus.ACTIVE
    return UserStatus.PENDING


class ApiModel(BaseModel):
    """Base for payloads: unknown fields are ignored, models are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Link(ApiModel):
    uri: str = ""


class Corp(ApiModel):
    name: str
    display_name: str = Field(default="", alias="displayName")
    created: datetime | None = None
    site_limit: int | None = Field(default=None, alias="siteLimit")
    auth_type: str | None = Field(default=None, alias="authType")
    session_max_age_dashboard: int | None = Field(default=None, alias="sessionMaxAgeDashboard")
    api_allowed_ips: list[str] = Field(default_factory=list, alias="apiAllowedIPs")
    api_token_max_age: int | None = Field(default=None, alias="apiTokenMaxAge")
    restricted_access_tokens: bool | None = Field(default=None, alias="restrictedAccessTokens")
    sso_provisioning_configured: bool | None = Field(
        default=None, alias="ssoProvisioningConfigured"
    )
    mfa_enforced: bool | None = Field(default=None, alias="mfaEnforced")


class SiteRef(ApiModel):
    name: str
    display_name: str = Field(default="", alias="displayName")


class Membership(ApiModel):
    """One site a user belongs to; `role` mirrors the corp role since 2019."""

    site: SiteRef
    role: str | None = None

    @field_validator("role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        return normalize_role(value) if value else value


class Memberships(ApiModel):
    data: list[Membership] = Field(default_factory=list)
    uri: str = ""


class User(ApiModel):
    #: Lower-cased: the identity key. `raw_email` is the server's own spelling.
    email: str
    raw_email: str = Field(default="", alias="rawEmail")
    name: str = ""
    role: str
    status: UserStatus = UserStatus.PENDING
    raw_status: str = Field(default="", alias="rawStatus")
    mfa_enabled: bool = Field(default=False, alias="mfaEnabled")
    auth_status: str | None = Field(default=None, alias="authStatus")
    corp_auth_type: str | None = Field(default=None, alias="corpAuthType")
    created: datetime | None = None
    api_user: bool = Field(default=False, alias="apiUser")
    access_token_allowed: bool | None = Field(default=None, alias="accessTokenAllowed")
    sso_provisioned: bool = Field(default=False, alias="ssoProvisioned")
    memberships: Memberships = Field(default_factory=Memberships)

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rawStatus" not in data and "raw_status" not in data:
            data = {**data, "rawStatus": str(data.get("status") or "")}
        if isinstance(data, dict) and "rawEmail" not in data and "raw_email" not in data:
            email = data.get("email")
            data = {**data, "rawEmail": email.strip() if isinstance(email, str) else ""}
        return data

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("name", mode="before")
    @classmethod
    def _name_may_be_null(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return normalize_role(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> UserStatus:
        return normalize_status(value if isinstance(value, str) else None)

    @property
    def site_names(self) -> list[str]:
        return sorted(m.site.name for m in self.memberships.data)


class Site(ApiModel):
    name: str
    display_name: str = Field(default="", alias="displayName")
    agent_level: str | None = Field(default=None, alias="agentLevel")
    created: datetime | None = None
    members: Link = Field(default_factory=Link)


class MemberUser(ApiModel):
    email: str
    name: str = ""
    status: UserStatus = UserStatus.PENDING
    api_user: bool = Field(default=False, alias="apiUser")

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("name", mode="before")
    @classmethod
    def _name_may_be_null(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> UserStatus:
        return normalize_status(value if isinstance(value, str) else None)


class SiteMember(ApiModel):
    """A user's access to one site, as listed by GET .../sites/{site}/members."""

    user: MemberUser
    role: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        # The single-add and invite responses are flat {"email","role","status"}.
        if isinstance(data, dict) and "user" not in data and "email" in data:
            return {
                "user": {"email": data["email"], "status": data.get("status")},
                "role": data.get("role"),
            }
        return data

    @field_validator("role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        return normalize_role(value) if value else value


class ActivityEvent(ApiModel):
    id: str
    event_type: str = Field(alias="eventType")
    msg_data: dict[str, Any] = Field(default_factory=dict, alias="msgData")
    message: str = ""
    created: datetime

    @field_validator("msg_data", mode="before")
    @classmethod
    def _msg_data_may_be_null(cls, value: Any) -> Any:
        return {} if value is None else value


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list endpoint, as the engine sees it."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_uri: str | None = None
    #: The server sent a `next` link at all (an empty one says "last page").
    next_given: bool = False
    total_count: int | None = None
