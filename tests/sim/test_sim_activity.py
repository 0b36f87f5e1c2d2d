"""The corp and site activity feeds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sigsci_iga.connectors.signalsciences.models import ActivityEvent
from sigsci_iga.sim import SimConfig, SimState, create_app, demo_headers, inprocess_transport

pytestmark = pytest.mark.anyio

CORP = "/api/v0/corps/testcorp"


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def tick(self, seconds: float = 1) -> None:
        self.moment += timedelta(seconds=seconds)


async def _types(client: httpx.AsyncClient, path: str = f"{CORP}/activity") -> list[str]:
    response = await client.get(path, params={"sort": "asc", "limit": 1000})
    return [e["eventType"] for e in response.json()["data"]]


async def test_every_mutation_emits_an_activity_event(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    sites = list(sim_state.sites)
    email = "audited@example.com"
    steps = [
        (
            api.post(
                f"{CORP}/users/{email}/invite",
                json={"role": "user", "memberships": {"data": [{"site": {"name": sites[0]}}]}},
            ),
            ["corpUserInvited", "userAddedToSite"],
        ),
        (api.patch(f"{CORP}/users/{email}", json={"role": "admin"}), ["userUpdated"]),
        (
            api.patch(
                f"{CORP}/users/{email}",
                json={"memberships": {"data": [{"site": {"name": sites[1]}}]}},
            ),
            ["userRemovedFromSite", "userAddedToSite", "userUpdated"],
        ),
        (api.patch(f"{CORP}/sites/{sites[2]}/members/{email}"), ["userAddedToSite"]),
        (api.delete(f"{CORP}/sites/{sites[2]}/members/{email}"), ["userRemovedFromSite"]),
        (api.post(f"{CORP}/sites", json={"name": "audit.site"}), ["newSite"]),
        (api.delete(f"{CORP}/sites/audit.site"), ["deleteSite"]),
        (api.delete(f"{CORP}/users/{email}"), ["userRemoved"]),
    ]
    seen = 0
    for call, expected in steps:
        response = await call
        assert response.status_code in (200, 204), response.text
        types = await _types(api)
        assert types[seen:] == expected
        seen = len(types)
    sim_state.add_user("direct@example.com", "user", [sites[0]])
    sim_state.change_role("direct@example.com", "observer")
    sim_state.invite_user("pending@example.com", "user")
    sim_state.register("pending@example.com")
    assert (await _types(api))[seen:] == [
        "userAddedToCorp",
        "userAddedToSite",
        "userUpdated",
        "corpUserInvited",
        "userRegistered",
    ]


async def test_events_carry_the_reference_shape_and_user_details(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = next(u.email for u in sim_state.users.values() if u.role == "user")
    await api.patch(f"{CORP}/users/{email}", json={"role": "observer"})
    await api.post(f"{CORP}/users/a@example.com/invite", json={"role": "user"})
    data = (await api.get(f"{CORP}/activity")).json()["data"]
    ids = [e["id"] for e in data]
    assert len(set(ids)) == len(ids)
    for event in data:
        assert re.fullmatch(r"[0-9a-f]{24}", event["id"])
        assert set(event) == {"id", "eventType", "msgData", "message", "attachments", "created"}
        assert all(isinstance(v, str) for v in event["msgData"].values())
        assert "owner@testcorp.example" in event["message"]
        ActivityEvent.model_validate(event)
    updated = next(e for e in data if e["eventType"] == "userUpdated")
    assert updated["msgData"]["email"] == email
    assert updated["msgData"]["role"] == "observer"
    assert updated["msgData"]["oldRole"] == "user"


async def test_site_membership_events_also_land_on_the_site_feed(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site, other = list(sim_state.sites)[:2]
    email = next(
        u.email for u in sim_state.users.values() if u.role != "owner" and site not in u.sites
    )
    await api.patch(f"{CORP}/sites/{site}/members/{email}")
    site_feed = (await api.get(f"{CORP}/sites/{site}/activity")).json()
    assert [e["eventType"] for e in site_feed["data"]] == ["userAddedToSite"]
    assert site_feed["data"][0]["msgData"]["siteName"] == site
    assert site_feed["data"][0]["msgData"]["email"] == email
    assert (await api.get(f"{CORP}/sites/{other}/activity")).json()["data"] == []
    assert (await _types(api)) == ["userAddedToSite"]


@pytest.mark.parametrize(
    ("where", "on_corp", "on_site"),
    [("corp", True, False), ("site", False, True), ("both", True, True)],
)
async def test_the_membership_events_switch_picks_the_feeds_that_carry_them(
    where: str, on_corp: bool, on_site: bool
) -> None:
    app = create_app(SimConfig(users=10, sites=2, membership_events=where))
    state: SimState = app.state.sim.state
    site = next(iter(state.sites))
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        await client.post(f"{CORP}/users/joiner@example.com/invite", json={"role": "user"})
        await client.post(f"{CORP}/sites/{site}/members", json={"members": ["joiner@example.com"]})
        await client.delete(f"{CORP}/sites/{site}/members/joiner@example.com")
        corp_feed = await _types(client)
        site_feed = await _types(client, f"{CORP}/sites/{site}/activity")
    membership = ["userAddedToSite", "userRemovedFromSite"]
    assert corp_feed == ["corpUserInvited", *(membership if on_corp else [])]
    assert site_feed == (membership if on_site else [])
    # The simulator's own log keeps every event whichever feeds show it.
    assert [e.event_type for e in state.events] == ["corpUserInvited", *membership]


async def test_events_older_than_thirty_days_are_not_returned() -> None:
    clock = FrozenClock()
    app = create_app(
        SimConfig(users=10, sites=2), SimState(SimConfig(users=10, sites=2), now=clock)
    )
    state: SimState = app.state.sim.state
    state.add_user("old@example.com")
    clock.tick(20 * 86_400)
    state.add_user("newer@example.com")
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        assert (await client.get(f"{CORP}/activity")).json()["totalCount"] == 2
        clock.tick(11 * 86_400)
        feed = (await client.get(f"{CORP}/activity")).json()
        assert feed["totalCount"] == 1
        assert feed["data"][0]["msgData"]["email"] == "newer@example.com"
        state.advance_clock(30 * 86_400)
        assert (await client.get(f"{CORP}/activity")).json()["totalCount"] == 0


async def test_activity_pages_follow_next_uri_until_it_is_empty() -> None:
    clock = FrozenClock()
    config = SimConfig(users=10, sites=2)
    app = create_app(config, SimState(config, now=clock))
    state: SimState = app.state.sim.state
    for index in range(7):
        state.add_user(f"user{index}@example.com")
        clock.tick()
    collected: list[str] = []
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        uri = f"{CORP}/activity?sort=asc&limit=3"
        pages = 0
        while uri:
            page = (await client.get(uri)).json()
            assert page["totalCount"] == 7
            collected += [e["msgData"]["email"] for e in page["data"]]
            uri = page["next"]["uri"]
            pages += 1
    assert pages == 3
    assert collected == [f"user{i}@example.com" for i in range(7)]


async def test_from_until_and_sort_select_a_time_window() -> None:
    clock = FrozenClock()
    config = SimConfig(users=10, sites=2)
    app = create_app(config, SimState(config, now=clock))
    state: SimState = app.state.sim.state
    stamps = []
    for index in range(5):
        stamps.append(int(clock().timestamp()))
        state.add_user(f"user{index}@example.com")
        clock.tick(60)
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        window = (
            await client.get(
                f"{CORP}/activity", params={"from": stamps[1], "until": stamps[4], "sort": "asc"}
            )
        ).json()
        newest_first = (await client.get(f"{CORP}/activity", params={"sort": "desc"})).json()
        bad = await client.get(f"{CORP}/activity", params={"sort": "sideways"})
    assert [e["msgData"]["email"] for e in window["data"]] == [
        "user1@example.com",
        "user2@example.com",
        "user3@example.com",
    ]
    assert newest_first["data"][0]["msgData"]["email"] == "user4@example.com"
    assert bad.status_code == 400
