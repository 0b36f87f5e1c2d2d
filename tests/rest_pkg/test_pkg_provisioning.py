"""Provisioning through the shipped package: every operation via the Worker and the simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pkg_harness import (
    NO_THRESHOLDS,
    SHIPPED,
    SIM_ENV,
    SIM_PARAMS,
    shipped_document,
    sim_connector,
    write_package,
)

from sigsci_iga.connectors.base import AddToSite, DeleteAccount, Invite, SetRole
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.errors import AuthError, BadRequestError
from sigsci_iga.importer.run import Importer, ImportOptions
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import PlannedTask, RunSummary, Worker, WorkerOptions
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, SimState, create_app
from sigsci_iga.store import Repository, open_repository

FAST = WorkerOptions(retry_base_seconds=0.01, retry_max_seconds=0.05, throttle_wait_seconds=0.01)
NEW = "new.hire@example.com"


@pytest.fixture
def app() -> FastAPI:
    return create_app(SimConfig(users=30, sites=8, seed=5, pending_share=0.0))


@pytest.fixture
def repo(tmp_path: Path, app: FastAPI) -> Iterator[Repository]:
    """A repository with the corp registered as a `rest` endpoint and imported through the package."""
    repository = open_repository(f"sqlite:///{tmp_path / 'repo.db'}")
    repository.endpoints.add(
        DEMO_CORP, corp=DEMO_CORP, api_url="http://sim", email=DEMO_EMAIL, connector="rest"
    )

    async def main() -> None:
        async with sim_connector(app) as connector:
            options = ImportOptions(mode="full", thresholds=NO_THRESHOLDS)
            await Importer(repository, DEMO_CORP, connector).run(options)

    asyncio.run(main())
    try:
        yield repository
    finally:
        repository.close()


def state(app: FastAPI) -> SimState:
    sim_state: SimState = app.state.sim.state
    return sim_state


def access(app: FastAPI, email: str) -> tuple[str, list[str]] | None:
    user = state(app).get_user(email)
    return None if user is None else (user.role, sorted(user.sites))


def pick(app: FastAPI, role: str, least: int) -> str:
    with state(app).lock:
        for user in state(app).users.values():
            if user.role == role and len(user.sites) >= least and user.email != DEMO_EMAIL:
                return user.email
    raise AssertionError("no such user in the seeded corp")


def queue(repo: Repository, operation: Operation, email: str, **params: Any) -> int:
    built = build_params(repo, DEMO_CORP, operation, **params)
    return repo.tasks.create(
        DEMO_CORP, operation, email, built, requester="alice", justification="ticket 7"
    ).id


def work(app: FastAPI, repo: Repository) -> tuple[RunSummary, RestConnector]:
    async def main() -> tuple[RunSummary, RestConnector]:
        async with sim_connector(app) as connector:
            summary = await Worker(repo, DEMO_CORP, connector, options=FAST).run()
            return summary, connector

    return asyncio.run(main())


def plan(app: FastAPI, repo: Repository) -> list[PlannedTask]:
    async def main() -> list[PlannedTask]:
        async with sim_connector(app) as connector:
            return await Worker(repo, DEMO_CORP, connector, options=FAST).plan_due()

    return asyncio.run(main())


def test_every_operation_through_the_worker(app: FastAPI, repo: Repository) -> None:
    sites = sorted(state(app).sites)
    # create: the invite carries the requested sites, not a hard-coded one
    created = queue(repo, "create_account", NEW, role="user", sites=sites[:2])
    summary, connector = work(app, repo)
    assert summary.completed == 1, summary
    assert access(app, NEW) == ("user", sites[:2])
    assert repo.tasks.get(created).state == "completed"
    assert connector.captured == {"invite": {"user_status": "pending"}}
    intent = repo.journal.list(task_id=created, kind="intent")[0]
    assert intent.path == f"/api/v0/corps/{DEMO_CORP}/users/{NEW}/invite"
    assert intent.detail == {
        "body": {
            "role": "user",
            "memberships": {"data": [{"site": {"name": s}} for s in sites[:2]]},
        }
    }

    # role change: only the role is sent, the sites stay
    member = pick(app, "user", least=2)
    before = access(app, member)
    assert before is not None
    queue(repo, "update_account", member, role="admin")
    assert work(app, repo)[0].completed == 1
    assert access(app, member) == ("admin", before[1])

    # add a site, then remove one
    extra = next(s for s in sites if s not in before[1])
    queue(repo, "add_access", member, site=extra)
    assert work(app, repo)[0].completed == 1
    assert access(app, member) == ("admin", sorted([*before[1], extra]))
    queue(repo, "remove_access", member, site=before[1][0])
    assert work(app, repo)[0].completed == 1
    assert access(app, member) == ("admin", sorted([*before[1][1:], extra]))
    account = repo.inventory.find_account(DEMO_CORP, member)
    assert account is not None
    assert sorted(account.sites) == sorted([*before[1][1:], extra])

    # remove the account
    removed = queue(repo, "remove_account", member)
    assert work(app, repo)[0].completed == 1
    assert access(app, member) is None
    assert [e.method for e in repo.journal.list(task_id=removed, kind="intent")] == ["DELETE"]

    # the journal never holds the token
    everything = json.dumps([e.to_json() for e in repo.journal.list()])
    assert DEMO_TOKEN not in everything
    assert len(repo.journal.list(kind="call")) >= 10


def test_two_workers_sharing_one_package_connector_journal_every_call_exactly_once(
    app: FastAPI, repo: Repository
) -> None:
    with state(app).lock:
        people = [
            u.email for u in state(app).users.values() if u.role == "user" and u.email != DEMO_EMAIL
        ][:4]
    ids = [queue(repo, "update_account", email, role="observer") for email in people]
    app.state.sim.calls.reset()
    one_at_a_time = replace(FAST, batch_size=1)

    async def main() -> int:
        async with sim_connector(app) as connector:
            workers = [
                Worker(repo, DEMO_CORP, connector, options=one_at_a_time, worker_id=name)
                for name in ("first", "second")
            ]
            summaries = await asyncio.gather(*(w.run() for w in workers))
            assert sum(s.completed for s in summaries) == len(ids)
            return sum(connector.calls.values())

    sent = asyncio.run(main())

    assert len(repo.journal.list(kind="call")) == sent == app.state.sim.calls.total()


def test_coalesced_site_adds_are_described_as_one_call_per_account(
    app: FastAPI, repo: Repository
) -> None:
    site = sorted(state(app).sites)[0]
    emails = []
    with state(app).lock:
        for user in state(app).users.values():
            if user.role in ("user", "observer") and site not in user.sites and len(emails) < 3:
                emails.append(user.email)
    for email in emails:
        queue(repo, "add_access", email, site=site)
    planned = plan(app, repo)
    assert len(planned) == 3
    for item in planned:
        assert [c.body for c in item.calls] == [{"members": [e]} for e in sorted(emails)]
        assert len(item.shared_with) == 2
    summary, connector = work(app, repo)
    assert summary.completed == 3
    assert connector.calls["POST provisioning.add_access.Site[0]"] == 3
    for email in emails:
        held = access(app, email)
        assert held is not None
        assert site in held[1]


def test_bodies_are_rendered_as_json_not_spliced_text() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"status": "pending"})

    tricky_site = 'we"b}{,"x'
    tricky_email = 'o"brien{}@example.com'
    bound = load_package(SHIPPED).bind(SIM_PARAMS, env=SIM_ENV)

    async def main() -> None:
        async with RestConnector(bound, transport=httpx.MockTransport(handler)) as connector:
            await connector.execute(Invite(tricky_email, "user", (tricky_site,)))
            await connector.execute(AddToSite("plain", (tricky_email,)))

    asyncio.run(main())
    invite, add = (json.loads(r.content) for r in sent)
    assert invite == {"role": "user", "memberships": {"data": [{"site": {"name": tricky_site}}]}}
    assert add == {"members": [tricky_email]}
    # Data in a path segment is percent-encoded, never able to add a segment.
    assert sent[0].url.raw_path.decode().startswith("/api/v0/corps/testcorp/users/o%22brien%7B%7D@")


def test_path_segments_from_data_cannot_escape() -> None:
    bound = load_package(SHIPPED).bind(SIM_PARAMS, env=SIM_ENV)

    async def main() -> None:
        async with RestConnector(
            bound, transport=httpx.MockTransport(lambda r: httpx.Response(204))
        ) as connector:
            await connector.execute(DeleteAccount("../../admin"))

    with pytest.raises(BadRequestError, match="slash"):
        asyncio.run(main())


def test_secrets_never_appear_in_described_calls_or_errors(tmp_path: Path) -> None:
    document = shipped_document()
    # A (bad) package that puts the token in a body and a query: it must still be masked.
    document["provisioning"]["update_account"][0]["body"]["note"] = "key ${params.token}"
    document["provisioning"]["update_account"][0]["query"] = {"k": "${params.token}"}
    loaded = load_package(write_package(tmp_path, document))
    bound = loaded.bind(SIM_PARAMS, env=SIM_ENV)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": f"token {DEMO_TOKEN} refused"})

    async def main() -> None:
        async with RestConnector(bound, transport=httpx.MockTransport(handler)) as connector:
            described = connector.describe_all(SetRole("a@example.com", "admin"))
            text = repr(described)
            assert DEMO_TOKEN not in text
            assert described[0].body == {"role": "admin", "note": "key ***"}
            assert "k=%2A%2A%2A" in described[0].path or "k=***" in described[0].path
            with pytest.raises(AuthError) as caught:
                await connector.execute(SetRole("a@example.com", "admin"))
            assert DEMO_TOKEN not in str(caught.value)
            assert "***" in str(caught.value)

    asyncio.run(main())


def test_unsupported_operation_fails_the_step_cleanly(tmp_path: Path) -> None:
    document = shipped_document()
    del document["provisioning"]["remove_account"]
    bound = load_package(write_package(tmp_path, document)).bind(SIM_PARAMS, env=SIM_ENV)

    async def main() -> None:
        async with RestConnector(
            bound, transport=httpx.MockTransport(lambda r: httpx.Response(204))
        ) as connector:
            assert connector.describe(DeleteAccount("a@example.com")).method == "NONE"
            with pytest.raises(BadRequestError, match=r"no provisioning\.remove_account"):
                await connector.execute(DeleteAccount("a@example.com"))

    asyncio.run(main())


def test_the_journal_never_holds_a_value_computed_from_the_token(
    tmp_path: Path, app: FastAPI, repo: Repository
) -> None:
    document = shipped_document()
    call = document["provisioning"]["update_account"][0]
    call["body"]["note"] = "${params.token.toUpperCase()}"
    call["body"]["hint"] = "${'key ' + params.token.substring(4)}"
    call["query"] = {"k": "${params.token.replace('-', '+')}"}
    leaky = load_package(write_package(tmp_path, document)).bind(SIM_PARAMS, env=SIM_ENV)
    member = pick(app, "user", least=1)
    task = queue(repo, "update_account", member, role="admin")

    async def main() -> RunSummary:
        async with sim_connector(app, leaky) as connector:
            return await Worker(repo, DEMO_CORP, connector, options=FAST).run()

    assert asyncio.run(main()).completed == 1
    [intent] = repo.journal.list(task_id=task, kind="intent")
    assert intent.path == f"/api/v0/corps/{DEMO_CORP}/users/{member}?k=***"
    assert intent.detail == {"body": {"role": "admin", "note": "***", "hint": "key ***"}}
    everything = json.dumps([e.to_json() for e in repo.journal.list()])
    for derived in (DEMO_TOKEN, DEMO_TOKEN.upper(), DEMO_TOKEN[4:], DEMO_TOKEN.replace("-", "+")):
        assert derived not in everything
