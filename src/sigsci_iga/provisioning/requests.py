"""Turning access requests into validated provisioning tasks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sigsci_iga.connectors.http.segments import check_segment
from sigsci_iga.domain.model import CorpRole, EntitlementType, corp_role
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.domain.text import did_you_mean
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import Repository


def _known_sites(repo: Repository, endpoint: str, sites: Iterable[str]) -> list[str]:
    """Check site names, and that the repository knows them once the endpoint was imported."""
    names = [check_segment(s, "site name") for s in sites]
    # Only the named sites are read: listing every site (with its holders) cost a request more
    # than everything else it does.
    known = repo.inventory.value_statuses(endpoint, EntitlementType.SITE, names)
    if known is not None:
        unknown = [s for s in names if s not in known]
        if unknown:
            every = [
                e.value for e in repo.inventory.entitlements(endpoint, type=EntitlementType.SITE)
            ]
            hint = did_you_mean(unknown[0], every)
            raise InvalidInputError(
                f"unknown site {unknown[0]!r} in endpoint {endpoint!r}{hint} "
                "(import the endpoint first if the site is new)"
            )
        inactive = [s for s in names if known[s] != "active"]
        if inactive:
            raise InvalidInputError(f"site {inactive[0]!r} is inactive (gone from the corp)")
    return sorted(set(names))


def build_params(
    repo: Repository,
    endpoint: str,
    operation: Operation,
    *,
    role: str | None = None,
    sites: Sequence[str] = (),
    site: str | None = None,
    allow_no_sites: bool = False,
) -> dict[str, Any]:
    """Validated task parameters for one operation; raises InvalidInputError naming the problem."""
    if operation == Operation.CREATE_ACCOUNT:
        if role is None:
            raise InvalidInputError("create-account needs --role")
        chosen = corp_role(role)
        names = _known_sites(repo, endpoint, sites)
        if chosen is not CorpRole.OWNER and not names:
            raise InvalidInputError(
                "create-account needs at least one --site for a non-owner (owners get every site)"
            )
        return {"role": chosen.value, "sites": names}
    if operation == Operation.UPDATE_ACCOUNT:
        if role is None:
            raise InvalidInputError("update-role needs --role")
        return {"role": corp_role(role).value}
    if operation in (Operation.ADD_ACCESS, Operation.REMOVE_ACCESS):
        if role is not None:
            if operation == Operation.REMOVE_ACCESS:
                raise InvalidInputError(
                    "a corp role cannot be removed, only changed: request update-role"
                )
            return {
                "entitlement_type": EntitlementType.CORP_ROLE.value,
                "value": corp_role(role).value,
            }
        if site is None:
            raise InvalidInputError(f"{Operation(operation).label} needs --site")
        (name,) = _known_sites(repo, endpoint, [site])
        params: dict[str, Any] = {"entitlement_type": EntitlementType.SITE.value, "value": name}
        if operation == Operation.REMOVE_ACCESS:
            params["allow_no_sites"] = allow_no_sites
        return params
    if operation == Operation.REMOVE_ACCOUNT:
        return {}
    raise InvalidInputError(f"unknown operation {operation!r}")
