"""Every error class of the tree, each from a real simulator response (or a real failed connection)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from client_harness import Sim, SimFactory, raises, run
from pydantic import SecretStr

from sigsci_iga.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    TransientError,
    UnexpectedResponseError,
)
from sigsci_iga.sim import DEMO_EMAIL, OBSERVER_EMAIL, OBSERVER_TOKEN

INVITE_ROUTE = "POST /corps/{corp}/users/{email}/invite"
CORP_ROUTE = "GET /corps/{corp}"


def test_a_wrong_token_is_an_auth_error(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client(token=SecretStr("not-the-token")) as client:
            error = await raises(AuthError, client.get_corp())
        assert error.status == 401
        assert "not-the-token" not in str(error)

    run(go())
    assert sim.calls(CORP_ROUTE) == 1  # refused credentials are not retried


def test_a_token_past_its_lifetime_is_an_auth_error(make_sim: SimFactory, mode: str) -> None:
    sim = make_sim(mode, token_expiry_seconds=60)

    async def before() -> int | None:
        async with sim.client() as client:
            return (await client.get_corp()).api_token_max_age

    assert run(before()) == 60
    sim.advance_clock(61)

    async def after() -> None:
        async with sim.client() as client:
            error = await raises(AuthError, client.get_corp())
        assert error.status == 401

    run(after())


def test_an_observer_token_doing_a_write_is_refused_with_403(sim: Sim) -> None:
    site = sorted(sim.state.sites)[0]

    async def go() -> None:
        async with sim.client(email=OBSERVER_EMAIL, token=SecretStr(OBSERVER_TOKEN)) as client:
            assert (await client.get_corp()).name == sim.config.corp  # reads are allowed
            error = await raises(
                AuthError, client.invite_user("x@example.com", role="user", sites=[site])
            )
        assert error.status == 403
        assert error.message == "Forbidden"

    run(go())
    assert sim.state.get_user("x@example.com") is None
    assert sim.calls(INVITE_ROUTE) == 1


@pytest.mark.parametrize(("kind", "status"), [("throttle_429", 429), ("throttle_400", 400)])
def test_a_throttled_write_is_a_rate_limit_error_sent_exactly_once(
    sim: Sim, kind: str, status: int
) -> None:
    sim.fault(kind, method="POST", path="/invite$")

    async def go() -> None:
        async with sim.client(read_attempts=5) as client:
            error = await raises(
                RateLimitedError, client.invite_user("t@example.com", role="user", sites=[])
            )
            assert error.status == status
            assert error.message == "Rate limit exceeded"
            assert error.retryable
            assert client.calls["POST /api/v0/corps/{corp}/users/{email}/invite"] == 1

    run(go())
    assert sim.calls(INVITE_ROUTE) == 1
    assert sim.state.get_user("t@example.com") is None


def test_the_servers_own_rate_limit_is_a_rate_limit_error_once_reads_give_up(
    make_sim: SimFactory,
) -> None:
    sim = make_sim(rate_limit_per_minute=2, rate_limit_status=400)

    async def go() -> RateLimitedError:
        async with sim.client(read_attempts=3) as client:
            await client.get_corp()
            await client.get_corp()
            return await raises(RateLimitedError, client.get_corp())

    error = run(go())
    assert error.message.startswith("Rate limit exceeded; still throttled")
    # Throttling is retried for a time (0.5 s in these tests), not for read_attempts tries.
    assert sim.calls(CORP_ROUTE) > 2 + 3


def test_an_unknown_corp_is_not_found(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client(corp="othercorp") as client:
            error = await raises(NotFoundError, client.get_corp())
        assert error.status == 404
        assert error.message == "Corp not found"

    run(go())


def test_inviting_an_existing_user_is_a_conflict(sim: Sim) -> None:
    async def go() -> None:
        async with sim.client() as client:
            error = await raises(
                ConflictError, client.invite_user(DEMO_EMAIL, role="user", sites=[])
            )
        assert error.status == 400
        assert error.message == "User already exists"

    run(go())
    assert sim.calls(INVITE_ROUTE) == 1


def test_requests_the_server_refuses_as_invalid_are_bad_requests(sim: Sim) -> None:
    state = sim.state
    site = sorted(state.sites)[0]
    outsider = next(u for u in state.users.values() if u.role != "owner" and site not in u.sites)

    async def go() -> None:
        async with sim.client() as client:
            owner = await raises(BadRequestError, client.remove_site_member(site, DEMO_EMAIL))
            assert owner.status == 400
            assert owner.message == "Owners are members of every site"
            stranger = await raises(
                BadRequestError, client.remove_site_member(site, outsider.email)
            )
            assert stranger.message == "User is not a member of this site"

    run(go())


FAILURES = [
    ("error_500", 500),
    ("error_524", 524),
    ("drop", None),
    ("truncate", 200),
    ("timeout", None),
]


@pytest.mark.parametrize(("kind", "status"), FAILURES)
def test_server_and_connection_failures_are_transient_errors(
    sim: Sim, kind: str, status: int | None
) -> None:
    sim.fault(kind, method="GET", path="/corps/testcorp$")

    async def go() -> None:
        async with sim.client(read_attempts=1, timeout=0.5 if kind == "timeout" else 5.0) as client:
            error = await raises(TransientError, client.get_corp())
        assert error.status == status
        assert error.retryable

    run(go())
    assert sim.calls(CORP_ROUTE) == 1
    # A truncated 200 keeps its status in the record, and the record says the call failed.
    assert [r.status for r in sim.records] == [status]
    assert all(r.error for r in sim.records)


def test_a_redirect_to_a_login_page_is_refused_never_followed_and_never_read(sim: Sim) -> None:
    sim.fault("login_redirect", method="GET", path="/users$")

    async def go() -> None:
        async with sim.client(read_attempts=3) as client:
            error = await raises(UnexpectedResponseError, client.list_users())
        assert error.status == 302
        assert error.message == "redirect to /login refused"
        assert not error.retryable

    run(go())
    # One request went out: no retry, no visit to /login, and no "empty user list" was produced.
    assert [r.url.path for r in sim.requests] == ["/api/v0/corps/testcorp/users"]
    assert sim.calls("GET /corps/{corp}/users") == 1
    assert [(r.status, r.error) for r in sim.records] == [(302, "redirect to /login refused")]


def _rewrite_next(target: str) -> Any:
    """A response hook giving the simulator's next links a different destination."""

    async def hook(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        await response.aread()
        body = json.loads(response.content)
        if isinstance(body, dict) and isinstance(body.get("next"), dict) and body["next"]["uri"]:
            body["next"]["uri"] = target
            return httpx.Response(
                response.status_code,
                headers={"content-type": "application/json"},
                content=json.dumps(body).encode(),
                request=request,
            )
        return response

    return hook


FOREIGN_LINKS = [
    "https://evil.example/api/v0/corps/testcorp/activity?page=2",
    "//evil.example/api/v0/corps/testcorp/activity?page=2",
    "http://sim/api/v0/corps/testcorp/activity?page=2",
    "/elsewhere/activity?page=2",
]


@pytest.mark.parametrize("target", FOREIGN_LINKS)
def test_a_next_link_leaving_the_api_is_refused_without_being_requested(
    sim: Sim, target: str
) -> None:
    state = sim.state
    for index in range(4):
        state.add_user(f"paged{index}@example.com", "user", [])
    sim.response_hook = _rewrite_next(target)

    async def go() -> None:
        async with sim.client() as client:
            pages = client.iter_activity_pages(sort="asc", limit=2)
            first = await anext(pages)
            assert len(first.items) == 2
            error = await raises(UnexpectedResponseError, anext(pages))
        assert "leaves the API" in error.message

    run(go())
    assert len(sim.requests) == 1
    assert all(r.url.host != "evil.example" for r in sim.requests)


def test_a_site_page_link_leaving_the_api_is_refused_without_being_requested(
    make_sim: SimFactory, mode: str
) -> None:
    sim = make_sim(mode, sites=5, sites_next_links=True)
    sim.response_hook = _rewrite_next("https://evil.example/api/v0/corps/testcorp/sites?page=2")

    async def go() -> None:
        async with sim.client() as client:
            await raises(UnexpectedResponseError, client.list_sites(limit=2))

    run(go())
    assert [r.url.host for r in sim.requests] == [httpx.URL(sim.base_url).host]


def test_a_token_the_server_echoes_back_is_scrubbed_from_errors_and_call_records(
    sim: Sim,
) -> None:
    # An API token that is also the text the server repeats in its message ("ID not found: X").
    echoed = "echoed-token@example.com"
    sim.state.add_api_token(DEMO_EMAIL, echoed)
    site = sorted(sim.state.sites)[0]

    async def go() -> None:
        async with sim.client(token=SecretStr(echoed)) as client:
            error = await raises(NotFoundError, client.add_site_members(site, [echoed]))
        assert echoed not in str(error)
        assert error.message == "ID not found: ***"

    run(go())
    assert sim.records
    assert all(echoed not in repr(record) for record in sim.records)
