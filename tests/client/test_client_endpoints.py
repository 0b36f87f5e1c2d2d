"""Every SigSciClient endpoint against the simulator, in-process and over a loopback server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from client_harness import Sim, SimFactory, raises, run

from sigsci_iga.connectors.signalsciences.models import UserStatus
from sigsci_iga.domain.model import CorpRole
from sigsci_iga.errors import NotFoundError
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, SimState
from sigsci_iga.sim.records import UserRecord

SITES_ROUTE = "GET /corps/{corp}/sites"


def member_with_sites(state: SimState, at_least: int = 2) -> UserRecord:
    """An active, non-owner user with a few explicit sites."""
    return next(
        u
        for u in state.users.values()
        if u.role not in ("owner", "observer") and u.status == "active" and len(u.sites) >= at_least
    )


def reachable_sites(state: SimState, user: UserRecord) -> list[str]:
    return sorted(state.sites) if user.role == "owner" else sorted(user.sites)


def test_lists_the_corps_and_reads_the_demo_corp(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client() as client:
            corps = await client.list_corps()
            corp = await client.get_corp()
        assert [c.name for c in corps] == [DEMO_CORP]
        assert corp.name == DEMO_CORP
        assert corp.display_name == sim.config.corp_display_name
        assert corp.api_token_max_age == 0
        assert corp.session_max_age_dashboard == sim.config.session_max_age_seconds

    run(go())
    assert sim.calls("GET /corps") == 1
    assert sim.calls("GET /corps/{corp}") == 1


def test_lists_every_user_with_memberships_expanded_in_one_call(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client() as client:
            users = await client.list_users()
            bare = await client.list_users(expand_memberships=False)
        state = sim.state
        assert sorted(u.email for u in users) == sorted(state.users)
        for user in users:
            record = state.users[user.email]
            assert user.role == record.role
            assert user.site_names == reachable_sites(state, record)
        assert any(u.site_names for u in users if u.role != CorpRole.OWNER)
        assert all(u.memberships.data == [] for u in bare)

    run(go())
    assert sim.calls("GET /corps/{corp}/users") == 2


def test_reads_one_user_and_its_memberships(sim: Sim) -> None:
    record = member_with_sites(sim.state)

    async def go() -> None:
        async with sim.client() as client:
            user = await client.get_user(record.email)
            memberships = await client.get_user_memberships(record.email)
            me = await client.get_user(DEMO_EMAIL, expand_memberships=False)
        assert user.email == record.email
        assert user.status is UserStatus.ACTIVE
        assert user.site_names == sorted(record.sites)
        assert sorted(m.site.name for m in memberships) == sorted(record.sites)
        assert {m.role for m in memberships} == {record.role}
        assert me.role == CorpRole.OWNER
        assert me.memberships.data == []

    run(go())


def test_invites_a_user_who_then_exists_as_pending_in_the_simulator(sim: Sim) -> None:
    sites = sorted(sim.state.sites)[:2]

    async def go() -> None:
        async with sim.client() as client:
            invited = await client.invite_user("new.hire@example.com", role="user", sites=sites)
            assert invited is not None
            assert invited.email == "new.hire@example.com"
            assert invited.status is UserStatus.PENDING
            reread = await client.get_user("new.hire@example.com")
            assert reread.site_names == sites

    run(go())
    stored = sim.state.get_user("new.hire@example.com")
    assert stored is not None
    assert stored.status == sim.config.pending_status
    assert stored.role == "user"
    assert sorted(stored.sites) == sites


def test_patching_the_role_alone_leaves_the_sites_untouched(sim: Sim) -> None:
    record = member_with_sites(sim.state)
    before = set(record.sites)
    new_role = "observer" if record.role != "observer" else "user"

    async def go() -> None:
        async with sim.client() as client:
            updated = await client.update_user(record.email, role=new_role)
            assert updated is not None
            assert updated.role == new_role
            reread = await client.get_user(record.email)
            assert reread.site_names == sorted(before)

    run(go())
    stored = sim.state.get_user(record.email)
    assert stored is not None
    assert stored.role == new_role
    assert stored.sites == before


def test_patching_the_sites_replaces_the_whole_set(sim: Sim) -> None:
    record = member_with_sites(sim.state)
    before = set(record.sites)
    kept = sorted(before)[0]
    added = sorted(set(sim.state.sites) - before)[0]

    async def go() -> None:
        async with sim.client() as client:
            await client.update_user(record.email, sites=[kept, added])
            reread = await client.get_user(record.email)
            assert reread.site_names == sorted([kept, added])

    run(go())
    stored = sim.state.get_user(record.email)
    assert stored is not None
    assert stored.sites == {kept, added}
    assert stored.role == record.role


def test_deleting_a_user_returns_none_for_the_204(sim: Sim) -> None:
    record = member_with_sites(sim.state)

    async def go() -> None:
        async with sim.client() as client:
            result: object = await client.delete_user(record.email)  # type: ignore[func-returns-value]
            assert result is None
            assert sim.records[-1].status == 204
            await raises(NotFoundError, client.get_user(record.email))

    run(go())
    assert sim.state.get_user(record.email) is None
    assert sim.calls("DELETE /corps/{corp}/users/{email}") == 1


ENVELOPES = {
    "data only": {},
    "totalCount and next": {"sites_total_count": True, "sites_next_links": True},
    "totalCount only": {"sites_total_count": True},
    "next only": {"sites_next_links": True},
}


@pytest.mark.parametrize(
    ("envelope", "sites", "limit", "cap", "expected_calls"),
    [
        # A server that says nothing about the end: a short page may be a silent cap, so the
        # list ends on the first empty page, one call after the last page with sites.
        ("data only", 9, 3, None, 4),
        ("data only", 10, 3, None, 5),
        ("data only", 2, 3, None, 2),
        ("data only", 9, 3, 2, 6),
        # totalCount ends the list as soon as it is reached, whatever the page sizes.
        ("totalCount and next", 9, 3, None, 3),
        ("totalCount and next", 10, 3, None, 4),
        ("totalCount and next", 3, 3, None, 1),
        ("totalCount and next", 9, 3, 2, 5),
        ("totalCount only", 10, 3, None, 4),
        ("totalCount only", 9, 3, 2, 5),
        # Next links are followed; an empty one ends a page reached through a link, or a page
        # shorter than asked. A full first page with an empty next is not trusted as the end.
        ("next only", 9, 3, None, 3),
        ("next only", 10, 3, None, 4),
        ("next only", 3, 3, None, 2),
        ("next only", 2, 3, None, 1),
        ("next only", 9, 3, 2, 5),
    ],
)
def test_lists_every_site_whatever_the_envelope_and_a_silent_cap(
    make_sim: SimFactory,
    mode: str,
    envelope: str,
    sites: int,
    limit: int,
    cap: int | None,
    expected_calls: int,
) -> None:
    config: dict[str, Any] = {"sites": sites, **ENVELOPES[envelope]}
    if cap is not None:
        config["site_page_max_limit"] = cap
    sim = make_sim(mode, **config)

    async def go() -> list[str]:
        async with sim.client() as client:
            return [s.name for s in await client.list_sites(limit=limit)]

    names = run(go())
    assert names == list(sim.state.sites)
    assert len(set(names)) == sites
    assert sim.calls(SITES_ROUTE) == expected_calls


def test_reads_one_site(sim: Sim) -> None:
    name = sorted(sim.state.sites)[3]

    async def go() -> None:
        async with sim.client() as client:
            site = await client.get_site(name)
        assert site.name == name
        assert site.display_name == sim.state.sites[name].display_name
        assert site.members.uri.endswith(f"/sites/{name}/members")

    run(go())


def test_an_unknown_site_is_not_found_from_the_400_site_not_found(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client() as client:
            error = await raises(NotFoundError, client.get_site("no-such-site.example"))
            assert error.status == 400
            assert error.message == "Site not found"
            await raises(NotFoundError, client.list_site_members("no-such-site.example"))

    run(go())


@pytest.mark.parametrize("status", [400, 404])
def test_an_unknown_user_is_not_found_whether_the_server_says_400_or_404(
    make_sim: SimFactory, mode: str, status: int
) -> None:
    sim = make_sim(mode, not_found_status=status)

    async def go() -> None:
        async with sim.client() as client:
            error = await raises(NotFoundError, client.get_user("nobody@example.com"))
            assert error.status == status
            assert error.message == "ID not found"
            await raises(NotFoundError, client.get_user_memberships("nobody@example.com"))
            await raises(NotFoundError, client.delete_user("nobody@example.com"))

    run(go())


def test_lists_site_members_with_the_owners_included(sim: Sim) -> None:
    state = sim.state
    name = sorted(state.sites)[0]
    expected = sorted(set(state.owners()) | state.sites[name].members)

    async def go() -> None:
        async with sim.client() as client:
            members = await client.list_site_members(name)
        emails = [m.user.email for m in members]
        assert sorted(emails) == expected
        assert set(state.owners()) <= set(emails)
        roles = {m.user.email: m.role for m in members}
        assert all(roles[o] == CorpRole.OWNER for o in state.owners())

    run(go())


def test_bulk_adding_members_leaves_their_other_sites_alone(sim: Sim) -> None:
    state = sim.state
    first = member_with_sites(state)
    target = sorted(set(state.sites) - first.sites)[0]
    second = next(
        u
        for u in state.users.values()
        if u.role != "owner" and u.email != first.email and target not in u.sites and u.sites
    )
    before = {first.email: set(first.sites), second.email: set(second.sites)}

    async def go() -> None:
        async with sim.client() as client:
            added = await client.add_site_members(target, [first.email, second.email])
        assert sorted(m.user.email for m in added) == sorted(before)

    run(go())
    for email, sites in before.items():
        stored = state.get_user(email)
        assert stored is not None
        assert stored.sites == sites | {target}
    assert sim.calls("POST /corps/{corp}/sites/{site}/members") == 1


def test_inviting_to_a_site_creates_a_pending_member_of_that_site_only(sim: Sim) -> None:
    name = sorted(sim.state.sites)[1]

    async def go() -> None:
        async with sim.client() as client:
            member = await client.invite_site_member(
                name, "site.guest@example.com", role="observer"
            )
            assert member is not None
            assert member.user.email == "site.guest@example.com"
            assert member.user.status is UserStatus.PENDING
            listed = await client.list_site_members(name)
            assert "site.guest@example.com" in {m.user.email for m in listed}

    run(go())
    stored = sim.state.get_user("site.guest@example.com")
    assert stored is not None
    assert stored.role == "observer"
    assert stored.sites == {name}


def test_removes_a_site_member_and_keeps_the_rest_of_its_sites(sim: Sim) -> None:
    record = member_with_sites(sim.state)
    before = set(record.sites)
    gone = sorted(before)[0]

    async def go() -> None:
        async with sim.client() as client:
            result: object = await client.remove_site_member(gone, record.email)  # type: ignore[func-returns-value]
            assert result is None
            assert sim.records[-1].status == 204
            listed = await client.list_site_members(gone)
            assert record.email not in {m.user.email for m in listed}

    run(go())
    stored = sim.state.get_user(record.email)
    assert stored is not None
    assert stored.sites == before - {gone}


def _make_events(state: SimState, site: str, prefix: str, count: int) -> None:
    """`count` users joined to `site`: one corp event and one site event each."""
    for index in range(count):
        state.add_user(f"{prefix}{index}@example.com", "user", [site])


@pytest.mark.parametrize("sort", ["asc", "desc"])
def test_corp_activity_pages_through_next_links_within_from_and_until(sim: Sim, sort: str) -> None:
    state = sim.state
    site = sorted(state.sites)[0]
    _make_events(state, site, "before", 2)
    state.advance_clock(100)
    since = state.now()
    _make_events(state, site, "during", 7)  # 14 events, more than the page size of 5
    state.advance_clock(100)
    until = state.now()
    _make_events(state, site, "after", 2)
    window = [e for e in state.events if e.msg_data.get("email", "").startswith("during")]
    ordered = sorted(window, key=lambda e: (e.created, e.seq), reverse=sort == "desc")
    expected = [e.id for e in ordered]
    assert len(expected) == 14

    async def go() -> list[list[str]]:
        async with sim.client() as client:
            return [
                [e.id for e in page.items]
                async for page in client.iter_activity_pages(
                    since=since, until=until, sort=sort, limit=5
                )
            ]

    pages = run(go())
    assert [len(p) for p in pages] == [5, 5, 4]
    assert [i for p in pages for i in p] == expected
    assert sim.calls("GET /corps/{corp}/activity") == 3
    # Pages after the first were fetched through the server's next.uri, keeping every filter.
    activity = [r for r in sim.requests if r.url.path.endswith("/activity")]
    assert [r.url.params.get("page") for r in activity] == ["1", "2", "3"]
    for request in activity:
        assert request.url.params["sort"] == sort
        assert request.url.params["limit"] == "5"
        assert request.url.params["from"] == str(int(since.timestamp()))
        assert request.url.params["until"] == str(int(until.timestamp()))


def test_site_activity_pages_through_next_links_and_holds_only_that_site(sim: Sim) -> None:
    state = sim.state
    site, other = sorted(state.sites)[:2]
    start = state.now() - timedelta(seconds=5)
    _make_events(state, site, "here", 6)
    _make_events(state, other, "there", 3)
    expected = [e.id for e in state.events if e.site == site]
    assert len(expected) == 6

    async def go() -> list[str]:
        async with sim.client() as client:
            return [
                e.id
                async for page in client.iter_activity_pages(
                    site=site, since=start, sort="asc", limit=4
                )
                for e in page.items
            ]

    assert run(go()) == expected
    assert sim.calls("GET /corps/{corp}/sites/{site}/activity") == 2
