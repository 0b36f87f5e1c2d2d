"""Exactly once under SIGKILL: `provision run` killed at random points, then run to the end.

The simulator serves on loopback in this process (30 ms per call, so kills land mid-batch); the
command runs as a real child process and is killed with SIGKILL after a seeded random delay,
counted from the moment it claimed its first tasks. A killed worker leaves its batch in progress
under a lease; the next run must reclaim it once the short lease runs out, re-read the account,
and send only what did not land.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
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
from sigsci_iga.store import Repository, open_repository

KILLS = 5
LEASE_SECONDS = "2"
SEED = 20_240_601


def claimed_entries(repo: Repository) -> int:
    return len(repo.journal.list(kind="claimed"))


def wait_for_claims(repo: Repository, before: int, child: subprocess.Popen[bytes]) -> bool:
    """Wait until the child claimed something (True), or exited first (False)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if claimed_entries(repo) > before:
            return True
        if child.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError("provision run claimed nothing within 20 s")


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_provision_run_applies_every_change_exactly_once_though_killed_again_and_again(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    corp = Corp.create(users=60, sites=8, seed=9, pending_share=0.0, latency_ms=30)
    rng = random.Random(SEED)
    repo = open_repository(url)
    with serve_in_thread(corp.app) as api_url:
        repo.endpoints.add(corp.endpoint, corp=corp.endpoint, api_url=api_url, email=DEMO_EMAIL)
        corp.import_(repo, mode="full")
        mix = build_mix(corp, rng, new_users=8, per_kind=7)
        ids = queue_mix(repo, corp.endpoint, mix)
        assert len(ids) >= 40
        env = cli_env(api_url, url, SIGSCI_IGA_RETRY_BASE_SECONDS="0.2")
        command = provision_command(
            "--until-done",
            "--max-wait",
            "20",
            "--lease-seconds",
            LEASE_SECONDS,
            "--batch-size",
            "5",
        )
        kills = mid_write = 0
        for _ in range(4 * KILLS):
            if kills >= KILLS and mid_write >= 2:
                break
            before = claimed_entries(repo)
            log = (tmp_path / f"run-{kills}.log").open("wb")
            child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            try:
                if wait_for_claims(repo, before, child):
                    time.sleep(rng.uniform(0.0, 0.6))
                if child.poll() is None:
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    # A kill between a write's intent and the task's end: did it land or not?
                    mid_write += any(t.write_sent for t in repo.tasks.list(state="in_progress"))
            finally:
                child.wait(timeout=30)
                log.close()
            if not repo.tasks.list(state=["new", "in_progress"]):
                break
        assert kills >= KILLS, f"only {kills} kills landed before the queue ran dry"
        assert mid_write >= 2, "fewer than two kills caught a task mid-write"

        # The final run starts while the last victim's lease is still live; it must wait for
        # it, reclaim the abandoned tasks, and finish the queue.
        final = subprocess.run(  # noqa: S603
            command, env=env, capture_output=True, text=True, timeout=90, check=False
        )
        assert final.returncode == 0, final.stdout + final.stderr

    tasks = {t.id: t for t in repo.tasks.list()}
    states = {i: tasks[i].state for i in ids}
    expected = {
        i: "no_action_required" if n in mix.no_ops else "completed" for n, i in enumerate(ids)
    }
    assert states == expected, final.stdout
    reclaimed = [
        e for e in repo.journal.list(kind="claimed") if e.detail and "reclaimed_from" in e.detail
    ]
    assert reclaimed, "no abandoned task was ever reclaimed"
    assert_applied_once(corp, mix)
    # The repository followed every task: imports find nothing to change.
    assert corp.import_(repo).diff.is_empty
    assert corp.import_(repo, mode="full").diff.is_empty
    repo.close()
