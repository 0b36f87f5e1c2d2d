"""The spool a streamed full import writes its diff to gives back exactly the parts it took."""

from __future__ import annotations

from datetime import UTC, datetime

from sigsci_iga.domain.diff import (
    AccountChange,
    Diff,
    EntitlementChange,
    FieldChange,
    LinkRef,
    NewEntitlement,
)
from sigsci_iga.domain.model import AccountSnapshot
from sigsci_iga.importer.spool import DiffSpool

PARTS = [
    Diff(
        accounts_added=(
            AccountSnapshot("a@x.io", "Ann", "admin", "pending", True, datetime(2020, 1, 2, 3)),
            AccountSnapshot(
                "b@x.io", created=datetime(2021, 5, 6, tzinfo=UTC), extra={"k": [1, {"n": None}]}
            ),
        ),
        accounts_changed=(AccountChange("c@x.io", (FieldChange("role", "user", "admin"),)),),
        links_added=(LinkRef("a@x.io", "Site", "www"), LinkRef("b@x.io", "CorpRole", "user")),
    ),
    Diff(),
    Diff(
        accounts_suspended=(AccountChange("d@x.io", (FieldChange("status", "active", "x"),)),),
        entitlements_added=(NewEntitlement("Site", "new", "New"),),
        entitlements_inactivated=(
            EntitlementChange("Site", "old", (FieldChange("status", "active", "inactive"),)),
        ),
        links_removed=(LinkRef("d@x.io", "Site", "www"),),
    ),
]


def test_parts_come_back_equal_in_order_and_empty_ones_are_not_kept() -> None:
    spool = DiffSpool()
    for part in PARTS:
        spool.add(part)

    assert list(spool) == [PARTS[0], PARTS[2]]
    assert list(spool) == [PARTS[0], PARTS[2]]
    assert spool.parts == 2
    summary = spool.summary()
    assert summary["accounts"] == {"added": 2, "changed": 1, "suspended": 1, "reactivated": 0}
    assert summary["links"] == {"added": 2, "removed": 1}
    assert summary["Site"]["inactivated"] == 1
    spool.close()


def test_a_cleared_spool_forgets_every_part() -> None:
    spool = DiffSpool()
    spool.add(PARTS[0])

    spool.clear()
    spool.add(PARTS[2])

    assert list(spool) == [PARTS[2]]
    assert spool.summary()["accounts"]["added"] == 0
    spool.close()
