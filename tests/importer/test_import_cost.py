"""What an import costs, counted rather than timed: the guards behind the import benchmarks.

A full import reads the users list once and the site pages (the simulator, like a server that
gives neither `totalCount` nor `next` links, costs one empty page at the end). An incremental
import reads one feed, re-reads the users its events name, and loads from the repository only
those accounts (and the holders of a site it confirms deleted), whatever the corp's size.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import pytest
from import_harness import SimCorp, assert_matches_sim, options, state_of

from sigsci_iga.connectors.base import AccountBatches
from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.model import AccountSnapshot, RepositoryView
from sigsci_iga.store import Repository

USERS = "GET /corps/{corp}/users"
SITES = "GET /corps/{corp}/sites"
ACTIVITY = "GET /corps/{corp}/activity"
USER = "GET /corps/{corp}/users/{email}"
SITE = "GET /corps/{corp}/sites/{site}"


@pytest.mark.parametrize(("sites", "page_size"), [(8, 100), (250, 100), (300, 100), (300, 40)])
def test_a_full_import_reads_the_users_once_and_each_site_page_plus_an_empty_last_one(
    repo: Repository, sites: int, page_size: int
) -> None:
    corp = SimCorp.create(users=30, sites=sites, seed=5)
    corp.site_page_size = page_size
    corp.register(repo)

    outcome = corp.run(repo, opts=options(mode="full"))

    assert outcome.ok().sites_read == sites
    pages = math.ceil(sites / page_size) + 1
    assert outcome.sim_calls == {USERS: 1, SITES: pages}
    assert outcome.total_client_calls == 2 + math.ceil(sites / page_size)


def test_a_server_that_gives_a_total_count_saves_the_empty_last_page(repo: Repository) -> None:
    corp = SimCorp.create(users=30, sites=250, seed=5, sites_total_count=True)
    corp.register(repo)

    outcome = corp.run(repo, opts=options(mode="full"))

    assert outcome.sim_calls == {USERS: 1, SITES: 3}


class _Loads:
    """Records what the importer asks the repository to load, and how much it gets back."""

    def __init__(self, repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[frozenset[str] | None] = []
        self.accounts: list[int] = []
        real = repo.runs.load_view

        def load_view(endpoint: str, emails: Collection[str] | None = None) -> RepositoryView:
            view = real(endpoint, emails)
            self.asked.append(None if emails is None else frozenset(emails))
            self.accounts.append(len(view.accounts))
            return view

        monkeypatch.setattr(repo.runs, "load_view", load_view)


def test_an_incremental_import_loads_only_the_accounts_its_events_name(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    corp = SimCorp.create(users=120, sites=10, seed=7, pending_share=0.1)
    corp.register(repo)
    corp.run(repo, opts=options(mode="full")).ok()
    state = corp.state
    users = sorted(
        (u for u in state.users.values() if u.role in ("user", "observer") and u.sites),
        key=lambda u: u.email,
    )
    first, second, third = users[:3]
    state.change_role(first.email, "observer" if first.role == "user" else "user")
    state.add_membership(
        second.email, next(s for s in sorted(state.sites) if s not in second.sites)
    )
    state.remove_membership(third.email, sorted(third.sites)[0])
    state.invite_user("newcomer@example.com", "user", [sorted(state.sites)[0]])
    named = {first.email, second.email, third.email, "newcomer@example.com"}
    loads = _Loads(repo, monkeypatch)

    outcome = corp.run(repo, opts=options())

    result = outcome.ok()
    assert result.mode == "incremental"
    assert loads.asked == [frozenset(named)]
    # The newcomer is not in the repository yet: three of the corp's 120 accounts were read.
    assert loads.accounts == [3]
    assert outcome.sim_calls == {ACTIVITY: 1, USER: len(named)}


def test_a_deleted_site_loads_its_holders_too_and_lands_where_a_full_import_would(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    corp = SimCorp.create(users=60, sites=6, seed=9)
    inc = corp.register(repo, "inc")
    full = corp.register(repo, "full")
    corp.run(repo, inc, options(mode="full")).ok()
    corp.run(repo, full, options(mode="full")).ok()
    state = corp.state
    doomed = sorted(state.sites)[0]
    holders = {u.email for u in state.users.values() if doomed in u.sites or u.role == "owner"}
    state.remove_site(doomed)
    loads = _Loads(repo, monkeypatch)

    outcome = corp.run(repo, inc, options())

    assert outcome.ok().mode == "incremental"
    (asked,) = loads.asked
    assert asked is not None
    assert holders <= asked
    assert len(asked) < len(state.users)
    corp.run(repo, full, options(mode="full")).ok()
    assert state_of(repo, inc) == state_of(repo, full)
    assert outcome.sim_calls.get(SITE, 0) == 1


def _planner_rows(repo: Repository, table: str) -> int | None:
    """How many rows the database's planner statistics say `table` has (None: no statistics)."""
    with repo.db.read() as conn:
        if conn.dialect.name == "postgresql":
            found = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = %s", (table,)
            ).scalar_one()
            return None if found < 0 else int(found)
        rows = conn.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = ? AND idx IS NOT NULL", (table,)
        ).all()
        return int(rows[0][0].split()[0]) if rows else None


def test_a_bulk_import_leaves_planner_statistics_for_what_it_loaded(repo: Repository) -> None:
    corp = SimCorp.create(users=700, sites=12, memberships_per_user=9.0, seed=3)
    corp.register(repo)

    corp.run(repo, opts=options(mode="full")).ok()

    with repo.db.read() as conn:
        links = conn.exec_driver_sql("SELECT count(*) FROM account_entitlements").scalar_one()
        accounts = conn.exec_driver_sql("SELECT count(*) FROM accounts").scalar_one()
    assert links + accounts >= 5_000
    # PostgreSQL samples every row of a table this small; SQLite estimates from a sample.
    for table, actual in (("account_entitlements", links), ("accounts", accounts)):
        estimate = _planner_rows(repo, table)
        assert estimate is not None, f"no statistics for {table}"
        assert abs(estimate - actual) <= actual * 0.2, (table, estimate, actual)


def test_a_full_import_takes_the_users_in_bounded_batches_and_applies_them_in_parts(
    repo: Repository,
) -> None:
    """The memory shape of a full import: no batch, and no part of the diff, holds the corp."""
    corp = SimCorp.create(users=60, sites=12, seed=9)
    corp.users_batch = 7
    batches: list[int] = []
    parts: list[int] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.kind = inner.kind

        async def stream_accounts(self, into: AccountBatches) -> None:
            class Into:
                def begin(self) -> None:
                    into.begin()

                def batch(self, accounts: list[AccountSnapshot]) -> None:
                    batches.append(len(accounts))
                    into.batch(accounts)

            await self.inner.stream_accounts(Into())

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    corp.wrap = Counting
    endpoint = corp.register(repo)
    applied = repo.runs.apply_parts

    def counted_apply(run_id: int, head: Diff, spooled: Iterable[Diff], **kw: Any) -> Any:
        def each() -> Iterator[Diff]:
            for part in spooled:
                parts.append(len({a.email for a in part.accounts_added}))
                yield part

        return applied(run_id, head, each(), **kw)

    repo.runs.apply_parts = counted_apply  # type: ignore[method-assign]

    result = corp.run(repo, opts=options(mode="full")).ok()

    users = len(corp.state.users)
    assert batches == [7] * (users // 7) + ([users % 7] if users % 7 else [])
    assert max(parts) <= 7
    assert sum(parts) == users == result.accounts_read
    assert result.diff.summary()["accounts"]["added"] == users
    assert len(result.diff.accounts_added) == users  # a preview: the whole corp fits in it here
    assert_matches_sim(repo, endpoint, corp)
