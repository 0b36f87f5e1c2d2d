"""Who may do what through the service: roles, permissions, the one table, and `authorize`.

Every interface that has callers other than the operator (the HTTP API) authenticates a
`Principal` (see `app/tokens.py`), then asks `authorize` for the one permission a route needs.
The decision is the table below and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from sigsci_iga.domain.access import Role
from sigsci_iga.errors import PermissionDeniedError

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "authorize",
    "permissions_of",
]


class Permission(StrEnum):
    """One thing a route does; each route needs exactly one of these."""

    #: Read the repository: endpoints (credential references, never secrets), accounts,
    #: entitlements, identities, runs, tasks, the journal and its verification.
    READ = "read"
    #: Read the service's metrics.
    READ_METRICS = "read_metrics"
    #: Ask for an access change (a joiner, mover or leaver request, or a restore).
    REQUEST = "request"
    #: Approve or refuse someone's access request.
    APPROVE_REQUEST = "approve_request"
    #: Start an import, or load identities from the identity source.
    RUN_IMPORT = "run_import"
    #: Approve or refuse an import run held by its thresholds.
    APPROVE_RUN = "approve_run"
    #: Run the queue, retry and discontinue tasks.
    MANAGE_TASKS = "manage_tasks"
    #: Create, change and delete schedules.
    MANAGE_SCHEDULES = "manage_schedules"
    #: Create, list and revoke service tokens.
    MANAGE_TOKENS = "manage_tokens"
    #: Register, check, change and remove endpoints.
    MANAGE_ENDPOINTS = "manage_endpoints"


_VIEWER = frozenset({Permission.READ, Permission.READ_METRICS})
_REQUESTER = _VIEWER | {Permission.REQUEST}
_APPROVER = _REQUESTER | {Permission.APPROVE_REQUEST}

#: The one table: what each role may do. Each role holds the one before it and more.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.VIEWER: _VIEWER,
        Role.REQUESTER: _REQUESTER,
        Role.APPROVER: _APPROVER,
        Role.ADMIN: frozenset(Permission),
    }
)


def permissions_of(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a token's name and role, never the token itself."""

    #: The token's name: safe to log.
    name: str
    role: Role
    expires_at: datetime | None = None

    @property
    def requester(self) -> str:
        """What the journal records as the requester of a task this caller asked for."""
        return f"token:{self.name}"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def authorize(principal: Principal, permission: Permission) -> None:
    """Return if the principal's role grants `permission`; PermissionDeniedError otherwise."""
    if not principal.can(permission):
        raise PermissionDeniedError(
            f"token {principal.name!r} has role {principal.role.value}, which may not "
            f"{permission.value}"
        )
