"""The real third-party client pysigsci against the simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pysigsci import sigsciapi

from sigsci_iga.sim import DEMO_EMAIL, DEMO_PASSWORD, DEMO_TOKEN, SimState


@pytest.fixture
def pysigsci_api(sim_server: str, sim_state: SimState) -> Iterator[sigsciapi.SigSciApi]:
    """A fresh pysigsci client on the simulator; its class-level header dict is reset."""
    sigsciapi.SigSciApi.headers = {}
    api = sigsciapi.SigSciApi(email=DEMO_EMAIL, api_token=DEMO_TOKEN)
    api.headers = {}
    api.base_url = sim_server + "/api/"
    api.corp = "testcorp"
    api.site = next(iter(sim_state.sites))
    yield api
    sigsciapi.SigSciApi.headers = {}


def test_pysigsci_lists_users_sites_and_members(
    pysigsci_api: sigsciapi.SigSciApi, sim_state: SimState
) -> None:
    users = pysigsci_api.get_corp_users()["data"]
    assert len(users) == len(sim_state.users)
    expanded = pysigsci_api.get_corp_users(expand="memberships")["data"]
    assert any(u["memberships"]["data"] for u in expanded)
    sites = pysigsci_api.get_corp_sites()
    assert set(sites) == {"data"}
    assert len(sites["data"]) == min(10, len(sim_state.sites))
    members = pysigsci_api.get_site_members()["data"]
    assert {m["user"]["email"] for m in members} == set(
        sim_state.site_member_emails(pysigsci_api.site)
    )
    assert pysigsci_api.get_corp()["name"] == "testcorp"


def test_pysigsci_invites_and_deletes_a_user(
    pysigsci_api: sigsciapi.SigSciApi, sim_state: SimState
) -> None:
    site = pysigsci_api.site
    invited = pysigsci_api.add_corp_user(
        "py.client@example.com",
        {"role": "user", "memberships": {"data": [{"site": {"name": site}}]}},
    )
    assert invited["status"] == "pending"
    assert sim_state.users["py.client@example.com"].sites == {site}
    memberships = pysigsci_api.get_memberships("py.client@example.com")["data"]
    assert [m["site"]["name"] for m in memberships] == [site]
    assert pysigsci_api.delete_corp_user("py.client@example.com") == {
        "message": "DELETE successful."
    }
    assert "py.client@example.com" not in sim_state.users
    with pytest.raises(Exception, match="400 Bad Request: ID not found"):
        pysigsci_api.get_corp_user("py.client@example.com")


def test_pysigsci_password_login_uses_a_bearer_session(sim_server: str) -> None:
    sigsciapi.SigSciApi.headers = {}
    sigsciapi.SigSciApi.base_url = sim_server + "/api/"
    try:
        api = sigsciapi.SigSciApi(email=DEMO_EMAIL, password=DEMO_PASSWORD)
        api.corp = "testcorp"
        assert api.get_corps()["data"][0]["name"] == "testcorp"
    finally:
        sigsciapi.SigSciApi.base_url = "https://dashboard.signalsciences.net/api/"
        sigsciapi.SigSciApi.headers = {}
