"""Read the current state of one endpoint as a pure `RepositoryView`, in three bulk queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigsci_iga.domain.model import (
    AccountState,
    AccountStatus,
    CurrentCounts,
    EntitlementState,
    EntitlementStatus,
    EntitlementType,
    RepositoryView,
)
from sigsci_iga.store.tables import (
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
)


def load_view(
    conn: Connection, endpoint_id: int, emails: Collection[str] | None = None
) -> RepositoryView:
    """The endpoint's accounts, links and entitlement values; call inside one transaction.

    With `emails`, only those accounts (and their links) are read, with every entitlement value:
    enough for `compute_partial_diff` over those accounts without reading all of them.
    """
    account_filter = [accounts.c.endpoint_id == endpoint_id]
    if emails is not None:
        account_filter.append(accounts.c.email.in_(sorted(emails)))
    version = conn.execute(
        sa.select(endpoints.c.version).where(endpoints.c.id == endpoint_id)
    ).scalar_one()
    values: dict[int, EntitlementState] = {}
    sites: dict[str, EntitlementState] = {}
    roles: dict[str, EntitlementState] = {}
    value_rows = conn.execute(
        sa.select(
            entitlement_values.c.id,
            entitlement_types.c.name,
            entitlement_values.c.value,
            entitlement_values.c.display_name,
            entitlement_values.c.status,
        )
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(entitlement_types.c.endpoint_id == endpoint_id)
    )
    for id_, type_name, value, display_name, status in value_rows:
        state = EntitlementState(type_name, value, display_name, status)
        values[id_] = state
        if type_name == EntitlementType.SITE:
            sites[value] = state
        elif type_name == EntitlementType.CORP_ROLE:
            roles[value] = state

    held_sites: dict[int, set[str]] = defaultdict(set)
    held_roles: dict[int, set[str]] = defaultdict(set)
    link_rows = conn.execute(
        sa.select(account_entitlements.c.account_id, account_entitlements.c.value_id)
        .join(accounts, accounts.c.id == account_entitlements.c.account_id)
        .where(*account_filter)
    )
    for account_id, value_id in link_rows:
        held = values[value_id]
        target = held_sites if held.type == EntitlementType.SITE else held_roles
        target[account_id].add(held.value)

    account_rows = conn.execute(
        sa.select(
            accounts.c.id,
            accounts.c.email,
            accounts.c.name,
            accounts.c.role,
            accounts.c.status,
            accounts.c.mfa_enabled,
            accounts.c.created,
            accounts.c.extra,
        ).where(*account_filter)
    )
    empty: frozenset[str] = frozenset()
    account_states = {
        email: AccountState(
            email=email,
            name=name,
            role=role,
            status=status,
            mfa_enabled=bool(mfa),
            created=created,
            extra=extra or {},
            sites=frozenset(held_sites[id_]) if id_ in held_sites else empty,
            roles=frozenset(held_roles[id_]) if id_ in held_roles else empty,
        )
        for id_, email, name, role, status, mfa, created, extra in account_rows
    }
    return RepositoryView(accounts=account_states, sites=sites, roles=roles, version=version)


def account_emails(
    conn: Connection,
    endpoint_id: int,
    *,
    roles: Collection[str] = (),
    sites: Collection[str] = (),
    include_suspended: bool = False,
) -> set[str]:
    """Emails of the accounts with one of `roles` or holding one of `sites` (indexed lookups)."""
    if not roles and not sites:
        return set()
    held = (
        sa.select(account_entitlements.c.account_id)
        .join(entitlement_values, entitlement_values.c.id == account_entitlements.c.value_id)
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(
            entitlement_types.c.endpoint_id == endpoint_id,
            entitlement_types.c.name == EntitlementType.SITE.value,
            entitlement_values.c.value.in_(sorted(sites)),
        )
    )
    which = sa.or_(accounts.c.role.in_(sorted(roles)), accounts.c.id.in_(held))
    query = sa.select(accounts.c.email).where(accounts.c.endpoint_id == endpoint_id, which)
    if not include_suspended:
        query = query.where(accounts.c.status != AccountStatus.SUSPENDED.value)
    return {str(email) for (email,) in conn.execute(query)}


def load_counts(conn: Connection, endpoint_id: int, cap: int | None = None) -> CurrentCounts:
    """`RepositoryView.counts()` from SQL, each count stopping at `cap` (None: exact).

    Thresholds only need to know whether a count is below a bound (see `counts_needed`), so an
    incremental import counts a few rows instead of every link of the corp.
    """

    def count(query: sa.Select[Any]) -> int:
        if cap is not None:
            query = query.limit(cap)
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        )

    own = accounts.c.endpoint_id == endpoint_id
    return CurrentCounts(
        accounts=count(
            sa.select(sa.literal(1)).where(own, accounts.c.status != AccountStatus.SUSPENDED.value)
        ),
        links=count(
            sa.select(sa.literal(1))
            .select_from(account_entitlements)
            .join(accounts, accounts.c.id == account_entitlements.c.account_id)
            .where(own)
        ),
        sites=count(
            sa.select(sa.literal(1))
            .select_from(entitlement_values)
            .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
            .where(
                entitlement_types.c.endpoint_id == endpoint_id,
                entitlement_types.c.name == EntitlementType.SITE.value,
                entitlement_values.c.status == EntitlementStatus.ACTIVE.value,
            )
        ),
    )
