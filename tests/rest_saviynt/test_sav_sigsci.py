"""Acceptance: the real Signal Sciences export, converted, run against the simulator.

A full import is compared with the native connector's import of the same corp, and every
operation the export defines runs through the Worker. Each difference asserted here is explained
in docs/saviynt-conversion.md ("Signal Sciences: converted vs native").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr
from sav_harness import bound_sigsci, converted

from sigsci_iga.connectors.base import Connector
from sigsci_iga.connectors.rest.loader import BoundPackage
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.errors import AuthError
from sigsci_iga.importer.run import Importer, ImportOptions, ImportResult
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import RunSummary, Worker, WorkerOptions
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimState,
    create_app,
    inprocess_transport,
)
from sigsci_iga.store import Repository, open_repository

NO_LIMIT = Limit(absolute=None, percent=None)
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
FAST = WorkerOptions(retry_base_seconds=0.01, retry_max_seconds=0.05, throttle_wait_seconds=0.01)
NEW = "new.hire@example.com"
#: The simulator's default page size for GET /sites, which the export does not paginate.
SITES_FIRST_PAGE = 10


def _import(repo: Repository, connector: Connector) -> ImportResult:
    options = ImportOptions(mode="full", thresholds=NO_THRESHOLDS)
    return asyncio.run(Importer(repo, DEMO_CORP, connector).run(options))


def _repo(tmp_path: Path, name: str, connector: str) -> Repository:
    repo = open_repository(f"sqlite:///{tmp_path / name}.db")
    repo.endpoints.add(
        DEMO_CORP, corp=DEMO_CORP, api_url="http://sim", email=DEMO_EMAIL, connector=connector
    )
    return repo


def _accounts(repo: Repository) -> dict[str, Any]:
    return dict(repo.runs.load_view(DEMO_CORP).accounts)


def _entitlements(repo: Repository, kind: str) -> dict[str, str]:
    return {
        e.value: e.display_name for e in repo.inventory.entitlements(DEMO_CORP) if e.type == kind
    }


def test_import_against_the_simulator_and_its_differences_from_the_native_connector(
    tmp_path: Path,
) -> None:
    app = create_app(SimConfig(users=40, sites=12))
    native_repo, rest_repo = (
        _repo(tmp_path, "native", "signalsciences"),
        _repo(tmp_path, "rest", "rest"),
    )
    try:
        client = SigSciClient(
            base_url="http://sim",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            token=SecretStr(DEMO_TOKEN),
            transport=inprocess_transport(app),
        )
        native = _import(native_repo, SignalSciencesConnector(client))
        asyncio.run(client.aclose())
        connector = RestConnector(bound_sigsci(tmp_path), transport=inprocess_transport(app))
        rest = _import(rest_repo, connector)
        asyncio.run(connector.aclose())

        assert native.run.status == rest.run.status == "succeeded"
        assert native.accounts_read == rest.accounts_read == 40
        # No pagination on GET /sites: only the first page of 12 sites is read.
        assert (native.sites_read, rest.sites_read) == (12, SITES_FIRST_PAGE)
        # One members call per site read (httpEntToAcct), and the sites are listed twice.
        assert dict(connector.calls) == {
            "GET import.accounts.calls[0]": 1,
            "GET import.entitlement_types.Site.calls[0]": 2,
            "GET import.links[0].call": SITES_FIRST_PAGE,
        }

        native_sites, rest_sites = (
            _entitlements(native_repo, "Site"),
            _entitlements(rest_repo, "Site"),
        )
        assert len(rest_sites) == SITES_FIRST_PAGE
        assert rest_sites.items() <= native_sites.items()  # same names and display names
        # The role is imported into customproperty4, never as the role or a CorpRole entitlement.
        assert set(_entitlements(native_repo, "CorpRole")) == {"owner", "admin", "user", "observer"}
        assert set(_entitlements(rest_repo, "CorpRole")) == {""}

        natives, rests = _accounts(native_repo), _accounts(rest_repo)
        assert natives.keys() == rests.keys()
        for email, n in natives.items():
            r = rests[email]
            assert (r.name, r.status) == (n.name, n.status)
            assert r.role == ""
            assert r.extra["customproperty4"] == n.role
            assert r.extra["customproperty5"] == n.extra["raw_status"]
            assert r.extra["customproperty6"] is n.mfa_enabled
            assert r.mfa_enabled is False  # mfaEnabled went to customproperty6 only
            assert r.created is None
            assert n.created is not None
            # memberships are text in customproperty3, and empty without expand=memberships.
            assert r.extra["customproperty3"]["data"] == []
            # Links come from the members of the sites that were read (owners included).
            assert r.sites == n.sites & rest_sites.keys()
        owners = [a for a in natives.values() if a.role == "owner"]
        assert owners
        assert all(rests[o.email].sites == frozenset(rest_sites) for o in owners)
        assert any(n.sites != rests[e].sites for e, n in natives.items() if n.role != "owner")
    finally:
        native_repo.close()
        rest_repo.close()


def test_the_exported_authorization_header_is_refused_by_signal_sciences(tmp_path: Path) -> None:
    # What the export sends: `Authorization: ${access_token}` holding the API token.
    document = yaml.safe_load(converted("Signal-Sciences").to_yaml())
    document["connection"]["auth"]["acctAuth"]["headers"] = {"Authorization": "${params.api_token}"}
    bound = bound_sigsci(tmp_path, yaml.safe_dump(document, sort_keys=False))
    app = create_app(SimConfig(users=5, sites=2))

    async def main() -> None:
        async with RestConnector(bound, transport=inprocess_transport(app)) as connector:
            await connector.accounts_page(None)

    with pytest.raises(AuthError, match="401"):
        asyncio.run(main())


# -- provisioning through the Worker -----------------------------------------------------------


@pytest.fixture
def app() -> FastAPI:
    return create_app(SimConfig(users=30, sites=8, seed=5, pending_share=0.0))


@pytest.fixture
def bound(tmp_path: Path) -> BoundPackage:
    return bound_sigsci(tmp_path)


@pytest.fixture
def repo(tmp_path: Path, app: FastAPI, bound: BoundPackage) -> Iterator[Repository]:
    repository = _repo(tmp_path, "repo", "rest")
    _import(repository, RestConnector(bound, transport=inprocess_transport(app)))
    try:
        yield repository
    finally:
        repository.close()


def _state(app: FastAPI) -> SimState:
    state: SimState = app.state.sim.state
    return state


def _access(app: FastAPI, email: str) -> tuple[str, list[str]] | None:
    user = _state(app).get_user(email)
    return None if user is None else (user.role, sorted(user.sites))


def _queue(repo: Repository, operation: Operation, email: str, **params: Any) -> int:
    built = build_params(repo, DEMO_CORP, operation, **params)
    return repo.tasks.create(
        DEMO_CORP, operation, email, built, requester="alice", justification="ticket 9"
    ).id


def _work(app: FastAPI, repo: Repository, bound: BoundPackage) -> RunSummary:
    async def main() -> RunSummary:
        async with RestConnector(bound, transport=inprocess_transport(app)) as connector:
            return await Worker(repo, DEMO_CORP, connector, options=FAST).run()

    return asyncio.run(main())


def _member(app: FastAPI, least: int) -> str:
    with _state(app).lock:
        for user in _state(app).users.values():
            if user.role == "user" and len(user.sites) >= least:
                return user.email
    raise AssertionError("no such user in the seeded corp")


def test_every_exported_operation_through_the_worker(
    app: FastAPI, repo: Repository, bound: BoundPackage
) -> None:
    sites = sorted(_state(app).sites)
    requested = [s for s in sites if s in _entitlements(repo, "Site")][:2]

    # Create hard-codes the site `staging`, which this corp does not have: 400, the task fails.
    failed = _queue(repo, "create_account", NEW, role="user", sites=requested)
    summary = _work(app, repo, bound)
    assert (summary.completed, summary.failed) == (0, 1)
    task = repo.tasks.get(failed)
    assert task.state == "failed"
    assert task.last_error is not None
    assert "400: Site not found" in task.last_error
    assert _access(app, NEW) is None
    (intent,) = repo.journal.list(task_id=failed, kind="intent")
    assert intent.detail == {
        "body": {"role": "user", "memberships": {"data": [{"site": {"name": "staging"}}]}}
    }

    # With a `staging` site the invite works, but into `staging` only, not the requested sites.
    _state(app).add_site("staging", "Staging")
    _queue(repo, "create_account", NEW, role="user", sites=requested)
    assert _work(app, repo, bound).completed == 1
    assert _access(app, NEW) == ("user", ["staging"])

    # Update sends the role and `staging` as the memberships: PATCH replaces the whole site set.
    member = _member(app, least=2)
    before = _access(app, member)
    assert before is not None
    assert len(before[1]) >= 2
    _queue(repo, "update_account", member, role="admin")
    assert _work(app, repo, bound).completed == 1
    assert _access(app, member) == ("admin", ["staging"])

    # Add and remove access use the members endpoints and leave the other sites alone.
    extra = requested[0]
    _queue(repo, "add_access", member, site=extra)
    assert _work(app, repo, bound).completed == 1
    assert _access(app, member) == ("admin", sorted(["staging", extra]))
    _queue(repo, "remove_access", member, site=extra)
    assert _work(app, repo, bound).completed == 1
    assert _access(app, member) == ("admin", ["staging"])

    # RemoveAccount deletes the user from the corp.
    removed = _queue(repo, "remove_account", member)
    assert _work(app, repo, bound).completed == 1
    assert _access(app, member) is None
    assert [e.method for e in repo.journal.list(task_id=removed, kind="intent")] == ["DELETE"]
    assert DEMO_TOKEN not in repr([e.to_json() for e in repo.journal.list()])
