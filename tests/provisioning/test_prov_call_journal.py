"""The journal holds each API call once, under the task that sent it, however workers share a
connector."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

from prov_harness import FAST, Corp

from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.provisioning.worker import Worker
from sigsci_iga.store import Repository

#: One task per batch, so no read is shared between tasks and every call has one journal row.
ONE_AT_A_TIME = replace(FAST, batch_size=1)


def queue_role_changes_and_site_grants(repo: Repository, corp: Corp) -> list[int]:
    """Three role changes and three site grants, for six different non-owners."""
    people = [
        (email, sites)
        for email, (role, sites) in corp.all_access().items()
        if role == "user" and not email.endswith("@testcorp.example")
    ][:6]
    assert len(people) == 6
    ids = []
    for email, _ in people[:3]:
        ids.append(repo.tasks.create(corp.endpoint, "update_account", email, {"role": "admin"}).id)
    for email, held in people[3:]:
        site = next(s for s in corp.sites() if s not in held)
        params = {"entitlement_type": "Site", "value": site}
        ids.append(repo.tasks.create(corp.endpoint, "add_access", email, params).id)
    return ids


def test_two_workers_sharing_one_connector_journal_every_call_exactly_once(
    imported: Repository, corp: Corp
) -> None:
    ids = queue_role_changes_and_site_grants(imported, corp)
    corp.runtime.calls.reset()

    async def main() -> Counter[str]:
        async with corp.client() as client:
            connector = SignalSciencesConnector(client)
            workers = [
                Worker(imported, corp.endpoint, connector, options=ONE_AT_A_TIME, worker_id=name)
                for name in ("first", "second")
            ]
            summaries = await asyncio.gather(*(w.run() for w in workers))
            assert sum(s.completed for s in summaries) == len(ids)
            assert all(s.claimed for s in summaries), "both workers took a share"
            return Counter(client.calls)

    sent = asyncio.run(main())

    rows = imported.journal.list(kind="call")
    assert len(rows) == sum(sent.values()) == corp.runtime.calls.total()
    assert Counter(str(r.method) for r in rows) == Counter(k.split()[0] for k in sent.elements())
    for task_id in ids:
        # A task's journal shows its own write, once: not its sibling's, not a copy.
        written = [
            (r.method, r.path)
            for r in imported.journal.list(task_id=task_id, kind="call")
            if r.method != "GET"
        ]
        intended = [
            (r.method, r.path) for r in imported.journal.list(task_id=task_id, kind="intent")
        ]
        assert written == intended
