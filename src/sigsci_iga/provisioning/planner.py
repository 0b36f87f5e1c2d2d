"""Pure planning: given a task and what the target holds now, what (if anything) must be sent.

Every task re-reads the target first; when the change is already in place the plan says so and
nothing is sent. The planner knows Signal Sciences' rules: owners are members of every site, roles
are corp-wide, and a PATCH of memberships would replace the whole set (so it is never planned).
Steps name an existing account as the target spells its email (`AccountSnapshot.address`): a
server may match emails exactly, and the task's lower-cased key would name nobody there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from sigsci_iga.connectors.base import (
    AddToSite,
    DeleteAccount,
    Invite,
    RemoveFromSite,
    SetRole,
    Step,
)
from sigsci_iga.domain.model import AccountSnapshot, EntitlementType
from sigsci_iga.domain.tasks import Operation

OWNER = "owner"


@dataclass(frozen=True)
class Plan:
    """What a task needs: `act` (send `steps`), `no_action` (already in place) or `refuse`."""

    outcome: Literal["act", "no_action", "refuse"]
    steps: tuple[Step, ...] = ()
    reason: str = ""
    #: The account as it will be once the steps succeed; None when the account is removed.
    expected: AccountSnapshot | None = None
    #: For remove_account: the access written to the journal before the delete (for restore).
    snapshot: Mapping[str, Any] | None = None


def _no_action(reason: str, current: AccountSnapshot | None) -> Plan:
    return Plan("no_action", reason=reason, expected=current)


def _refuse(reason: str, current: AccountSnapshot | None) -> Plan:
    return Plan("refuse", reason=reason, expected=current)


def plan_task(
    operation: Operation | str,
    email: str,
    params: Mapping[str, Any],
    current: AccountSnapshot | None,
) -> Plan:
    """Plan one task against the account's current state (None: the target has no such user)."""
    if operation == Operation.CREATE_ACCOUNT:
        return _plan_create(email, params, current)
    if operation == Operation.UPDATE_ACCOUNT:
        return _plan_set_role(email, str(params["role"]), current)
    if operation == Operation.ADD_ACCESS:
        if params["entitlement_type"] == EntitlementType.CORP_ROLE:
            return _plan_set_role(email, str(params["value"]), current)
        return _plan_add_site(email, str(params["value"]), current)
    if operation == Operation.REMOVE_ACCESS:
        return _plan_remove_site(
            email, str(params["value"]), current, allow_no_sites=bool(params.get("allow_no_sites"))
        )
    if operation == Operation.REMOVE_ACCOUNT:
        return _plan_remove_account(email, current)
    raise ValueError(f"unknown operation {operation!r}")


def _plan_create(email: str, params: Mapping[str, Any], current: AccountSnapshot | None) -> Plan:
    role = str(params["role"])
    sites = tuple(sorted(set(params.get("sites") or ())))
    if current is None:
        expected = AccountSnapshot(
            email=email,
            role=role,
            status="pending",
            sites=frozenset(() if role == OWNER else sites),
        )
        return Plan("act", steps=(Invite(email, role, sites),), expected=expected)
    # The account exists (an earlier attempt's invite landed, or someone else made it):
    # converge on the requested access instead of inviting twice.
    steps: list[Step] = []
    expected = current
    if current.role != role:
        steps.append(SetRole(current.address, role))
        expected = replace(expected, role=role)
    if role != OWNER:
        for site in sites:
            if site not in expected.sites:
                steps.append(AddToSite(site, (current.address,)))
                expected = replace(expected, sites=expected.sites | {site})
    if not steps:
        return _no_action("the account already exists with the requested role and sites", current)
    return Plan("act", steps=tuple(steps), expected=expected)


def _plan_set_role(email: str, role: str, current: AccountSnapshot | None) -> Plan:
    if current is None:
        return _refuse(f"{email} is not a user of the corp; request create-account first", current)
    if current.role == role:
        return _no_action(f"{email} already has role {role}", current)
    expected = replace(current, role=role, sites=frozenset() if role == OWNER else current.sites)
    return Plan("act", steps=(SetRole(current.address, role),), expected=expected)


def _plan_add_site(email: str, site: str, current: AccountSnapshot | None) -> Plan:
    if current is None:
        return _refuse(f"{email} is not a user of the corp; request create-account first", current)
    if current.role == OWNER:
        return _no_action(f"{email} is an owner, and owners are members of every site", current)
    if site in current.sites:
        return _no_action(f"{email} is already a member of {site}", current)
    expected = replace(current, sites=current.sites | {site})
    return Plan("act", steps=(AddToSite(site, (current.address,)),), expected=expected)


def _plan_remove_site(
    email: str, site: str, current: AccountSnapshot | None, *, allow_no_sites: bool
) -> Plan:
    if current is None:
        return _no_action(f"{email} is not a user of the corp; no site to remove", current)
    if current.role == OWNER:
        return _refuse(
            f"{email} is an owner, and owners are members of every site; "
            "change the role to remove site access",
            current,
        )
    if site not in current.sites:
        return _no_action(f"{email} is not a member of {site}", current)
    remaining = current.sites - {site}
    if not remaining and not allow_no_sites:
        return _refuse(
            f"removing {site} would leave {email} ({current.role}) with no site; "
            "request remove-account, or pass --allow-no-sites",
            current,
        )
    expected = replace(current, sites=remaining)
    return Plan("act", steps=(RemoveFromSite(site, current.address),), expected=expected)


def _plan_remove_account(email: str, current: AccountSnapshot | None) -> Plan:
    if current is None:
        return _no_action(f"{email} is not a user of the corp", None)
    snapshot = {
        "role": current.role,
        "sites": sorted(current.sites),
        "name": current.name,
        "status": current.status,
    }
    return Plan("act", steps=(DeleteAccount(current.address),), expected=None, snapshot=snapshot)
