"""What the worker costs the database: SQL statements per finished task, counted, not timed.

A batch is claimed, journaled, written and finished in a fixed number of transactions (plus one
per later step of a multi-step task), so a bigger batch of the same writes costs no more
statements and the count per task falls as batches grow. Before batching it was ~28 statements
per task on PostgreSQL and ~36 on SQLite, whatever the batch.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from prov_harness import FAST, Corp, build_mix, queue_mix, site_entry

from sigsci_iga.provisioning.worker import RunSummary
from sigsci_iga.store import Repository

T = TypeVar("T")
ONE_BATCH = replace(FAST, batch_size=200)


@pytest.fixture
def corp() -> Corp:
    """90 users over 8 sites: enough distinct accounts for two batches of grants."""
    return Corp.create(users=90, sites=8, seed=5, pending_share=0.0)


@contextmanager
def counting(engine: sa.Engine) -> Iterator[Counter[str]]:
    """Every statement the engine sends to the database while inside, by its first word."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen[statement.split(None, 1)[0].upper()] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def statements(repo: Repository, run: Callable[[], T]) -> tuple[T, int]:
    with counting(repo.engine) as seen:
        result = run()
    return result, sum(seen.values())


def queue_grants(repo: Repository, corp: Corp, people: list[str], count: int) -> None:
    """`count` site grants for the next `count` people, spread over every site in turn."""
    access, sites = corp.all_access(), corp.sites()
    for index in range(count):
        email = people.pop()
        missing = [s for s in sites if s not in access[email][1]]
        wanted = sites[index % len(sites)]
        repo.tasks.create(
            corp.endpoint,
            "add_access",
            email,
            site_entry(wanted if wanted in missing else missing[0]),
        )


def ended(summary: RunSummary) -> int:
    return summary.completed + summary.no_action_required + summary.failed


def test_a_bigger_batch_of_site_grants_costs_no_more_statements(
    imported: Repository, corp: Corp
) -> None:
    people = sorted(
        email
        for email, (role, sites) in corp.all_access().items()
        if role != "owner" and not email.endswith("@testcorp.example") and len(sites) < 8
    )
    assert len(people) >= 64

    queue_grants(imported, corp, people, 16)
    (small, _), small_count = statements(imported, lambda: corp.work(imported, ONE_BATCH))
    queue_grants(imported, corp, people, 48)
    (large, calls), large_count = statements(imported, lambda: corp.work(imported, ONE_BATCH))

    assert (small.completed, small.batches, large.completed, large.batches) == (16, 1, 48, 1)
    assert calls["POST /api/v0/corps/{corp}/sites/{site}/members"] == 8
    # Three times the tasks, the same eight shared writes: the same statements, give or take
    # the odd grouping of account updates.
    assert large_count <= small_count + 4, (small_count, large_count)
    assert large_count / large.completed <= 1.5, large_count
    assert all(report.intact for report in imported.journal.verify())


def test_a_mixed_queue_of_every_operation_stays_within_five_statements_per_task(
    imported: Repository, corp: Corp
) -> None:
    mix = build_mix(corp, random.Random(3), new_users=8, per_kind=7)
    queued = queue_mix(imported, corp.endpoint, mix)

    (summary, _), count = statements(
        imported, lambda: corp.work(imported, until_done=True, max_wait_seconds=30)
    )

    assert ended(summary) == len(queued)
    assert count / ended(summary) <= 5, (count, ended(summary))
    assert all(report.intact for report in imported.journal.verify())


def test_several_grants_per_account_go_in_one_batch_at_the_same_statements_per_task(
    imported: Repository, corp: Corp
) -> None:
    access, sites = corp.all_access(), corp.sites()
    people = sorted(
        email
        for email, (role, held) in access.items()
        if role != "owner" and not email.endswith("@testcorp.example") and len(held) <= 4
    )[:12]
    assert len(people) == 12
    queued = 0
    for index, email in enumerate(people):
        missing = [s for s in sites if s not in access[email][1]]
        for site in (missing * 2)[index % len(missing) :][:4]:
            imported.tasks.create(corp.endpoint, "add_access", email, site_entry(site))
            queued += 1

    (summary, calls), count = statements(imported, lambda: corp.work(imported, ONE_BATCH))

    # One batch, not four (one per account before): at most one members call per site.
    assert (summary.completed, summary.batches) == (queued, 1)
    assert calls["POST /api/v0/corps/{corp}/sites/{site}/members"] <= len(sites)
    assert count / queued <= 1.5, (count, queued)
    assert all(report.intact for report in imported.journal.verify())
