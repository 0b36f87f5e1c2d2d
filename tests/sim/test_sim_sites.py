"""Sites and site members."""

from __future__ import annotations

import re

import httpx
import pytest

from sigsci_iga.connectors.signalsciences.models import Site, SiteMember
from sigsci_iga.sim import SimConfig, SimState, create_app, demo_headers, inprocess_transport

pytestmark = pytest.mark.anyio

CORP = "/api/v0/corps/testcorp"


def _client(config: SimConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=inprocess_transport(create_app(config)),
        base_url="http://sim",
        headers=demo_headers(),
    )


def _member_not_owner(state: SimState, site: str) -> str:
    return sorted(state.sites[site].members)[0]


def _non_member(state: SimState, site: str) -> str:
    return next(
        u.email
        for u in state.users.values()
        if u.role != "owner" and site not in u.sites and u.email not in state.sites[site].members
    )


async def test_sites_default_to_pages_of_ten_with_only_a_data_list() -> None:
    async with _client(SimConfig(users=10, sites=25)) as client:
        first = (await client.get(f"{CORP}/sites")).json()
        assert set(first) == {"data"}
        assert len(first["data"]) == 10
        third = (await client.get(f"{CORP}/sites", params={"page": 3})).json()
        assert len(third["data"]) == 5


async def test_sites_switch_to_total_count_and_next_links() -> None:
    config = SimConfig(users=10, sites=25, sites_total_count=True, sites_next_links=True)
    async with _client(config) as client:
        first = (await client.get(f"{CORP}/sites")).json()
        assert len(first["data"]) == 10
        assert first["totalCount"] == 25
        seen = [s["name"] for s in first["data"]]
        uri = first["next"]["uri"]
        while uri:
            assert uri.startswith(f"{CORP}/sites?")
            page = (await client.get(uri)).json()
            seen += [s["name"] for s in page["data"]]
            uri = page["next"]["uri"]
    assert len(seen) == len(set(seen)) == 25


async def test_site_pages_honour_page_and_limit_and_clamp_large_limits(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    sim_state.config.sites_next_links = True
    names = list(sim_state.sites)
    page2 = (await api.get(f"{CORP}/sites", params={"page": 2, "limit": 3})).json()
    assert [s["name"] for s in page2["data"]] == names[3:6]
    assert "page=3" in page2["next"]["uri"]
    last = (await api.get(f"{CORP}/sites", params={"page": 3, "limit": 3})).json()
    assert [s["name"] for s in last["data"]] == names[6:]
    assert last["next"]["uri"] == ""
    beyond = (await api.get(f"{CORP}/sites", params={"page": 9, "limit": 3})).json()
    assert beyond["data"] == []
    huge = (await api.get(f"{CORP}/sites", params={"limit": 100_000})).json()
    assert len(huge["data"]) == 8
    bad = await api.get(f"{CORP}/sites", params={"limit": "many"})
    assert bad.status_code == 400


async def test_a_silent_cap_returns_fewer_sites_than_asked_and_says_nothing() -> None:
    async with _client(SimConfig(users=10, sites=12, site_page_max_limit=5)) as client:
        pages = [
            (await client.get(f"{CORP}/sites", params={"page": n, "limit": 100})).json()
            for n in (1, 2, 3, 4)
        ]
    assert [len(p["data"]) for p in pages] == [5, 5, 2, 0]
    assert all(set(p) == {"data"} for p in pages)
    names = [s["name"] for p in pages for s in p["data"]]
    assert len(set(names)) == 12


async def test_site_objects_match_the_reference_and_the_client_model(
    api: httpx.AsyncClient,
) -> None:
    data = (await api.get(f"{CORP}/sites", params={"limit": 100})).json()["data"]
    for item in data:
        assert re.fullmatch(r"[0-9a-z_.-]+", item["name"])
        assert item["members"] == {"uri": f"{CORP}/sites/{item['name']}/members"}
        assert item["agentLevel"] in {"block", "log", "off"}
        assert Site.model_validate(item).display_name
        single = (await api.get(f"{CORP}/sites/{item['name']}")).json()
        assert single == item


async def test_missing_site_is_400_site_not_found_everywhere(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/sites/nope.example"),
        ("GET", "/sites/nope.example/members"),
        ("GET", "/sites/nope.example/activity"),
        ("DELETE", "/sites/nope.example/members/owner@testcorp.example"),
    ]:
        response = await api.request(method, f"{CORP}{path}")
        assert response.status_code == 400
        assert response.json() == {"message": "Site not found"}


async def test_owners_are_implicit_members_of_every_site(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    owners = set(sim_state.owners())
    assert len(owners) == 3
    for site in sim_state.sites:
        data = (await api.get(f"{CORP}/sites/{site}/members")).json()["data"]
        members = [SiteMember.model_validate(m) for m in data]
        emails = {m.user.email for m in members}
        assert emails == owners | sim_state.sites[site].members
        assert all(m.role == "owner" for m in members if m.user.email in owners)
        assert all(set(m) == {"user", "role"} for m in data)


async def test_bulk_add_members_returns_the_members_and_rejects_unknown_emails(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = next(iter(sim_state.sites))
    newcomer = _non_member(sim_state, site)
    response = await api.post(f"{CORP}/sites/{site}/members", json={"members": [newcomer]})
    assert response.status_code == 200
    assert [m["user"]["email"] for m in response.json()["data"]] == [newcomer]
    assert site in sim_state.users[newcomer].sites
    other = _non_member(sim_state, site)
    bad = await api.post(
        f"{CORP}/sites/{site}/members", json={"members": [other, "ghost@example.com"]}
    )
    assert bad.status_code == 400
    assert "ghost@example.com" in bad.json()["message"]
    assert site not in sim_state.users[other].sites  # all or nothing


async def test_patch_member_with_an_empty_body_adds_an_existing_user(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = list(sim_state.sites)[1]
    email = _non_member(sim_state, site)
    response = await api.patch(f"{CORP}/sites/{site}/members/{email}")
    assert response.status_code == 200
    assert response.json() == {
        "email": email,
        "role": sim_state.users[email].role,
        "status": sim_state.users[email].status,
    }
    assert SiteMember.model_validate(response.json()).user.email == email
    assert (await api.get(f"{CORP}/sites/{site}/members/{email}")).status_code == 200


async def test_site_level_role_change_is_refused(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = next(iter(sim_state.sites))
    email = _member_not_owner(sim_state, site)
    role = sim_state.users[email].role
    response = await api.patch(f"{CORP}/sites/{site}/members/{email}", json={"role": "admin"})
    assert response.status_code == 400
    assert "role" in response.json()["message"]
    assert sim_state.users[email].role == role


async def test_site_invite_creates_a_pending_user_with_that_single_site(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = list(sim_state.sites)[2]
    response = await api.post(
        f"{CORP}/sites/{site}/members/site.invitee@example.com/invite", json={"role": "observer"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "email": "site.invitee@example.com",
        "role": "observer",
        "status": "pending",
    }
    assert sim_state.users["site.invitee@example.com"].sites == {site}


async def test_removing_a_member_is_204_and_owners_cannot_be_removed_from_a_site(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = next(iter(sim_state.sites))
    email = _member_not_owner(sim_state, site)
    response = await api.delete(f"{CORP}/sites/{site}/members/{email}")
    assert response.status_code == 204
    assert response.content == b""
    assert site not in sim_state.users[email].sites
    again = await api.delete(f"{CORP}/sites/{site}/members/{email}")
    assert again.status_code == 400
    owner = await api.delete(f"{CORP}/sites/{site}/members/owner@testcorp.example")
    assert owner.status_code == 400
    assert owner.json() == {"message": "Owners are members of every site"}


async def test_sites_can_be_created_and_deleted_by_owners(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    created = await api.post(f"{CORP}/sites", json={"name": "new.site", "displayName": "New"})
    assert created.status_code == 200
    assert created.json()["name"] == "new.site"
    email = _non_member(sim_state, "new.site")
    sim_state.add_membership(email, "new.site")
    assert (await api.delete(f"{CORP}/sites/new.site")).status_code == 204
    assert "new.site" not in sim_state.users[email].sites
    assert (await api.get(f"{CORP}/sites/new.site")).status_code == 400
