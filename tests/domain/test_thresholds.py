"""Thresholds hold imports that would remove too much."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from sigsci_iga.domain.thresholds import counts_needed

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


def _capped(counts: CurrentCounts, cap: int | None) -> CurrentCounts:
    if cap is None:
        return counts
    return CurrentCounts(*(min(n, cap) for n in (counts.accounts, counts.links, counts.sites)))


@given(
    suspended=st.integers(0, 30),
    removed_links=st.integers(0, 30),
    accounts=st.integers(0, 400),
    links=st.integers(0, 4000),
    absolute=st.one_of(st.none(), st.integers(0, 40)),
    percent=st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
)
def test_counts_read_only_as_far_as_counts_needed_says_give_the_same_verdict_and_reasons(
    suspended: int,
    removed_links: int,
    accounts: int,
    links: int,
    absolute: int | None,
    percent: float | None,
) -> None:
    diff = Diff(
        accounts_suspended=suspending(suspended).accounts_suspended,
        links_removed=tuple(LinkRef(f"u{i}@x.io", "Site", "s") for i in range(removed_links)),
    )
    limit = Limit(absolute=absolute, percent=percent)
    thresholds = Thresholds(limit, limit, limit)
    exact = CurrentCounts(accounts, links, 5)
    cap = counts_needed(diff, thresholds)

    assert evaluate_thresholds(diff, _capped(exact, cap), thresholds) == evaluate_thresholds(
        diff, exact, thresholds
    )
    if not suspended and not removed_links:
        assert cap == 0


def test_a_diff_that_removes_nothing_needs_no_counts_and_a_zero_percent_limit_needs_exact_ones() -> (
    None
):
    assert counts_needed(Diff()) == 0
    assert counts_needed(suspending(3)) == 31  # 3 of fewer than 30 is more than 10 %
    zero = Limit(absolute=None, percent=0.0)
    assert counts_needed(suspending(1), Thresholds(zero, zero, zero)) is None
