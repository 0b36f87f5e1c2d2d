"""Thresholds hold imports that would remove too much."""

from __future__ import annotations

import pytest

from sigsci_iga.domain import (
    AccountChange,
    CurrentCounts,
    Diff,
    EntitlementChange,
    FieldChange,
    Limit,
    LinkRef,
    Thresholds,
    evaluate_thresholds,
)

SUSPEND = FieldChange("status", "active", "suspended")


def suspending(n: int) -> Diff:
    return Diff(accounts_suspended=tuple(AccountChange(f"u{i}@x.io", (SUSPEND,)) for i in range(n)))


def test_suspending_more_than_ten_accounts_is_held_by_default() -> None:
    verdict = evaluate_thresholds(suspending(11), CurrentCounts(1000, 0, 0))

    assert verdict.held
    assert verdict.reasons == ["accounts to suspend: 11 > 10"]


def test_suspending_exactly_ten_of_many_accounts_is_not_held() -> None:
    assert not evaluate_thresholds(suspending(10), CurrentCounts(1000, 0, 0)).held


def test_suspending_more_than_ten_percent_is_held_even_below_the_absolute_limit() -> None:
    verdict = evaluate_thresholds(suspending(3), CurrentCounts(20, 0, 0))

    assert verdict.held
    assert "15.0% > 10%" in verdict.reasons[0]


def test_links_removed_and_sites_inactivated_have_their_own_limits() -> None:
    diff = Diff(
        links_removed=tuple(LinkRef(f"u{i}@x.io", "Site", "www") for i in range(11)),
        entitlements_inactivated=(
            EntitlementChange("Site", "www", (FieldChange("status", "active", "inactive"),)),
        ),
    )

    verdict = evaluate_thresholds(diff, CurrentCounts(1000, 100_000, 5))

    assert [r.split(":")[0] for r in verdict.reasons] == ["links to remove", "sites to inactivate"]


def test_limits_are_configurable_and_can_be_disabled() -> None:
    lenient = Thresholds(accounts_suspended=Limit(absolute=None, percent=50))

    assert not evaluate_thresholds(suspending(40), CurrentCounts(100, 0, 0), lenient).held
    assert evaluate_thresholds(suspending(51), CurrentCounts(100, 0, 0), lenient).held


def test_an_initial_import_is_never_held() -> None:
    assert not evaluate_thresholds(Diff(), CurrentCounts(0, 0, 0)).held


def test_a_limit_refuses_nonsense_values() -> None:
    with pytest.raises(ValueError, match="percent"):
        Limit(percent=150)
