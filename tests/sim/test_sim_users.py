"""Corp users: list, get, memberships, invite, update, delete, visibility."""

from __future__ import annotations

import httpx
import pytest

from sigsci_iga.connectors.signalsciences.models import Membership, User, UserStatus
from sigsci_iga.sim import (
    OBSERVER_EMAIL,
    SimConfig,
    SimRuntime,
    SimState,
    create_app,
    demo_headers,
    inprocess_transport,
    observer_headers,
)

pytestmark = pytest.mark.anyio

CORP = "/api/v0/corps/testcorp"
USER_KEYS = {
    "name", "email", "announcements", "defaultDashboards", "memberships", "accessTokens",
    "role", "status", "mfaEnabled", "corpAuthType", "authStatus", "created", "apiUser",
    "accessTokenAllowed", "ssoProvisioned",
}  # fmt: skip


def _first_user(state: SimState, role: str = "user", status: str = "active") -> str:
    return next(
        u.email
        for u in state.users.values()
        if u.role == role and u.status == status and u.sites and u.email != OBSERVER_EMAIL
    )


def _sites(state: SimState) -> list[str]:
    return list(state.sites)


def _body(*sites: str, role: str = "user") -> dict[str, object]:
    return {"role": role, "memberships": {"data": [{"site": {"name": s}} for s in sites]}}


async def test_users_list_is_unpaginated_and_expands_memberships(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    plain = (await api.get(f"{CORP}/users")).json()
    assert set(plain) == {"data"}
    assert len(plain["data"]) == len(sim_state.users) == 50
    assert all(u["memberships"]["data"] == [] for u in plain["data"])
    assert all(
        u["memberships"]["uri"] == f"{CORP}/users/{u['email']}/memberships" for u in plain["data"]
    )
    expanded = (await api.get(f"{CORP}/users", params={"expand": "memberships"})).json()
    by_email = {u["email"]: u for u in expanded["data"]}
    for record in sim_state.users.values():
        names = sorted(m["site"]["name"] for m in by_email[record.email]["memberships"]["data"])
        expected = sorted(sim_state.sites) if record.role == "owner" else sorted(record.sites)
        assert names == expected


async def test_user_objects_have_every_reference_key_and_parse_with_the_client_models(
    api: httpx.AsyncClient,
) -> None:
    data = (await api.get(f"{CORP}/users", params={"expand": "memberships"})).json()["data"]
    for item in data:
        assert set(item) == USER_KEYS
        user = User.model_validate(item)
        assert user.email == item["email"] == item["email"].lower()
        assert user.role in {"owner", "admin", "user", "observer"}
    statuses = {item["status"] for item in data}
    assert statuses == {"active", "pending"}
    assert all(item["created"].endswith("Z") for item in data)


async def test_get_user_and_memberships_return_the_user_and_its_sites(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    user = (await api.get(f"{CORP}/users/{email}")).json()
    assert user["email"] == email
    assert user["memberships"]["data"] == []
    memberships = (await api.get(f"{CORP}/users/{email}/memberships")).json()
    parsed = [Membership.model_validate(m) for m in memberships["data"]]
    assert sorted(m.site.name for m in parsed) == sorted(sim_state.users[email].sites)
    assert all(m.role == sim_state.users[email].role and m.site.display_name for m in parsed)


async def test_unknown_user_is_400_id_not_found_by_default(api: httpx.AsyncClient) -> None:
    for path in ("", "/memberships"):
        response = await api.get(f"{CORP}/users/nobody@example.com{path}")
        assert response.status_code == 400
        assert response.json() == {"message": "ID not found"}


async def test_unknown_user_status_switches_to_404() -> None:
    app = create_app(SimConfig(users=10, sites=2, not_found_status=404))
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        response = await client.get(f"{CORP}/users/nobody@example.com")
    assert response.status_code == 404
    assert response.json() == {"message": "ID not found"}


async def test_percent_encoded_emails_in_paths_are_decoded(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = _sites(sim_state)[0]
    invited = await api.post(f"{CORP}/users/jo%2Btag%40example.com/invite", json=_body(site))
    assert invited.status_code == 200
    assert invited.json()["email"] == "jo+tag@example.com"
    assert (await api.get(f"{CORP}/users/jo%2Btag%40example.com")).status_code == 200
    assert (await api.get(f"{CORP}/users/jo+tag@example.com")).status_code == 200


async def test_invite_creates_a_pending_user_with_its_sites_and_the_email_as_given(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    sites = _sites(sim_state)[:2]
    response = await api.post(f"{CORP}/users/New.Person@Example.com/invite", json=_body(*sites))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["email"] == "New.Person@Example.com"
    assert body["status"] == "pending"
    assert body["role"] == "user"
    assert User.model_validate(body).status is UserStatus.PENDING
    assert sim_state.users["New.Person@Example.com"].sites == set(sites)
    for site in sites:
        assert "New.Person@Example.com" in sim_state.sites[site].members


async def test_a_mixed_case_email_is_matched_exactly_by_default(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = _sites(sim_state)[0]
    sim_state.add_user("Mixed.Case@corp.example", "user", [site])
    exact = await api.get(f"{CORP}/users/Mixed.Case@corp.example")
    assert exact.json()["email"] == "Mixed.Case@corp.example"
    for path in ("", "/memberships"):
        recased = await api.get(f"{CORP}/users/mixed.case@corp.example{path}")
        assert (recased.status_code, recased.json()) == (400, {"message": "ID not found"})
    for call in (
        api.delete(f"{CORP}/sites/{site}/members/mixed.case@corp.example"),
        api.post(f"{CORP}/sites/{site}/members", json={"members": ["mixed.case@corp.example"]}),
        api.patch(f"{CORP}/users/mixed.case@corp.example", json={"role": "admin"}),
        api.delete(f"{CORP}/users/mixed.case@corp.example"),
    ):
        assert (await call).status_code == 400
    assert sim_state.users["Mixed.Case@corp.example"].sites == {site}
    duplicate = await api.post(f"{CORP}/users/MIXED.CASE@corp.example/invite", json=_body(site))
    assert duplicate.json() == {"message": "User already exists"}


async def test_a_case_insensitive_server_finds_any_spelling_and_answers_the_stored_one() -> None:
    app = create_app(SimConfig(users=10, sites=2, email_matching="insensitive"))
    state: SimState = app.state.sim.state
    site = next(iter(state.sites))
    state.add_user("Mixed.Case@corp.example", "user", [site])
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        found = await client.get(f"{CORP}/users/MIXED.case@corp.example")
        removed = await client.delete(f"{CORP}/sites/{site}/members/mixed.case@corp.example")
    assert found.json()["email"] == "Mixed.Case@corp.example"
    assert removed.status_code == 204
    assert state.users["Mixed.Case@corp.example"].sites == set()


async def test_invite_accepts_legacy_corp_role_names(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    site = _sites(sim_state)[0]
    response = await api.post(
        f"{CORP}/users/legacy@example.com/invite", json=_body(site, role="corpObserver")
    )
    assert response.status_code == 200
    assert response.json()["role"] == "observer"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_body("no-such-site.example"), "Site not found"),
        ({"memberships": {"data": []}}, "role is required"),
        ({"role": "emperor"}, "Invalid role: emperor"),
    ],
)
async def test_invalid_invites_are_400_with_a_message(
    api: httpx.AsyncClient, sim_state: SimState, body: dict[str, object], message: str
) -> None:
    response = await api.post(f"{CORP}/users/someone.new@example.com/invite", json=body)
    assert response.status_code == 400
    assert response.json() == {"message": message}
    assert "someone.new@example.com" not in sim_state.users


async def test_inviting_an_existing_email_is_400_user_already_exists(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    response = await api.post(f"{CORP}/users/{email}/invite", json=_body(_sites(sim_state)[0]))
    assert response.status_code == 400
    assert response.json() == {"message": "User already exists"}


async def test_pending_status_string_is_configurable() -> None:
    app = create_app(SimConfig(users=40, sites=2, pending_status="invited", pending_share=0.5))
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        invited = await client.post(f"{CORP}/users/x@example.com/invite", json={"role": "user"})
        listed = (await client.get(f"{CORP}/users")).json()["data"]
    assert invited.json()["status"] == "invited"
    assert {u["status"] for u in listed} == {"active", "invited"}


async def test_patch_memberships_replaces_the_whole_set(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    target = [s for s in _sites(sim_state) if s not in sim_state.users[email].sites][:1]
    response = await api.patch(f"{CORP}/users/{email}", json=_body(*target))
    assert response.status_code == 200
    assert set(response.json()) == USER_KEYS
    assert sim_state.users[email].sites == set(target)
    memberships = (await api.get(f"{CORP}/users/{email}/memberships")).json()["data"]
    assert [m["site"]["name"] for m in memberships] == target


async def test_put_updates_like_patch_and_changes_the_role(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    before = set(sim_state.users[email].sites)
    response = await api.put(f"{CORP}/users/{email}", json={"role": "admin", "apiUser": True})
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert response.json()["apiUser"] is True
    assert sim_state.users[email].sites == before  # no memberships key: the set is kept


async def test_updates_ignore_a_name_unless_renames_are_switched_on(
    api: httpx.AsyncClient, sim_state: SimState, sim_runtime: SimRuntime
) -> None:
    email = _first_user(sim_state)
    name = sim_state.users[email].name
    ignored = await api.patch(f"{CORP}/users/{email}", json={"name": "New Name"})
    assert (ignored.status_code, ignored.json()["name"]) == (200, name)
    assert sim_state.events == []
    sim_runtime.config.update_renames = True
    renamed = await api.patch(f"{CORP}/users/{email}", json={"name": "New Name"})
    assert renamed.json()["name"] == "New Name"


async def test_invites_ignore_api_user_unless_switched_on(
    api: httpx.AsyncClient, sim_state: SimState, sim_runtime: SimRuntime
) -> None:
    body = {"role": "user", "apiUser": True}
    ignored = await api.post(f"{CORP}/users/plain@example.com/invite", json=body)
    assert ignored.json()["apiUser"] is False
    sim_runtime.config.invite_api_user = True
    honoured = await api.post(f"{CORP}/users/robot@example.com/invite", json=body)
    assert honoured.json()["apiUser"] is True


async def test_promoting_to_owner_grants_every_site_implicitly(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    await api.patch(f"{CORP}/users/{email}", json={"role": "owner"})
    assert sim_state.users[email].sites == set()
    memberships = (await api.get(f"{CORP}/users/{email}/memberships")).json()["data"]
    assert sorted(m["site"]["name"] for m in memberships) == sorted(sim_state.sites)


async def test_delete_user_is_204_with_an_empty_body_and_removes_its_memberships(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    sites = set(sim_state.users[email].sites)
    response = await api.delete(f"{CORP}/users/{email}")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert email not in sim_state.users
    assert all(email not in sim_state.sites[s].members for s in sites)
    again = await api.delete(f"{CORP}/users/{email}")
    assert again.status_code == 400
    assert again.json() == {"message": "ID not found"}


async def test_get_and_delete_tolerate_a_json_content_type_without_a_body(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    headers = {"Content-Type": "application/json"}
    assert (await api.get(f"{CORP}/users", headers=headers)).status_code == 200
    assert (await api.delete(f"{CORP}/users/{email}", headers=headers)).status_code == 204


async def test_the_last_owner_cannot_be_deleted() -> None:
    config = SimConfig(users=5, sites=1, owners=1)
    app = create_app(config)
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        response = await client.delete(f"{CORP}/users/owner@testcorp.example")
    assert response.status_code == 400


async def test_observer_sees_only_users_and_sites_it_shares(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    observer = sim_state.users[OBSERVER_EMAIL]
    users = (await api.get(f"{CORP}/users", headers=observer_headers())).json()["data"]
    visible = {u["email"] for u in users}
    expected = {OBSERVER_EMAIL, *sim_state.owners()}
    for site in observer.sites:
        expected |= sim_state.sites[site].members
    assert visible == expected
    assert len(visible) < len(sim_state.users)
    sites = (await api.get(f"{CORP}/sites", headers=observer_headers())).json()
    assert sorted(s["name"] for s in sites["data"]) == sorted(observer.sites)
    hidden = next(s for s in sim_state.sites if s not in observer.sites)
    response = await api.get(f"{CORP}/sites/{hidden}", headers=observer_headers())
    assert response.status_code == 400


async def test_observer_cannot_invite_update_or_delete(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    observer = sim_state.users[OBSERVER_EMAIL]
    site = sorted(observer.sites)[0]
    headers = observer_headers()
    member = next(e for e in sim_state.sites[site].members if e != OBSERVER_EMAIL)
    calls = [
        api.post(f"{CORP}/users/x@example.com/invite", json=_body(site), headers=headers),
        api.patch(f"{CORP}/users/{member}", json={"role": "admin"}, headers=headers),
        api.delete(f"{CORP}/users/{member}", headers=headers),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403
        assert response.json() == {"message": "Forbidden"}


async def test_register_turns_a_pending_invitee_active(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    await api.post(f"{CORP}/users/fresh@example.com/invite", json={"role": "observer"})
    sim_state.register("fresh@example.com", name="Fresh Person")
    user = (await api.get(f"{CORP}/users/fresh@example.com")).json()
    assert user["status"] == "active"
    assert user["name"] == "Fresh Person"


async def test_patch_without_changes_emits_no_event(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    email = _first_user(sim_state)
    user = sim_state.users[email]
    body = _body(*sorted(user.sites), role=user.role)
    assert (await api.patch(f"{CORP}/users/{email}", json=body)).status_code == 200
    assert sim_state.events == []


def test_a_state_and_a_different_config_are_refused_together() -> None:
    with pytest.raises(ValueError, match="same config"):
        create_app(SimConfig(users=5, sites=1), SimState(SimConfig(users=6, sites=1)))
