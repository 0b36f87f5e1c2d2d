"""Every use case driven through the application layer, without the CLI, against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga import app
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.errors import (
    AuthError,
    ConfigError,
    InvalidInputError,
    RecordNotFoundError,
)
from sigsci_iga.settings import Settings
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimState,
    create_app,
    inprocess_transport,
    serve_in_thread,
)

FAST_CLIENT = {
    "rate_limit_per_minute": 1_000_000.0,
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
}
NEVER_HOLD = app.ThresholdSettings(
    max_suspend=-1,
    max_suspend_percent=-1,
    max_links_removed=-1,
    max_links_removed_percent=-1,
    max_sites_inactivated=-1,
    max_sites_inactivated_percent=-1,
)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_url": "http://sim",
        "email": DEMO_EMAIL,
        "token": SecretStr(DEMO_TOKEN),
        "corp": DEMO_CORP,
        "database_url": database_url,
        "retry_base_seconds": 0.05,
        **overrides,
    }
    return Settings(**values)


def context_for(
    sim: FastAPI, database_url: str, *, environ: dict[str, str] | None = None, **overrides: Any
) -> app.AppContext:
    settings = settings_for(database_url, **overrides)
    connectors = app.Connectors(
        settings,
        environ=environ if environ is not None else {},
        transport=inprocess_transport(sim),
        client_options=FAST_CLIENT,
    )
    return app.AppContext(settings, connectors=connectors)


@pytest.fixture(autouse=True)
def _no_sigsci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIGSCI"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim() -> FastAPI:
    return create_app(SimConfig(users=30, sites=6, seed=5))


@pytest.fixture
def ctx(sim: FastAPI, repo_url: str) -> Iterator[app.AppContext]:
    with context_for(sim, repo_url) as context:
        yield context


def state(sim: FastAPI) -> SimState:
    result: SimState = sim.state.sim.state
    return result


def a_user_with_sites(sim: FastAPI, least: int = 2) -> tuple[str, list[str]]:
    with state(sim).lock:
        for user in state(sim).users.values():
            if user.role == "user" and len(user.sites) >= least and user.status == "active":
                return user.email, sorted(user.sites)
    raise AssertionError("the seed has no such user")


def test_every_use_case_runs_through_the_application_layer(
    sim: FastAPI, ctx: app.AppContext, tmp_path: Path
) -> None:
    first = asyncio.run(app.run_import(ctx, None, mode="full"))
    assert first.run.status == "succeeded"
    assert [e.name for e in app.list_endpoints(ctx)] == [DEMO_CORP]
    accounts = app.list_accounts(ctx, None)
    assert {a.email for a in accounts} == set(state(sim).users)

    email, sites = a_user_with_sites(sim)
    absent = next(s for s in state(sim).sites if s not in sites)

    # Identities, then correlation, in one use case.
    people = tmp_path / "people.json"
    people.write_text(json.dumps([{"username": "pat", "email": email.upper()}]))
    loaded = app.load_identities(ctx, people)
    assert loaded.loaded.created == 1
    assert loaded.correlation is not None
    assert loaded.correlation.matched == 1
    assert app.account_detail(ctx, None, email).account.identity == "pat"

    # A request with instant provisioning runs at once and reaches the target.
    granted = asyncio.run(
        app.request_access(
            ctx,
            None,
            app.AccessRequest(Operation.ADD_ACCESS, email, sites=(absent,), requester="ann"),
        )
    )
    assert granted.executed
    assert [t.state for t in granted.tasks] == [TaskState.COMPLETED]
    assert absent in state(sim).users[email].sites
    assert absent in app.account_detail(ctx, None, email).account.sites

    # Without it, the task waits for the queue; the preview sends nothing.
    queued = asyncio.run(
        app.request_access(
            ctx,
            None,
            app.AccessRequest(Operation.REMOVE_ACCESS, email, sites=(absent,)),
            instant=False,
        )
    )
    assert not queued.executed
    assert queued.tasks[0].state is TaskState.NEW
    planned = asyncio.run(app.preview_queue(ctx, None))
    assert [(c.method, c.path.rsplit("/", 3)[-3]) for p in planned for c in p.calls] == [
        ("DELETE", absent)
    ]
    assert absent in state(sim).users[email].sites
    summary = asyncio.run(app.run_queue(ctx, None))
    assert summary.completed == 1
    assert absent not in state(sim).users[email].sites

    # Discontinue, then retry, a task that was never run.
    later = app.submit_request(
        ctx, None, app.AccessRequest(Operation.UPDATE_ACCOUNT, email, role="admin")
    )
    stopped = app.discontinue_task(ctx, later.tasks[0].id, "not now")
    assert stopped.state is TaskState.DISCONTINUED
    again = app.retry_task(ctx, stopped.id)
    assert again.state is TaskState.NEW
    asyncio.run(app.run_queue(ctx, None))
    assert state(sim).users[email].role == "admin"

    # A leaver, then a restore with the access journaled before the removal.
    before = sorted(state(sim).users[email].sites)
    asyncio.run(app.request_access(ctx, None, app.AccessRequest(Operation.REMOVE_ACCOUNT, email)))
    assert email not in state(sim).users
    restored = asyncio.run(app.restore_account(ctx, None, email, requester="ann"))
    assert restored.tasks[0].state is TaskState.COMPLETED
    assert state(sim).users[email].role == "admin"
    assert sorted(state(sim).users[email].sites) == before

    # What the repository shows about all of it.
    task = app.task_detail(ctx, restored.tasks[0].id)
    assert task.task.justification == f"restore of {email}"
    assert {e.kind for e in task.journal} >= {"requested", "claimed", "intent", "call", "state"}
    assert app.list_journal(ctx, email=email.upper(), last=1)[0].task_id == task.task.id
    assert len(app.list_tasks(ctx, email=email)) == 5
    runs = app.list_runs(ctx)
    assert app.run_detail(ctx, runs[0].id).run.status == "succeeded"
    assert {e.value for e in app.list_entitlements(ctx, None, type="Site")} == set(state(sim).sites)
    assert [i.username for i in app.list_identities(ctx)] == ["pat"]


def test_approving_a_held_run_correlates_new_accounts_as_an_import_does(
    sim: FastAPI, ctx: app.AppContext, tmp_path: Path
) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    newcomer = "new.person@example.com"
    people = tmp_path / "people.csv"
    people.write_text(f"username,email\nnewp,{newcomer}\n")
    app.load_identities(ctx, people)
    leavers = [
        u.email for u in state(sim).users.values() if u.role != "owner" and u.status == "active"
    ][:3]
    for leaver in leavers:
        state(sim).remove_user(leaver)
    site = next(iter(state(sim).sites))
    state(sim).add_user(newcomer, "user", [site])

    held = asyncio.run(
        app.run_import(ctx, None, mode="full", thresholds=app.ThresholdSettings(max_suspend=1))
    )
    assert held.run.status == "held"
    with pytest.raises(RecordNotFoundError):
        app.account_detail(ctx, None, newcomer)

    approved = app.approve_run(ctx, held.run.id)

    assert approved.status == "approved"
    assert app.account_detail(ctx, None, newcomer).account.identity == "newp"


def test_one_process_governs_two_corps_each_with_its_own_caller_and_token(
    repo_url: str,
) -> None:
    alpha_state = SimState(SimConfig(corp="alpha", users=12, sites=3, seed=1))
    beta_state = SimState(SimConfig(corp="beta", users=9, sites=2, seed=2))
    alpha_state.add_api_token(DEMO_EMAIL, "alpha-owner-token")
    beta_state.add_api_token(DEMO_EMAIL, "beta-owner-token")
    with (
        serve_in_thread(create_app(state=alpha_state)) as alpha_url,
        serve_in_thread(create_app(state=beta_state)) as beta_url,
    ):
        # No process-wide token at all: each endpoint brings its own.
        settings = settings_for(repo_url, token=None, corp=None)
        environ = {"ALPHA_TOKEN": "alpha-owner-token", "BETA_TOKEN": "beta-owner-token"}
        connectors = app.Connectors(settings, environ=environ, client_options=FAST_CLIENT)
        with app.AppContext(settings, connectors=connectors) as ctx:
            app.register_native(
                ctx,
                "alpha",
                corp="alpha",
                email=DEMO_EMAIL,
                api_url=alpha_url,
                token="env:ALPHA_TOKEN",
            )
            app.register_native(
                ctx,
                "beta",
                corp="beta",
                email=DEMO_EMAIL,
                api_url=beta_url,
                token="env:BETA_TOKEN",
            )
            for name, sim_state in (("alpha", alpha_state), ("beta", beta_state)):
                result = asyncio.run(app.run_import(ctx, name, mode="full"))
                assert result.run.status == "succeeded"
                listed = {a.email for a in app.list_accounts(ctx, name)}
                assert listed == set(sim_state.users)
            stored = json.dumps([e.to_json() for e in app.list_endpoints(ctx)])
            assert "alpha-owner-token" not in stored
            assert "env:ALPHA_TOKEN" in stored

            environ["BETA_TOKEN"] = "wrong"
            with pytest.raises(AuthError):
                asyncio.run(app.run_import(ctx, "beta", mode="full"))
            assert asyncio.run(app.run_import(ctx, "alpha")).run.status == "succeeded"


def test_a_pasted_secret_is_refused_where_a_reference_belongs_and_never_echoed(
    ctx: app.AppContext,
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        app.register_native(
            ctx, "acme", corp="acme", email="me@acme.example", token="s3cr3t-token-value"
        )
    assert "s3cr3t" not in str(refused.value)
    assert app.list_endpoints(ctx) == []


def test_a_secret_file_is_read_when_the_connector_opens_and_a_fifo_is_refused_at_once(
    sim: FastAPI, repo_url: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(DEMO_TOKEN + "\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with context_for(sim, repo_url, token=None) as ctx:
        app.register_native(
            ctx,
            "byfile",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            api_url="http://sim",
            token=f"file:{token_file}",
        )
        assert asyncio.run(app.run_import(ctx, "byfile")).run.status == "succeeded"
        with pytest.raises(InvalidInputError, match="not a regular file"):
            app.register_native(
                ctx,
                "byfifo",
                corp=DEMO_CORP,
                email=DEMO_EMAIL,
                api_url="http://sim",
                token=f"file:{fifo}",
            )
        # A FIFO put in the file's place after registration fails when the connector opens.
        swapped = tmp_path / "swapped"
        swapped.write_text(DEMO_TOKEN)
        app.register_native(
            ctx,
            "byfifo",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            api_url="http://sim",
            token=f"file:{swapped}",
        )
        swapped.unlink()
        os.mkfifo(swapped)
        with pytest.raises(ConfigError, match="not a regular file"):
            asyncio.run(app.run_import(ctx, "byfifo"))


def test_checking_the_configured_corp_writes_nothing(sim: FastAPI, tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    with context_for(sim, f"sqlite:///{database}") as ctx:
        result = asyncio.run(app.check_endpoint(ctx))
    assert result.report.target == DEMO_CORP
    assert result.report.caller == DEMO_EMAIL
    assert result.report.caller_role == "owner"
    assert result.report.sites_visible == len(state(sim).sites)
    assert not database.exists()


def test_a_registered_endpoint_is_checked_with_its_own_credentials(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url, token=None, environ={"MY_TOKEN": "nope"}) as ctx:
        app.register_native(
            ctx,
            "mine",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            api_url="http://sim",
            token="env:MY_TOKEN",
        )
        with pytest.raises(AuthError):
            asyncio.run(app.check_endpoint(ctx, "mine"))
        with pytest.raises(RecordNotFoundError):
            asyncio.run(app.check_endpoint(ctx, "unknown"))


def test_removing_an_endpoint_deletes_it_or_retires_it_when_its_journal_must_be_kept(
    sim: FastAPI, ctx: app.AppContext
) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    removed = app.remove_endpoint(ctx, DEMO_CORP)
    assert removed.outcome == "deleted"
    assert app.list_endpoints(ctx) == []

    asyncio.run(app.run_import(ctx, None, mode="full"))
    email, _ = a_user_with_sites(sim)
    app.submit_request(ctx, None, app.AccessRequest(Operation.UPDATE_ACCOUNT, email, role="admin"))
    with pytest.raises(InvalidInputError, match="open task"):
        app.remove_endpoint(ctx, DEMO_CORP)
    forced = app.remove_endpoint(ctx, DEMO_CORP, force=True)
    assert (forced.outcome, forced.discontinued) == ("retired", 1)
    assert app.list_endpoints(ctx) == []
    assert [e.name for e in app.list_endpoints(ctx, include_retired=True)] == [DEMO_CORP]
    with pytest.raises(RecordNotFoundError, match="removed"):
        asyncio.run(app.run_import(ctx, None))
    assert state(sim).users[email].role == "user"


def test_an_unknown_correlation_rule_is_refused_before_any_identity_is_written(
    ctx: app.AppContext, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("username,email\npat,pat@example.com\n")
    with pytest.raises(ConfigError, match="correlation rule"):
        app.load_identities(ctx, people, rule="bogus")
    assert app.list_identities(ctx) == []


def test_add_access_with_both_a_site_and_a_role_is_refused_whole(
    sim: FastAPI, ctx: app.AppContext
) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    email, sites = a_user_with_sites(sim)
    request = app.AccessRequest(Operation.ADD_ACCESS, email, role="admin", sites=(sites[0],))
    with pytest.raises(InvalidInputError, match="not both"):
        app.submit_request(ctx, None, request)
    assert app.list_tasks(ctx) == []


def test_one_request_for_two_sites_makes_two_tasks_sharing_a_request_id(
    sim: FastAPI, ctx: app.AppContext
) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    email, sites = a_user_with_sites(sim)
    others = [s for s in state(sim).sites if s not in sites][:2]
    outcome = app.submit_request(
        ctx, None, app.AccessRequest(Operation.ADD_ACCESS, email, sites=tuple(others))
    )
    assert [t.params["value"] for t in outcome.tasks] == others
    assert {t.request_id for t in outcome.tasks} == {outcome.request_id}


def test_an_unknown_site_in_a_request_stores_no_task(sim: FastAPI, ctx: app.AppContext) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    email, sites = a_user_with_sites(sim)
    request = app.AccessRequest(Operation.ADD_ACCESS, email, sites=(sites[0], "no-such-site"))
    with pytest.raises(InvalidInputError, match="no-such-site"):
        app.submit_request(ctx, None, request)
    assert app.list_tasks(ctx) == []


def test_a_run_whose_process_died_is_marked_abandoned_by_the_next_import(
    sim: FastAPI, ctx: app.AppContext
) -> None:
    asyncio.run(app.run_import(ctx, None, mode="full"))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_owner = f"{socket.gethostname()}:{gone.stdout.strip()}"
    left = ctx.repository.runs.start(DEMO_CORP, mode="full", owner=dead_owner)
    elsewhere = ctx.repository.runs.start(DEMO_CORP, mode="full", owner="other-host:1")

    asyncio.run(app.run_import(ctx, None, mode="full"))

    assert ctx.repository.runs.get(left).status == "failed"
    assert "abandoned" in (ctx.repository.runs.get(left).reason or "")
    # Another host's run cannot be checked: it is left alone until it is implausibly old.
    assert ctx.repository.runs.get(elsewhere).status == "running"
    later = app.AppContext(
        ctx.settings,
        connectors=ctx.connectors,
        repository=ctx.repository,
        clock=lambda: datetime.now(UTC) + timedelta(hours=13),
    )
    assert app.abandon_stale_runs(later) == [elsewhere]
