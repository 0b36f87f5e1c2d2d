"""Authentication and the corp endpoints."""

from __future__ import annotations

import httpx
import pytest

from sigsci_iga.connectors.signalsciences.models import Corp
from sigsci_iga.sim import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOKEN,
    SimConfig,
    SimState,
    create_app,
    inprocess_transport,
)

pytestmark = pytest.mark.anyio

CORP = "/api/v0/corps/testcorp"
UNAUTHORIZED = {"message": "Unauthorized: You must be logged in to call this API"}


def _bare(app_transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=app_transport, base_url="http://sim.test")


async def test_access_token_headers_authenticate_in_any_letter_case(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    async with _bare(sim_transport) as client:
        for user_header, token_header in [
            ("x-api-user", "x-api-token"),
            ("X-API-User", "X-API-Token"),
            ("X-Api-User", "X-Api-Token"),
        ]:
            response = await client.get(
                "/api/v0/corps", headers={user_header: DEMO_EMAIL, token_header: DEMO_TOKEN}
            )
            assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-user": DEMO_EMAIL},
        {"x-api-user": DEMO_EMAIL, "x-api-token": "wrong"},
        {"x-api-user": "observer@testcorp.example", "x-api-token": DEMO_TOKEN},
        {"authorization": "Bearer not-a-session"},
    ],
)
async def test_missing_or_wrong_credentials_get_401_with_the_documented_message(
    sim_transport: httpx.AsyncBaseTransport, headers: dict[str, str]
) -> None:
    async with _bare(sim_transport) as client:
        response = await client.get(f"{CORP}/users", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == UNAUTHORIZED


async def test_password_login_returns_a_uuid_token_usable_as_bearer(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    async with _bare(sim_transport) as client:
        login = await client.post(
            "/api/v0/auth", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        )
        assert login.status_code == 200
        token = login.json()["token"]
        assert len(token) == 36
        assert token.count("-") == 4
        users = await client.get(f"{CORP}/users", headers={"Authorization": f"Bearer {token}"})
        assert users.status_code == 200


async def test_wrong_password_is_401_login_failed(sim_transport: httpx.AsyncBaseTransport) -> None:
    async with _bare(sim_transport) as client:
        response = await client.post(
            "/api/v0/auth", data={"email": DEMO_EMAIL, "password": "not-the-password"}
        )
    assert response.status_code == 401
    assert response.json() == {"message": "Login failed"}


@pytest.mark.parametrize(
    "form",
    [
        {"email": DEMO_EMAIL},
        {"password": DEMO_PASSWORD},
        {},
        {"email": "nobody@example.com", "password": DEMO_PASSWORD},
    ],
)
async def test_any_failed_login_is_401_login_failed(
    sim_transport: httpx.AsyncBaseTransport, form: dict[str, str]
) -> None:
    async with _bare(sim_transport) as client:
        response = await client.post("/api/v0/auth", data=form)
    assert response.status_code == 401
    assert response.json() == {"message": "Login failed"}


async def test_logout_redirects_to_login_and_ends_the_session(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    async with _bare(sim_transport) as client:
        token = (
            await client.post("/api/v0/auth", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        ).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        logout = await client.get("/api/v0/auth/logout", headers=bearer)
        assert logout.status_code == 302
        assert logout.headers["location"] == "/login"
        assert (await client.get("/api/v0/corps", headers=bearer)).status_code == 401


async def test_api_token_expires_after_the_configured_lifetime_from_its_creation() -> None:
    app = create_app(SimConfig(users=10, sites=2, token_expiry_seconds=3600))
    state: SimState = app.state.sim.state
    headers = {"x-api-user": DEMO_EMAIL, "x-api-token": DEMO_TOKEN}
    async with _bare(inprocess_transport(app)) as client:
        corp = await client.get(CORP, headers=headers)
        assert corp.json()["apiTokenMaxAge"] == 3600
        # The simulator's clock is real time plus the advance: leave a margin for a loaded machine.
        state.advance_clock(3540)
        assert (await client.get(CORP, headers=headers)).status_code == 200
        state.advance_clock(61)
        expired = await client.get(CORP, headers=headers)
        assert expired.status_code == 401
        assert expired.json() == UNAUTHORIZED


async def test_deleted_users_tokens_stop_working(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    sim_state.add_user("temp.user@example.com", "user", name="Temp User")
    sim_state.add_api_token("temp.user@example.com", "temp-token")
    temp = {"x-api-user": "temp.user@example.com", "x-api-token": "temp-token"}
    assert (await api.get(CORP, headers=temp)).status_code == 200
    sim_state.remove_user("temp.user@example.com")
    assert (await api.get(CORP, headers=temp)).status_code == 401


async def test_corp_list_and_corp_object_carry_every_reference_field(
    api: httpx.AsyncClient,
) -> None:
    listed = await api.get("/api/v0/corps")
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["data"]] == ["testcorp"]
    corp = (await api.get(CORP)).json()
    expected = {
        "name", "displayName", "smallIconURI", "created", "siteLimit", "sites", "authType",
        "logoutURI", "samlCert", "samlEndpoint", "signRequestsUsingStoredCert",
        "samlRequestCert", "sessionMaxAgeDashboard", "apiAllowedIPs", "apiTokenMaxAge",
        "restrictedAccessTokens", "ssoProvisioningConfigured",
    }  # fmt: skip
    assert expected <= set(corp)
    assert corp["sites"] == {"uri": f"{CORP}/sites"}
    assert corp["apiTokenMaxAge"] == 0
    assert Corp.model_validate(corp).name == "testcorp"


async def test_unknown_corp_is_404_corp_not_found(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v0/corps/othercorp/users")
    assert response.status_code == 404
    assert response.json() == {"message": "Corp not found"}


async def test_unknown_api_paths_answer_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v0/corps/testcorp/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
