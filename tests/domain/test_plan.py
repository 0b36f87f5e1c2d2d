"""The itemised plan of a diff: every change once, in a fixed order, with old and new values."""

from __future__ import annotations

from sigsci_iga.domain.diff import (
    AccountChange,
    Diff,
    EntitlementChange,
    FieldChange,
    LinkRef,
    NewEntitlement,
)
from sigsci_iga.domain.model import AccountSnapshot
from sigsci_iga.domain.plan import ACTIONS, plan_json

DIFF = Diff(
    accounts_added=(AccountSnapshot("new@x.example", name="New", role="admin"),),
    accounts_changed=(AccountChange("b@x.example", (FieldChange("role", "user", "admin"),)),),
    accounts_suspended=(
        AccountChange("z@x.example", (FieldChange("status", "active", "suspended"),)),
        AccountChange("c@x.example", (FieldChange("status", "pending", "suspended"),)),
    ),
    entitlements_added=(NewEntitlement("Site", "shop", "Shop"),),
    entitlements_inactivated=(
        EntitlementChange("Site", "old", (FieldChange("status", "active", "inactive"),)),
    ),
    links_added=(LinkRef("new@x.example", "Site", "shop"),),
    links_removed=(
        LinkRef("z@x.example", "Site", "old"),
        LinkRef("z@x.example", "CorpRole", "user"),
    ),
)


def test_every_change_is_an_item_in_action_order_with_its_old_and_new_values() -> None:
    plan = plan_json(DIFF)

    assert plan["total"] == 9
    assert plan["truncated"] is False
    assert [(i["action"], i["key"]) for i in plan["items"]] == [
        ("add_account", "new@x.example"),
        ("change_account", "b@x.example"),
        ("suspend_account", "c@x.example"),
        ("suspend_account", "z@x.example"),
        ("add_entitlement", "shop"),
        ("inactivate_entitlement", "old"),
        ("add_link", "new@x.example"),
        ("remove_link", "z@x.example"),
        ("remove_link", "z@x.example"),
    ]
    actions = [i["action"] for i in plan["items"]]
    assert actions == sorted(actions, key=ACTIONS.index)
    added = plan["items"][0]["changes"]
    assert {c["field"]: (c["old"], c["new"]) for c in added} == {
        "name": (None, "New"),
        "role": (None, "admin"),
        "status": (None, "active"),
    }


def test_a_link_item_is_keyed_by_its_account_and_names_the_entitlement_as_its_change() -> None:
    items = [i for i in plan_json(DIFF)["items"] if i["object"] == "link"]

    assert items == [
        {
            "action": "add_link",
            "object": "link",
            "key": "new@x.example",
            "changes": [{"field": "Site", "old": None, "new": "shop"}],
        },
        {
            "action": "remove_link",
            "object": "link",
            "key": "z@x.example",
            "changes": [{"field": "CorpRole", "old": "user", "new": None}],
        },
        {
            "action": "remove_link",
            "object": "link",
            "key": "z@x.example",
            "changes": [{"field": "Site", "old": "old", "new": None}],
        },
    ]


def test_a_limited_plan_keeps_every_count_and_says_it_is_truncated() -> None:
    plan = plan_json(DIFF, limit=3)

    assert len(plan["items"]) == 3
    assert plan["truncated"] is True
    assert plan["total"] == 9
    assert sum(plan["counts"].values()) == 9
    assert plan["counts"]["suspend_account"] == 2
    assert plan["counts"]["remove_link"] == 2
