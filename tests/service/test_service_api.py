"""The HTTP API: tokens and roles on every route, use cases through the application layer."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from service_harness import ROLES, Service, running_service

from sigsci_iga import app
from sigsci_iga.app.access import ROLE_PERMISSIONS, Permission, Role
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.service import ServiceRuntime
from sigsci_iga.service.processes import WakePipe

#: What every route needs, written out by hand: the test checks the code against it.
NEEDS: dict[tuple[str, str], Permission] = {
    ("GET", "/api/v1/endpoints"): Permission.READ,
    ("GET", "/api/v1/endpoints/{name}"): Permission.READ,
    ("GET", "/api/v1/accounts"): Permission.READ,
    ("GET", "/api/v1/accounts/{endpoint}/{email}"): Permission.READ,
    ("GET", "/api/v1/entitlements"): Permission.READ,
    ("GET", "/api/v1/identities"): Permission.READ,
    ("POST", "/api/v1/imports"): Permission.RUN_IMPORT,
    ("GET", "/api/v1/runs"): Permission.READ,
    ("GET", "/api/v1/runs/{run_id}"): Permission.READ,
    ("POST", "/api/v1/runs/{run_id}/approve"): Permission.APPROVE_RUN,
    ("POST", "/api/v1/runs/{run_id}/refuse"): Permission.APPROVE_RUN,
    ("POST", "/api/v1/requests"): Permission.REQUEST,
    ("GET", "/api/v1/tasks"): Permission.READ,
    ("GET", "/api/v1/tasks/{task_id}"): Permission.READ,
    ("POST", "/api/v1/tasks/{task_id}/retry"): Permission.MANAGE_TASKS,
    ("POST", "/api/v1/tasks/{task_id}/discontinue"): Permission.MANAGE_TASKS,
    ("GET", "/api/v1/journal"): Permission.READ,
    ("GET", "/api/v1/journal/export"): Permission.READ,
    ("GET", "/api/v1/schedules"): Permission.READ,
    ("GET", "/api/v1/schedules/{schedule_id}"): Permission.READ,
    ("POST", "/api/v1/schedules"): Permission.MANAGE_SCHEDULES,
    ("PATCH", "/api/v1/schedules/{schedule_id}"): Permission.MANAGE_SCHEDULES,
    ("DELETE", "/api/v1/schedules/{schedule_id}"): Permission.MANAGE_SCHEDULES,
    ("POST", "/api/v1/schedules/{schedule_id}/run"): Permission.MANAGE_SCHEDULES,
    ("GET", "/api/v1/tokens"): Permission.MANAGE_TOKENS,
    ("POST", "/api/v1/tokens"): Permission.MANAGE_TOKENS,
    ("DELETE", "/api/v1/tokens/{name}"): Permission.MANAGE_TOKENS,
    ("GET", "/metrics"): Permission.READ_METRICS,
}
OPEN = {("GET", "/healthz"), ("GET", "/readyz")}
SAMPLE = {"name": "nosuch", "endpoint": "testcorp", "email": "x@example.com"}


@pytest.fixture
def service(repo_url: str) -> Iterator[Service]:
    with running_service(repo_url) as running:
        yield running


def _routes(service: Service) -> list[tuple[str, str]]:
    """Every documented route (the OpenAPI document lists what the app serves)."""
    paths = service.api.openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _concrete(path: str) -> str:
    for name, value in SAMPLE.items():
        path = path.replace("{" + name + "}", value)
    return path.replace("{run_id}", "1").replace("{task_id}", "1").replace("{schedule_id}", "1")


def test_every_route_is_in_the_permission_table(service: Service) -> None:
    assert set(_routes(service)) - OPEN == set(NEEDS)


def test_every_role_meets_every_route_as_the_role_table_says(service: Service) -> None:
    for (method, path), needed in NEEDS.items():
        url = _concrete(path)
        anonymous = service.client.request(method, url, json={})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.headers["content-type"] == "application/problem+json"
        wrong = service.client.request(
            method, url, json={}, headers={"Authorization": "Bearer sigsci_iga_nope"}
        )
        assert wrong.status_code == 401, (method, path)
        for role in ROLES:
            answer = service.client.request(method, url, json={}, headers=service.headers(role))
            allowed = needed in ROLE_PERMISSIONS[Role(role)]
            if allowed:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
            else:
                assert answer.status_code == 403, (method, path, role)


def test_health_needs_no_token_and_readiness_checks_the_database(service: Service) -> None:
    assert service.client.get("/healthz").json() == {"status": "ok"}
    assert service.client.get("/readyz").json() == {"status": "ok"}


def _wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def _imported(service: Service) -> None:
    accepted = service.post("/api/v1/imports", json={"mode": "full"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]

    def done() -> bool:
        run = service.get(f"/api/v1/runs/{run_id}").json()["run"]
        return bool(run["status"] != "running")

    _wait_for(done)
    assert service.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] == "succeeded"


def test_an_import_is_accepted_at_once_and_its_run_followed_to_the_end(service: Service) -> None:
    _imported(service)

    emails = {a["email"] for a in service.get("/api/v1/accounts?limit=1000").json()["items"]}
    assert emails == set(service.state.users)


def test_a_dry_runs_itemised_plan_is_served_as_the_cli_shows_it(service: Service) -> None:
    _imported(service)
    leaver = next(u.email for u in service.state.users.values() if u.role == "user")
    service.state.remove_user(leaver)
    accepted = service.post("/api/v1/imports", json={"mode": "full", "dry_run": True})
    run_id = accepted.json()["run_id"]

    def finished() -> Any:
        detail = service.get(f"/api/v1/runs/{run_id}").json()
        return detail if detail["run"]["status"] != "running" else None

    detail = _wait_for(finished)

    assert (detail["run"]["dry_run"], detail["run"]["status"]) == (True, "succeeded")
    plan = detail["plan"]
    assert plan["counts"]["suspend_account"] == 1
    (suspended,) = [i for i in plan["items"] if i["action"] == "suspend_account"]
    assert suspended["key"] == leaver
    assert suspended["changes"] == [{"field": "status", "old": "active", "new": "suspended"}]
    assert {i["key"] for i in plan["items"] if i["action"] == "remove_link"} == {leaver}


def test_a_request_is_accepted_at_once_and_the_worker_applies_it(service: Service) -> None:
    _imported(service)
    email = next(u.email for u in service.state.users.values() if u.role == "user")
    site = next(s for s in service.state.sites if s not in service.state.users[email].sites)

    accepted = service.post(
        "/api/v1/requests",
        role="requester",
        json={"operation": "add_access", "email": email, "sites": [site], "justification": "t"},
        headers={"X-Request-ID": "req-from-caller-1"},
    )

    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["request_id"] == "req-from-caller-1"
    (task_id,) = accepted.json()["task_ids"]

    def completed() -> bool:
        state = service.get(f"/api/v1/tasks/{task_id}").json()["task"]["state"]
        return bool(state == TaskState.COMPLETED.value)

    _wait_for(completed)
    assert site in service.state.users[email].sites
    detail = service.get(f"/api/v1/tasks/{task_id}").json()
    assert detail["task"]["requester"] == "token:requester-bot"
    assert {line["request_id"] for line in detail["journal"]} == {"req-from-caller-1"}


def test_a_request_recorded_by_another_service_process_wakes_this_ones_worker(
    repo_url: str,
) -> None:
    peers = WakePipe()
    # Left alone, this worker would look for tasks again in an hour: only the pipe can wake it.
    with running_service(repo_url, peers=peers, worker_poll_seconds=3600) as leader:
        _imported(leader)
        email = next(u.email for u in leader.state.users.values() if u.role == "user")
        site = next(s for s in leader.state.sites if s not in leader.state.users[email].sites)
        # Another process of `serve --workers N`: it serves the API but runs no worker.
        other = ServiceRuntime(leader.ctx, run_worker=False, run_scheduler=False, peers=peers)
        outcome = app.submit_request(
            leader.ctx, None, app.AccessRequest(Operation.ADD_ACCESS, email, sites=(site,))
        )
        (task,) = outcome.tasks

        def state() -> str:
            return str(leader.get(f"/api/v1/tasks/{task.id}").json()["task"]["state"])

        time.sleep(1.0)
        assert state() == TaskState.NEW.value
        other.wake_worker()
        _wait_for(lambda: state() == TaskState.COMPLETED.value)
        assert site in leader.state.users[email].sites


def test_requests_submitted_at_once_are_all_accepted_without_a_deadlock(service: Service) -> None:
    # On PostgreSQL each submission inserts tasks (a KEY SHARE lock on the endpoint row, for the
    # foreign key) and then locks the endpoint row for its journal head: FOR UPDATE there made
    # two concurrent submissions deadlock, and the service dropped their connections.
    _imported(service)
    users = [u.email for u in service.state.users.values() if u.role == "user"][:12]
    bodies = [
        {"operation": "update_account", "email": email, "role": "observer"} for email in users
    ] * 2

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: service.post("/api/v1/requests", json=body), bodies))

    assert [a.status_code for a in answers] == [202] * len(bodies), [
        a.text for a in answers if a.status_code != 202
    ]
    task_ids = [t for a in answers for t in a.json()["task_ids"]]
    assert len(set(task_ids)) == len(bodies)


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    service: Service,
) -> None:
    _imported(service)
    email = next(u.email for u in service.state.users.values() if u.role == "user")
    body = {"operation": "update_account", "email": email, "role": "observer"}
    key = {"Idempotency-Key": "k-1"}

    first = service.post("/api/v1/requests", json=body, headers=key)
    again = service.post("/api/v1/requests", json=body, headers=key)
    other = service.post("/api/v1/requests", json={**body, "role": "admin"}, headers=key)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert len(service.get(f"/api/v1/tasks?email={email}").json()) == 1


@contextmanager
def _statements(service: Service) -> Iterator[list[str]]:
    """The SQL statements the API sends while the block runs (not the worker's polling)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name != "sigsci-iga-jobs":
            seen.append(statement)

    engine = service.ctx.repository.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_an_accounts_page_costs_the_same_statements_whatever_its_size_or_filter(
    service: Service,
) -> None:
    _imported(service)
    site = next(iter(service.state.sites))
    service.get("/api/v1/accounts?limit=1")  # the token's first use is recorded, once
    costs = {}
    for query in ("limit=2", "limit=30", f"limit=2&site={site}", f"limit=30&site={site}"):
        with _statements(service) as seen:
            page = service.get(f"/api/v1/accounts?{query}")
        assert page.status_code == 200, page.text
        # Neither the page's sites nor the filter's check may read every site or link.
        assert not any("count(" in s.lower() for s in seen), seen
        costs[query] = len(seen)
    assert costs["limit=2"] == costs["limit=30"]
    assert costs[f"limit=2&site={site}"] == costs[f"limit=30&site={site}"]


def test_a_request_reads_only_the_sites_it_names(service: Service) -> None:
    _imported(service)
    email = next(u.email for u in service.state.users.values() if u.role == "user")
    site = next(s for s in service.state.sites if s not in service.state.users[email].sites)
    body = {"operation": "add_access", "email": email, "sites": [site]}
    service.get("/api/v1/accounts?limit=1")  # the token's first use is recorded, once
    with _statements(service) as seen:
        accepted = service.post("/api/v1/requests", json=body)
    assert accepted.status_code == 202, accepted.text
    assert not any("count(" in s.lower() for s in seen), seen
    refused = service.post("/api/v1/requests", json={**body, "sites": [site + "x"]})
    assert refused.status_code == 422
    assert "did you mean" in refused.json()["detail"]


def test_errors_are_problem_details_with_the_status_of_the_error_table(service: Service) -> None:
    missing = service.get("/api/v1/tasks/999")
    invalid = service.post("/api/v1/requests", json={"operation": "bogus", "email": "x"})
    unknown_field = service.post("/api/v1/imports", json={"mode": "full", "typo": 1})
    huge_id = service.get("/api/v1/tasks/99999999999999999999")

    assert (missing.status_code, missing.json()["code"]) == (404, "RecordNotFoundError")
    assert missing.headers["content-type"] == "application/problem+json"
    assert invalid.status_code == 422
    assert invalid.json()["errors"]
    assert unknown_field.status_code == 422
    assert huge_id.status_code == 422


def test_accounts_page_with_a_cursor_to_the_last_page(service: Service) -> None:
    _imported(service)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = service.get("/api/v1/accounts" + query).json()
        seen.extend(a["email"] for a in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(service.state.users)
    assert service.get("/api/v1/accounts?cursor=%%%").status_code == 422


def test_the_journal_exports_as_streamed_json_and_csv(service: Service) -> None:
    _imported(service)
    email = next(u.email for u in service.state.users.values() if u.role == "user")
    (task_id,) = service.post(
        "/api/v1/requests", json={"operation": "update_account", "email": email, "role": "admin"}
    ).json()["task_ids"]
    # The worker is writing the journal too: export once the task is done.
    _wait_for(lambda: service.get(f"/api/v1/tasks/{task_id}").json()["task"]["finished_at"])
    lines = service.get("/api/v1/journal").json()
    exported = json.loads(service.get("/api/v1/journal/export?format=json").text)
    table = list(csv.DictReader(io.StringIO(service.get("/api/v1/journal/export?format=csv").text)))

    assert [line["id"] for line in exported] == [line["id"] for line in lines]
    assert [int(row["id"]) for row in table] == [line["id"] for line in lines]


def test_metrics_count_calls_by_template_and_never_name_an_email(service: Service) -> None:
    _imported(service)
    text = service.get("/metrics").text

    assert (
        'sigsci_iga_target_calls_total{method="GET",status="200",'
        'template="/api/v0/corps/{corp}/users"}'
    ) in text
    assert 'sigsci_iga_tasks{operation="add_access",state="failed"} 0.0' in text
    assert "@" not in text
    assert service.get("/metrics", role="viewer").status_code == 200


def test_schedules_are_added_listed_changed_run_and_removed_through_the_api(
    service: Service,
) -> None:
    added = service.post(
        "/api/v1/schedules", json={"name": "hourly", "job": "import", "every": "1h"}
    )
    assert added.status_code == 201, added.text
    schedule_id = added.json()["id"]
    assert [s["name"] for s in service.get("/api/v1/schedules").json()] == ["hourly"]
    changed = service.client.patch(
        f"/api/v1/schedules/{schedule_id}", json={"every": "15m"}, headers=service.headers()
    )
    assert changed.json()["every"] == "15m"
    queued = service.post(f"/api/v1/schedules/{schedule_id}/run")
    assert queued.status_code == 202
    assert queued.json()["trigger"] == "manual"
    removed = service.client.delete(f"/api/v1/schedules/{schedule_id}", headers=service.headers())
    assert removed.status_code == 204
    assert service.get("/api/v1/schedules").json() == []


def test_an_admin_creates_lists_and_revokes_tokens_and_a_revoked_token_fails(
    service: Service,
) -> None:
    created = service.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    listed = service.get("/api/v1/tokens").json()
    assert all("token" not in entry for entry in listed)
    assert token not in json.dumps(listed)
    assert {t["name"] for t in listed} >= {"ci", "admin-bot"}
    as_ci = {"Authorization": f"Bearer {token}"}
    assert service.client.get("/api/v1/endpoints", headers=as_ci).status_code == 200

    revoked = service.client.delete("/api/v1/tokens/ci", headers=service.headers())

    assert revoked.json()["state"] == "revoked"
    assert service.client.get("/api/v1/endpoints", headers=as_ci).status_code == 401
