"""An import's diff as an itemised plan: one item per account, entitlement or link change."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sigsci_iga.domain.diff import AccountChange, Diff, EntitlementChange, FieldChange
from sigsci_iga.domain.model import JsonValue

#: Order of the actions in a plan: additions first, then changes, then removals.
ACTIONS: tuple[str, ...] = (
    "add_account",
    "reactivate_account",
    "change_account",
    "suspend_account",
    "add_entitlement",
    "reactivate_entitlement",
    "change_entitlement",
    "inactivate_entitlement",
    "add_link",
    "remove_link",
)


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One change: what happens (`action`) to which object, with each field's old and new value."""

    action: str
    object: str
    key: str
    changes: tuple[FieldChange, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "action": self.action,
            "object": self.object,
            "key": self.key,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
        }


def _account(action: str, change: AccountChange) -> PlanItem:
    return PlanItem(action, "account", change.email, change.changes)


def _entitlement(action: str, change: EntitlementChange) -> PlanItem:
    return PlanItem(action, change.type, change.value, change.changes)


def plan_items(diff: Diff) -> Iterator[PlanItem]:
    """Every change of the diff, in `ACTIONS` order, each group sorted by key."""
    for snapshot in sorted(diff.accounts_added, key=lambda a: a.email):
        fields = snapshot.field_values()
        yield PlanItem(
            "add_account",
            "account",
            snapshot.email,
            tuple(FieldChange(name, None, fields[name]) for name in ("name", "role", "status")),
        )
    for action, group in (
        ("reactivate_account", diff.accounts_reactivated),
        ("change_account", diff.accounts_changed),
        ("suspend_account", diff.accounts_suspended),
    ):
        yield from (_account(action, c) for c in sorted(group, key=lambda c: c.email))
    for new in sorted(diff.entitlements_added, key=lambda e: (e.type, e.value)):
        yield PlanItem(
            "add_entitlement",
            new.type,
            new.value,
            (FieldChange("display_name", None, new.display_name),),
        )
    for action, entitlements in (
        ("reactivate_entitlement", diff.entitlements_reactivated),
        ("change_entitlement", diff.entitlements_changed),
        ("inactivate_entitlement", diff.entitlements_inactivated),
    ):
        ordered = sorted(entitlements, key=lambda e: (e.type, e.value))
        yield from (_entitlement(action, e) for e in ordered)
    # A link's item is keyed by its account; the entitlement it gains or loses is the change.
    for link in sorted(diff.links_added):
        yield PlanItem("add_link", "link", link.email, (FieldChange(link.type, None, link.value),))
    for link in sorted(diff.links_removed):
        yield PlanItem(
            "remove_link", "link", link.email, (FieldChange(link.type, link.value, None),)
        )


def plan_json(diff: Diff, *, limit: int | None = None) -> dict[str, Any]:
    """The plan as JSON: counts per action, and the items (the first `limit`, if given)."""
    counts = dict.fromkeys(ACTIONS, 0)
    items: list[dict[str, JsonValue]] = []
    for item in plan_items(diff):
        counts[item.action] += 1
        if limit is None or len(items) < limit:
            items.append(item.to_json())
    if diff.counted is not None:
        # A preview: its items are some of the diff's, the counts are the whole diff's.
        counts = _counts_of(diff.counted)
    total = sum(counts.values())
    return {"counts": counts, "total": total, "items": items, "truncated": len(items) < total}


_VERBS = {
    "added": "add",
    "changed": "change",
    "suspended": "suspend",
    "reactivated": "reactivate",
    "inactivated": "inactivate",
    "removed": "remove",
}


def _counts_of(summary: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Plan counts per action from a diff's `summary()`."""
    counts = dict.fromkeys(ACTIONS, 0)
    for kind, actions in summary.items():
        noun = {"accounts": "account", "links": "link"}.get(kind, "entitlement")
        for action, n in actions.items():
            counts[f"{_VERBS[action]}_{noun}"] += n
    return counts
