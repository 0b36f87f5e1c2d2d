"""Password sessions: login through POST /auth, one re-login when the session expires."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from client_harness import Sim, SimFactory, raises, run
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import AuthError, ConfigError
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_PASSWORD

AUTH_ROUTE = "POST /auth"
CORP_ROUTE = "GET /corps/{corp}"


def test_a_client_with_only_a_password_logs_in_through_auth_and_works(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client(token=None, password=SecretStr(DEMO_PASSWORD)) as client:
            assert (await client.get_corp()).name == DEMO_CORP
            assert len(await client.list_users()) == len(sim.state.users)
            assert await client.invite_user("via.session@example.com", role="user", sites=[])

    run(go())
    assert sim.calls(AUTH_ROUTE) == 1
    login, *rest = sim.requests
    assert login.method == "POST"
    assert login.url.path == "/api/v0/auth"
    assert "x-api-token" not in login.headers
    assert "authorization" not in login.headers
    assert parse_qs(login.content.decode()) == {"email": [DEMO_EMAIL], "password": [DEMO_PASSWORD]}
    assert all(r.headers["authorization"].startswith("Bearer ") for r in rest)
    assert all("x-api-token" not in r.headers for r in rest)
    assert sim.state.get_user("via.session@example.com") is not None


def test_a_wrong_password_is_an_auth_error(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client(token=None, password=SecretStr("wrong-password")) as client:
            error = await raises(AuthError, client.get_corp())
        assert error.status == 401
        assert error.message == "Login failed"
        assert "wrong-password" not in str(error)

    run(go())
    assert sim.calls(AUTH_ROUTE) == 1
    assert sim.calls(CORP_ROUTE) == 0


def test_an_expired_session_is_renewed_by_logging_in_once_more(
    make_sim: SimFactory, mode: str
) -> None:
    sim = make_sim(mode, session_max_age_seconds=60)

    async def go() -> None:
        async with sim.client(token=None, password=SecretStr(DEMO_PASSWORD)) as client:
            await client.get_corp()
            sim.advance_clock(61)
            assert (await client.get_corp()).name == DEMO_CORP
            await client.get_corp()

    run(go())
    assert sim.calls(AUTH_ROUTE) == 2
    # First read, the read the expired session got refused, its repeat, and one more.
    assert sim.calls(CORP_ROUTE) == 4
    assert [r.status for r in sim.records] == [200, 200, 401, 200, 200, 200]


def test_a_session_refused_right_after_a_fresh_login_fails_after_one_renewal(
    local_sim: Sim,
) -> None:
    sim = local_sim
    sim.config.session_max_age_seconds = 0  # every session is dead on arrival

    async def go() -> None:
        async with sim.client(token=None, password=SecretStr(DEMO_PASSWORD)) as client:
            await raises(AuthError, client.get_corp())

    run(go())
    assert sim.calls(AUTH_ROUTE) == 2
    assert sim.calls(CORP_ROUTE) == 2


def test_a_refused_api_token_never_falls_back_to_a_password_login(local_sim: Sim) -> None:
    sim = local_sim

    async def go() -> None:
        async with sim.client(
            token=SecretStr("revoked-token"), password=SecretStr(DEMO_PASSWORD)
        ) as client:
            await raises(AuthError, client.get_corp())

    run(go())
    assert sim.calls(AUTH_ROUTE) == 0


def test_a_client_needs_a_token_or_a_password() -> None:
    with pytest.raises(ConfigError, match="token"):
        SigSciClient(base_url="http://sim", corp=DEMO_CORP, email=DEMO_EMAIL)
