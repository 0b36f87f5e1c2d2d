"""Chaos: a mixed queue worked through a simulator that fails about one call in five.

Six fault rules (throttling as 429 and as 400, 500, 524, a dropped connection after the write
landed, a truncated body) each hit any API call, reads and writes alike, with a small probability.
Every task must still end completed (or no action required), no change may be applied twice, and
the corp must end exactly as the queue says.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from prov_harness import FAST, Corp, assert_applied_once, build_mix, queue_mix

from sigsci_iga.sim import FaultKind, FaultRule
from sigsci_iga.store import Repository

KINDS = (
    FaultKind.THROTTLE_429,
    FaultKind.THROTTLE_400,
    FaultKind.ERROR_500,
    FaultKind.ERROR_524,
    FaultKind.DROP,
    FaultKind.TRUNCATE,
)
#: Six independent rules at 3.5 % each: about 19 % of calls fail one way or another.
PROBABILITY = 0.035
#: Small batches: more calls (so more faults), while add-access tasks still share bulk calls.
OPTIONS = replace(FAST, batch_size=6)


@pytest.fixture
def corp() -> Corp:
    """60 users, so every task of the mix touches a different existing account."""
    return Corp.create(users=60, sites=8, seed=13, pending_share=0.0)


def test_every_task_completes_once_under_a_fifth_of_calls_failing(
    imported: Repository, corp: Corp
) -> None:
    mix = build_mix(corp, random.Random(77), new_users=12, per_kind=10)
    ids = queue_mix(imported, corp.endpoint, mix)
    assert len(ids) >= 55
    corp.runtime.faults.replace(
        [
            # Certain: a write lands and its reply is lost, for an invite, a bulk add, a PATCH.
            FaultRule(kind=FaultKind.DROP, method="POST", path="/invite$", count=1),
            FaultRule(kind=FaultKind.DROP, method="POST", path="/members$", count=1),
            FaultRule(kind=FaultKind.TRUNCATE, method="PATCH", count=1),
            *(FaultRule(kind=k, probability=PROBABILITY) for k in KINDS),
        ]
    )
    corp.runtime.calls.reset()

    summary, client_calls = corp.work(imported, OPTIONS, until_done=True, max_wait_seconds=60)

    fired = corp.runtime.faults.fired
    total = corp.runtime.calls.total()
    assert corp.runtime.faults.rules == [
        FaultRule(kind=k, probability=PROBABILITY) for k in KINDS
    ], "a one-shot fault never fired"
    corp.runtime.faults.clear()
    assert sum(fired.values()) >= total * 0.12, (fired, total)
    assert len(fired) >= 5, fired
    # Writes saw faults too, not only reads: some write calls failed and were recovered.
    failed_writes = Counter(
        e.method
        for e in imported.journal.list(kind="call")
        if e.method != "GET" and (e.error is not None or (e.status or 0) >= 400)
    )
    assert sum(failed_writes.values()) >= 3, failed_writes
    states = {t.id: t.state for t in imported.tasks.list()}
    expected = {
        i: "no_action_required" if n in mix.no_ops else "completed" for n, i in enumerate(ids)
    }
    assert states == expected, summary
    assert summary.failed == 0
    assert summary.rescheduled > 0, "no fault ever cost an attempt; the test proves nothing"
    assert sum(client_calls.values()) == total
    assert_applied_once(corp, mix)
    assert corp.import_(imported).diff.is_empty
    assert corp.import_(imported, mode="full").diff.is_empty
