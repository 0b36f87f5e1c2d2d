"""Two `provision run` processes at once on PostgreSQL never work the same task.

The store's SKIP LOCKED claim is unit-tested in tests/store; here two real processes race over
one queue of about a hundred tasks against a loopback simulator, and the journal and the simulator
must show every task claimed once per attempt and every write sent once.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from prov_harness import (
    Corp,
    assert_applied_once,
    build_mix,
    cli_env,
    provision_command,
    queue_mix,
)

from sigsci_iga.sim import DEMO_EMAIL, serve_in_thread
from sigsci_iga.store import open_repository


@pytest.mark.postgres
def test_two_provision_runs_at_once_never_work_the_same_task(pg_url: str, tmp_path: Path) -> None:
    corp = Corp.create(users=150, sites=10, seed=21, pending_share=0.0, latency_ms=15)
    repo = open_repository(pg_url)
    with serve_in_thread(corp.app) as api_url:
        repo.endpoints.add(corp.endpoint, corp=corp.endpoint, api_url=api_url, email=DEMO_EMAIL)
        corp.import_(repo, mode="full")
        mix = build_mix(corp, random.Random(3), new_users=20, per_kind=20)
        ids = queue_mix(repo, corp.endpoint, mix)
        assert len(ids) >= 100
        corp.runtime.calls.reset()
        env = cli_env(api_url, pg_url, SIGSCI_IGA_RETRY_BASE_SECONDS="0.2")
        command = provision_command("--until-done", "--max-wait", "20", "--batch-size", "8")
        logs = [(tmp_path / f"worker-{n}.log").open("w+") for n in (1, 2)]
        children = [
            subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)  # noqa: S603
            for log in logs
        ]
        codes = [child.wait(timeout=120) for child in children]
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
        assert codes == [0, 0], outputs
    sim_calls = corp.runtime.calls.snapshot()

    tasks = {t.id: t for t in repo.tasks.list()}
    expected = {
        i: "no_action_required" if n in mix.no_ops else "completed" for n, i in enumerate(ids)
    }
    assert {i: tasks[i].state for i in ids} == expected, outputs

    claims: dict[int, list[int]] = defaultdict(list)
    workers: Counter[str] = Counter()
    for entry in repo.journal.list(kind="claimed"):
        assert entry.task_id is not None
        assert entry.attempt is not None
        assert entry.detail is not None
        claims[entry.task_id].append(entry.attempt)
        workers[str(entry.detail["worker"])] += 1
        assert "reclaimed_from" not in entry.detail
    # Exactly one claim per attempt, by one of the two processes; both took a share.
    for task_id in ids:
        assert claims[task_id] == list(range(1, tasks[task_id].attempts + 1)), task_id
    assert len(workers) == 2, workers
    assert min(workers.values()) >= 5, workers
    # Each task's journal belongs to the worker that claimed it: its lines are not interleaved
    # with another worker's claim of the same task.
    for task_id in ids:
        kinds = [e.kind for e in repo.journal.list(task_id=task_id)]
        assert kinds.count("claimed") == tasks[task_id].attempts
        assert kinds[0] == "requested"
        assert kinds[-1] == "state"

    # The simulator saw each write once.
    assert_applied_once(corp, mix)
    assert sim_calls.get("POST /corps/{corp}/users/{email}/invite") == sum(mix.invites.values())
    assert sim_calls.get("PATCH /corps/{corp}/users/{email}") == sum(mix.role_changes.values())
    assert sim_calls.get("DELETE /corps/{corp}/users/{email}") == sum(mix.removals.values())
    assert sim_calls.get("DELETE /corps/{corp}/sites/{site}/members/{email}") == sum(
        mix.site_removals.values()
    )
    site_grants = sum(
        1 for op, _, p in mix.tasks if op == "add_access" and p.get("entitlement_type") == "Site"
    )
    assert sim_calls.get("POST /corps/{corp}/sites/{site}/members", 0) <= site_grants
    repo.close()
