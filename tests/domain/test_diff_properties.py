"""Properties of the diff: applying it to the current state yields the incoming snapshot."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sigsci_iga.domain import (
    AccountSnapshot,
    CorpSnapshot,
    RepositoryView,
    SiteSnapshot,
    apply_to_view,
    compute_diff,
    compute_partial_diff,
)
from sigsci_iga.domain.diff import FullDiffStream, join

EMAILS = [f"user{i}@example.com" for i in range(8)]
SITE_NAMES = [f"site{i}" for i in range(5)]

accounts = st.builds(
    AccountSnapshot,
    email=st.sampled_from(EMAILS),
    name=st.sampled_from(["", "Ann", "Bo"]),
    role=st.sampled_from(["owner", "admin", "user", "observer"]),
    status=st.sampled_from(["active", "pending"]),
    mfa_enabled=st.booleans(),
    created=st.none() | st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)),
    sites=st.frozensets(st.sampled_from(SITE_NAMES)),
    extra=st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 2)),
)
sites = st.builds(
    SiteSnapshot, name=st.sampled_from(SITE_NAMES), display_name=st.sampled_from(["", "X", "Y"])
)


@st.composite
def snapshots(draw: st.DrawFn) -> CorpSnapshot:
    listed = draw(st.lists(accounts, unique_by=lambda a: a.email, max_size=6))
    site_list = draw(st.lists(sites, unique_by=lambda s: s.name, max_size=5))
    return CorpSnapshot(tuple(listed), tuple(site_list))


@st.composite
def views(draw: st.DrawFn) -> RepositoryView:
    """A reachable repository state: a few imports in a row, so some things are suspended."""
    view = RepositoryView.empty()
    for snapshot in draw(st.lists(snapshots(), min_size=0, max_size=3)):
        view = apply_to_view(view, compute_diff(view, snapshot))
    return view


def assert_matches(view: RepositoryView, incoming: CorpSnapshot) -> None:
    listed = {a.email: a for a in incoming.accounts}
    for email, state in view.accounts.items():
        snapshot = listed.get(email)
        if snapshot is None:
            assert state.status == "suspended"
            assert not state.sites
            assert not state.roles
            continue
        assert state.field_values() == snapshot.field_values()
        assert state.sites == snapshot.sites
        assert state.roles == {snapshot.role}
    assert set(listed) <= set(view.accounts)
    referenced = {s for a in incoming.accounts for s in a.sites}
    active = {n for n, s in view.sites.items() if s.status == "active"}
    assert active == {s.name for s in incoming.sites} | referenced
    for site in incoming.sites:
        assert view.sites[site.name].display_name == site.display_name


@settings(max_examples=300, deadline=None)
@given(current=views(), incoming=snapshots())
def test_applying_the_full_diff_to_the_current_state_yields_the_incoming_snapshot(
    current: RepositoryView, incoming: CorpSnapshot
) -> None:
    after = apply_to_view(current, compute_diff(current, incoming))

    assert_matches(after, incoming)
    assert compute_diff(after, incoming).is_empty


@settings(max_examples=200, deadline=None)
@given(
    current=views(),
    changed=st.dictionaries(st.sampled_from(EMAILS), st.none() | accounts, max_size=4),
)
def test_a_partial_diff_touches_only_the_accounts_it_is_given(
    current: RepositoryView, changed: dict[str, AccountSnapshot | None]
) -> None:
    changed = {
        email: None if snap is None else replace(snap, email=email)
        for email, snap in changed.items()
    }

    after = apply_to_view(current, compute_partial_diff(current, changed, {}))

    for email, state in current.accounts.items():
        if email not in changed:
            assert after.accounts[email] == state
    for email, snapshot in changed.items():
        if snapshot is None:
            if email in current.accounts:
                assert after.accounts[email].status == "suspended"
        else:
            assert after.accounts[email].field_values() == snapshot.field_values()
            assert after.accounts[email].sites == snapshot.sites


@settings(max_examples=300, deadline=None)
@given(current=views(), incoming=snapshots(), batch=st.integers(1, 4))
def test_a_full_diff_computed_in_batches_is_the_full_diff(
    current: RepositoryView, incoming: CorpSnapshot, batch: int
) -> None:
    stream = FullDiffStream(current, incoming.sites)
    listed = incoming.accounts
    parts = [stream.accounts(listed[i : i + batch]) for i in range(0, len(listed), batch)]
    parts.extend(stream.absent(batch))
    head = stream.head()

    assert join((head, *parts)) == compute_diff(current, incoming)
    # The head holds the entitlement work only, each part at most `batch` accounts' work.
    assert head.accounts_added == head.links_added == head.accounts_suspended == ()
    for part in parts:
        touched = {link.email for link in (*part.links_added, *part.links_removed)}
        touched |= {a.email for a in part.accounts_added}
        touched |= {c.email for c in (*part.accounts_changed, *part.accounts_suspended)}
        assert len(touched) <= batch
        assert not part.entitlements_added
