"""`sigsci-iga serve` as real processes on real ports, against a loopback simulator.

One process on a SQLite file: scheduled imports pick up out-of-band changes, an API request
reaches the simulator, tokens and roles are enforced, SIGTERM stops it cleanly. Two processes
on one PostgreSQL database: each schedule fire runs once and each task is applied once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, create_app, serve_in_thread
from sigsci_iga.sim.state import SimState
from sigsci_iga.store import open_repository

KEY = "e2e-token-key-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(sim_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    env.update(
        SIGSCI_API_URL=sim_url,
        SIGSCI_EMAIL=DEMO_EMAIL,
        SIGSCI_TOKEN=DEMO_TOKEN,
        SIGSCI_CORP=DEMO_CORP,
        SIGSCI_IGA_DATABASE_URL=database_url,
        SIGSCI_IGA_TOKEN_KEY=KEY,
        SIGSCI_IGA_RETRY_BASE_SECONDS="0.2",
    )
    return env


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603  # our own module, fixed arguments
        [sys.executable, "-m", "sigsci_iga", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def token(env: dict[str, str], name: str, role: str) -> str:
    return cli(env, "tokens", "create", name, "--role", role).strip().splitlines()[-1]


@contextmanager
def serving(
    env: dict[str, str], log: Path, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  # our own module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", "serve", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _healthy(base), timeout=60)
            yield base, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=40)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError("timed out waiting")


def state_of(sim: FastAPI) -> SimState:
    state: SimState = sim.state.sim.state
    return state


def test_one_service_on_sqlite_imports_on_schedule_and_provisions_through_the_api(
    tmp_path: Path,
) -> None:
    sim = create_app(SimConfig(users=25, sites=5, seed=21))
    state = state_of(sim)
    with serve_in_thread(sim) as sim_url:
        env = environment(sim_url, f"sqlite:///{tmp_path}/iga.db")
        admin = {"Authorization": f"Bearer {token(env, 'ops', 'admin')}"}
        viewer = {"Authorization": f"Bearer {token(env, 'watcher', 'viewer')}"}
        with serving(env, tmp_path / "serve.log") as (base, process):
            api = httpx.Client(base_url=base + "/api/v1", timeout=30)
            assert api.get("/endpoints").status_code == 401
            for name, job in (("imports", "import"), ("retries", "provision")):
                made = api.post(
                    "/schedules", json={"name": name, "job": job, "every": "2s"}, headers=admin
                )
                assert made.status_code == 201, made.text

            wait_for(
                lambda: any(
                    r["status"] == "succeeded" for r in api.get("/runs", headers=admin).json()
                )
            )
            newcomer = "new.person@example.com"
            state.add_user(newcomer, "user", [next(iter(state.sites))])

            def listed() -> bool:
                found = api.get(f"/accounts?email={newcomer}", headers=viewer).json()["items"]
                return bool(found)

            wait_for(listed)

            email = next(
                u.email for u in state.users.values() if u.role == "user" and u.status == "active"
            )
            site = next(s for s in state.sites if s not in state.users[email].sites)
            refused = api.post(
                "/requests",
                json={"operation": "add_access", "email": email, "sites": [site]},
                headers=viewer,
            )
            assert refused.status_code == 403
            accepted = api.post(
                "/requests",
                json={"operation": "add_access", "email": email, "sites": [site]},
                headers=admin,
            )
            assert accepted.status_code == 202, accepted.text
            (task_id,) = accepted.json()["task_ids"]
            wait_for(
                lambda: (
                    api.get(f"/tasks/{task_id}", headers=admin).json()["task"]["state"]
                    == "completed"
                )
            )
            assert site in state.users[email].sites

            metrics = httpx.get(base + "/metrics", headers=admin, timeout=30).text
            assert (
                'sigsci_iga_schedule_last_success_timestamp_seconds{schedule="imports"}' in metrics
            )
            assert "@" not in metrics

            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            # uvicorn stops gracefully, then ends by the signal it was sent (as init expects).
            assert process.wait(timeout=40) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 30
    logged = (tmp_path / "serve.log").read_text()
    assert '"event": "service stopped"' in logged
    assert DEMO_TOKEN not in logged
    assert KEY not in logged
    assert admin["Authorization"].split()[-1] not in logged


@pytest.mark.postgres
def test_two_services_on_postgresql_run_each_fire_once_and_apply_each_task_once(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    sim = create_app(SimConfig(users=40, sites=6, seed=22))
    state = state_of(sim)
    with serve_in_thread(sim) as sim_url:
        env = environment(sim_url, fresh_pg_url)
        cli(env, "db", "upgrade")
        admin = {"Authorization": f"Bearer {token(env, 'ops', 'admin')}"}
        with ExitStack() as stack:
            bases = [
                stack.enter_context(serving(env, tmp_path / f"serve-{n}.log"))[0] for n in (1, 2)
            ]
            apis = [httpx.Client(base_url=b + "/api/v1", timeout=30) for b in bases]
            made = apis[0].post(
                "/schedules",
                json={"name": "imports", "job": "import", "every": "2s"},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            wait_for(
                lambda: any(
                    r["status"] == "succeeded" for r in apis[1].get("/runs", headers=admin).json()
                )
            )
            users = [u.email for u in state.users.values() if u.role == "user"][:12]
            pairs = []
            task_ids = []
            for n, email in enumerate(users):
                site = next(s for s in state.sites if s not in state.users[email].sites)
                pairs.append((email, site))
                accepted = apis[n % 2].post(
                    "/requests",
                    json={"operation": "add_access", "email": email, "sites": [site]},
                    headers=admin,
                )
                assert accepted.status_code == 202, accepted.text
                task_ids.extend(accepted.json()["task_ids"])

            def all_done() -> bool:
                tasks = [apis[0].get(f"/tasks/{t}", headers=admin).json()["task"] for t in task_ids]
                return all(t["state"] == "completed" for t in tasks)

            wait_for(all_done, timeout=90)
            time.sleep(5)  # let both schedulers tick a few more times

    with state.lock:
        adds = Counter(
            (e.msg_data["email"], e.msg_data["siteName"])
            for e in state.events
            if e.event_type == "userAddedToSite"
        )
    with open_repository(fresh_pg_url) as repo:
        for email, site in pairs:
            assert site in state.users[email].sites
        fires = repo.schedules.fires(repo.schedules.get("imports").id, limit=1000)
        runs = [f.summary.get("run_id") for f in fires if f.summary and f.status == "succeeded"]
        assert len(runs) >= 2
        assert len(runs) == len(set(runs)), "a fire ran twice"
        assert len({f.fire_at for f in fires}) == len(fires)
        journal = repo.journal.list(kind="call")
        writes = Counter(
            (line.task_id, line.method)
            for line in journal
            if line.method == "POST" and line.task_id in task_ids
        )
        assert all(n == 1 for n in writes.values()), writes
    assert all(adds[pair] == 1 for pair in pairs), adds


def test_several_processes_on_one_port_serve_the_api_and_the_first_applies_the_requests(
    tmp_path: Path,
) -> None:
    sim = create_app(SimConfig(users=25, sites=5, seed=23))
    state = state_of(sim)
    with serve_in_thread(sim) as sim_url:
        env = environment(sim_url, f"sqlite:///{tmp_path}/iga.db")
        admin = {"Authorization": f"Bearer {token(env, 'ops', 'admin')}"}
        log = tmp_path / "serve.log"
        with serving(env, log, "--workers", "3", "--no-scheduler") as (base, process):
            queued = httpx.post(
                base + "/api/v1/imports", json={"mode": "full"}, headers=admin, timeout=30
            )
            assert queued.status_code == 202, queued.text
            run = queued.json()["run_id"]
            wait_for(
                lambda: (
                    httpx.get(f"{base}/api/v1/runs/{run}", headers=admin, timeout=30).json()["run"][
                        "status"
                    ]
                    == "succeeded"
                )
            )

            def endpoints(_: int) -> int:
                # A new connection each time, so that any of the processes may accept it.
                return httpx.get(base + "/api/v1/endpoints", headers=admin, timeout=30).status_code

            with ThreadPoolExecutor(6) as pool:
                assert set(pool.map(endpoints, range(60))) == {200}

            users = [
                u.email
                for u in state.users.values()
                if u.role == "user" and u.status == "active" and len(u.sites) < len(state.sites)
            ][:6]
            assert len(users) == 6
            pairs, task_ids = [], []
            for email in users:
                site = next(s for s in state.sites if s not in state.users[email].sites)
                pairs.append((email, site))
                accepted = httpx.post(
                    base + "/api/v1/requests",
                    json={"operation": "add_access", "email": email, "sites": [site]},
                    headers=admin,
                    timeout=30,
                )
                assert accepted.status_code == 202, accepted.text
                task_ids.extend(accepted.json()["task_ids"])

            def all_done() -> bool:
                return all(
                    httpx.get(f"{base}/api/v1/tasks/{t}", headers=admin, timeout=30).json()["task"][
                        "state"
                    ]
                    == "completed"
                    for t in task_ids
                )

            wait_for(all_done, timeout=90)
            # Every process counts into one place: any of them reports the sum.
            metrics = httpx.get(base + "/metrics", headers=admin, timeout=30).text
            served = next(
                line
                for line in metrics.splitlines()
                if line.startswith("sigsci_iga_http_requests_total{")
                and 'route="/api/v1/endpoints"' in line
                and 'status="200"' in line
            )
            assert float(served.rsplit(" ", 1)[1]) == 60

            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert process.wait(timeout=40) == 0
            assert time.monotonic() - started < 30
    for email, site in pairs:
        assert site in state.users[email].sites
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started_children = [
        line["child"] for line in lines if line["event"] == "service process started"
    ]
    assert len(started_children) == 3
    answered_by = {line["pid"] for line in lines if line["event"] == "http request"}
    assert len(answered_by & set(started_children)) >= 2, "one process answered everything"
    applied_by = {line["pid"] for line in lines if "task_id" in line}
    assert applied_by <= {started_children[0]}
    assert sum(line["event"] == "service stopped" for line in lines) == 3
    assert not any(line["event"] == "service process died" for line in lines)


def test_a_service_process_that_dies_is_started_again(tmp_path: Path) -> None:
    sim = create_app(SimConfig(users=5, sites=2, seed=24))
    with serve_in_thread(sim) as sim_url:
        env = environment(sim_url, f"sqlite:///{tmp_path}/iga.db")
        log = tmp_path / "serve.log"

        def started() -> list[dict[str, Any]]:
            return [
                line
                for line in map(json.loads, log.read_text().splitlines())
                if line["event"] == "service process started"
            ]

        with serving(env, log, "--workers", "2") as (base, process):
            first = wait_for(lambda: len(started()) == 2 and started())
            os.kill(first[1]["child"], signal.SIGKILL)
            again = wait_for(lambda: len(started()) == 3 and started())
            assert again[2]["index"] == 1
            assert again[2]["child"] not in {line["child"] for line in first}
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=40) == 0
    died = [
        line
        for line in map(json.loads, log.read_text().splitlines())
        if line["event"] == "service process died"
    ]
    assert [(d["index"], d["code"]) for d in died] == [(1, -signal.SIGKILL)]
