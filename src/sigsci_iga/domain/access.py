"""The service's role vocabulary: what a service token may be given."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A service token's role; each includes everything the one before it may do."""

    VIEWER = "viewer"
    REQUESTER = "requester"
    APPROVER = "approver"
    ADMIN = "admin"
