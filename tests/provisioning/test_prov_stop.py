"""A worker told to stop claims no more; one cancelled mid-batch hands its tasks back at once."""

from __future__ import annotations

import asyncio
import contextlib

from prov_harness import FAST, Corp

from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.tasks import TaskState
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import Worker
from sigsci_iga.store import Repository


def _queue_role_changes(repo: Repository, corp: Corp, n: int) -> list[int]:
    users = corp.users_by_role("user")[:n]
    return [
        repo.tasks.create(
            corp.endpoint,
            "update_account",
            email,
            build_params(repo, corp.endpoint, "update_account", role="observer"),
        ).id
        for email in users
    ]


def test_a_worker_asked_to_stop_claims_nothing_more(imported: Repository, corp: Corp) -> None:
    ids = _queue_role_changes(imported, corp, 3)

    async def main() -> int:
        async with corp.client() as client:
            worker = Worker(imported, corp.endpoint, SignalSciencesConnector(client), options=FAST)
            summary = await worker.run(should_stop=lambda: True)
            return summary.claimed

    assert asyncio.run(main()) == 0
    assert {imported.tasks.get(t).state for t in ids} == {TaskState.NEW}


def test_a_worker_cancelled_mid_batch_releases_its_tasks_without_counting_the_attempt(
    imported: Repository, corp: Corp
) -> None:
    ids = _queue_role_changes(imported, corp, 2)
    # Every write hangs long enough for the cancellation to land while it is in flight.
    corp.add_fault(kind="latency", method="PATCH", latency_ms=5000)

    async def main() -> None:
        async with corp.client() as client:
            worker = Worker(
                imported,
                corp.endpoint,
                SignalSciencesConnector(client),
                options=FAST,
                worker_id="stopping-worker",
            )
            running = asyncio.create_task(worker.run())
            # Polling the repository is how a second process would see it, too.
            while not any(imported.tasks.get(t).write_sent for t in ids):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    asyncio.run(main())

    tasks = [imported.tasks.get(t) for t in ids]
    assert {t.state for t in tasks} == {TaskState.NEW}
    assert {t.lease_owner for t in tasks} == {None}
    assert {t.attempts for t in tasks} == {0}
    notes = [e for e in imported.journal.list(kind="note") if e.task_id in ids]
    assert {e.detail["action"] for e in notes if e.detail} == {"release"}

    corp.runtime.faults.clear()
    summary, _ = corp.work(imported)
    assert summary.completed + summary.no_action_required == 2
    assert {corp.state.get_user(t.email).role for t in tasks} == {"observer"}  # type: ignore[union-attr]
