"""Fault injection, call counters, the server-side rate limit and the /_sim admin API."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sigsci_iga.sim import (
    FaultKind,
    FaultRule,
    SimConfig,
    SimRuntime,
    SimState,
    create_app,
    demo_headers,
    inprocess_transport,
)

pytestmark = pytest.mark.anyio

CORP = "/api/v0/corps/testcorp"
USERS = f"{CORP}/users"


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("throttle_429", 429, "Rate limit exceeded"),
        ("throttle_400", 400, "Rate limit exceeded"),
        ("error_500", 500, "Internal Server Error"),
        ("error_524", 524, "A timeout occurred"),
    ],
)
async def test_canned_error_faults_answer_their_status_with_a_json_message(
    api: httpx.AsyncClient, sim_runtime: SimRuntime, kind: str, status: int, message: str
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind(kind), count=1))
    response = await api.get(USERS)
    assert response.status_code == status
    assert response.json() == {"message": message}
    assert "retry-after" not in response.headers
    assert (await api.get(USERS)).status_code == 200  # the one-shot rule is used up


async def test_login_redirect_fault_answers_302_to_login_with_html(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.LOGIN_REDIRECT, count=1))
    response = await api.get(USERS)
    assert response.status_code == 302
    assert response.headers["location"] == "/login"
    assert response.headers["content-type"].startswith("text/html")


async def test_empty_users_fault_is_one_shot_and_only_hits_the_users_list(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.EMPTY_USERS))
    assert (await api.get(f"{CORP}/sites")).json()["data"] != []
    assert (await api.get(USERS)).json() == {"data": []}
    assert len((await api.get(USERS)).json()["data"]) == 50


async def test_latency_fault_delays_matching_requests_only(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.LATENCY, latency_ms=200, path="/users$"))
    started = time.perf_counter()
    assert (await api.get(f"{CORP}/sites")).status_code == 200
    fast = time.perf_counter() - started
    started = time.perf_counter()
    assert (await api.get(USERS)).status_code == 200
    slow = time.perf_counter() - started
    assert fast < 0.2 <= slow


async def test_in_process_timeout_raises_read_timeout_without_waiting(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.TIMEOUT, count=1))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        await api.get(USERS)
    assert time.perf_counter() - started < 1


async def test_in_process_drop_raises_remote_protocol_error_after_the_write_lands(
    api: httpx.AsyncClient, sim_runtime: SimRuntime, sim_state: SimState
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.DROP, method="POST", count=1))
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post(f"{USERS}/dropped@example.com/invite", json={"role": "user"})
    assert "dropped@example.com" in sim_state.users


async def test_in_process_truncate_gives_invalid_json_of_the_announced_length(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.TRUNCATE, count=1))
    response = await api.get(USERS)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_rules_filter_by_method_and_path_and_zero_probability_never_fires(
    api: httpx.AsyncClient, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.replace(
        [
            FaultRule(kind=FaultKind.ERROR_500, method="DELETE"),
            FaultRule(kind=FaultKind.THROTTLE_429, path=r"/sites$"),
            FaultRule(kind=FaultKind.ERROR_524, probability=0.0),
        ]
    )
    assert (await api.get(USERS)).status_code == 200
    assert (await api.get(f"{CORP}/sites")).status_code == 429
    assert (await api.delete(f"{USERS}/nobody@example.com")).status_code == 500


async def test_probabilistic_faults_repeat_for_the_same_seed() -> None:
    async def outcomes() -> list[int]:
        config = SimConfig(users=5, sites=1, seed=3)
        config.faults = [FaultRule(kind=FaultKind.THROTTLE_429, probability=0.5)]
        app = create_app(config)
        async with httpx.AsyncClient(
            transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
        ) as client:
            return [(await client.get("/api/v0/corps")).status_code for _ in range(30)]

    first = await outcomes()
    assert first == await outcomes()
    assert {200, 429} == set(first)


async def test_calls_are_counted_per_route_template_and_can_be_reset(
    api: httpx.AsyncClient, sim_runtime: SimRuntime, sim_state: SimState
) -> None:
    emails = list(sim_state.users)[:3]
    for email in emails:
        await api.get(f"{USERS}/{email}")
    await api.get(USERS)
    await api.get("/_sim/health")
    calls = (await api.get("/_sim/calls")).json()
    assert calls == {
        "calls": {"GET /corps/{corp}/users": 1, "GET /corps/{corp}/users/{email}": 3},
        "total": 4,
    }
    assert sim_runtime.calls["GET /corps/{corp}/users/{email}"] == 3
    assert (await api.delete("/_sim/calls")).json()["total"] == 0
    assert sim_runtime.calls.total() == 0


@pytest.mark.parametrize("status", [429, 400])
async def test_server_rate_limit_refuses_calls_beyond_the_per_minute_budget(status: int) -> None:
    config = SimConfig(users=5, sites=1, rate_limit_per_minute=3, rate_limit_status=status)
    app = create_app(config)
    state: SimState = app.state.sim.state
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        statuses = [(await client.get("/api/v0/corps")).status_code for _ in range(5)]
        refused = await client.get("/api/v0/corps")
        state.advance_clock(61)
        after_a_minute = await client.get("/api/v0/corps")
    assert statuses == [200, 200, 200, status, status]
    assert refused.json() == {"message": "Rate limit exceeded"}
    assert after_a_minute.status_code == 200


async def test_admin_api_reads_and_changes_the_fault_list(api: httpx.AsyncClient) -> None:
    assert (await api.get("/_sim/faults")).json() == {"faults": [], "fired": {}}
    put = await api.put("/_sim/faults", json=[{"kind": "error_500", "path": "/sites", "count": 2}])
    assert put.status_code == 200
    added = await api.post("/_sim/faults", json={"kind": "latency", "latency_ms": 5})
    assert [f["kind"] for f in added.json()["faults"]] == ["error_500", "latency"]
    assert (await api.get(f"{CORP}/sites")).status_code == 500
    snapshot = (await api.get("/_sim/faults")).json()
    assert snapshot["faults"][0]["count"] == 1
    assert snapshot["fired"] == {"error_500": 1, "latency": 1}
    bad = await api.post("/_sim/faults", json={"kind": "meteor"})
    assert bad.status_code == 400
    cleared = await api.delete("/_sim/faults")
    assert cleared.json()["faults"] == []
    assert (await api.get(f"{CORP}/sites")).status_code == 200


async def test_admin_api_shows_health_raw_users_registration_and_the_clock(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    health = (await api.get("/_sim/health")).json()
    assert health["status"] == "ok"
    assert health["users"] == 50
    assert health["sites"] == 8
    assert health["memberships"] == sim_state.membership_count()
    raw = (await api.get("/_sim/users/owner%40testcorp.example")).json()
    assert raw["role"] == "owner"
    assert raw["sites"] == []
    assert (await api.get("/_sim/users/ghost@example.com")).status_code == 404
    sim_state.invite_user("reg@example.com", "user")
    registered = (await api.post("/_sim/users/reg@example.com/register")).json()
    assert registered["status"] == "active"
    before = sim_state.now()
    shifted = (await api.put("/_sim/clock", json={"advance": 86_400})).json()
    assert shifted["now"].endswith("Z")
    assert (sim_state.now() - before).total_seconds() >= 86_400


async def test_admin_api_reads_and_changes_the_switches_all_or_nothing(
    api: httpx.AsyncClient, sim_state: SimState
) -> None:
    settings = (await api.get("/_sim/settings")).json()
    assert settings["membership_events"] == "both"
    assert settings["email_matching"] == "sensitive"
    assert settings["not_found_status"] == 400
    assert settings["sites_total_count"] is settings["sites_next_links"] is False
    changed = await api.patch(
        "/_sim/settings",
        json={"sites_total_count": True, "site_page_max_limit": 3, "email_matching": "insensitive"},
    )
    assert changed.status_code == 200
    assert changed.json() == settings | {
        "sites_total_count": True,
        "site_page_max_limit": 3,
        "email_matching": "insensitive",
    }
    page = (await api.get(f"{CORP}/sites", params={"limit": 100})).json()
    assert (len(page["data"]), page["totalCount"]) == (3, 8)
    user = next(iter(sim_state.users))
    assert (await api.get(f"{USERS}/{user.upper()}")).status_code == 200
    for bad in (
        {"membership_events": "nowhere"},
        {"not_found_status": 418},
        {"not_found_status": True},
        {"sites_next_links": 1},
        {"seed": 3},
        {"site_page_max_limit": 5, "email_matching": "sometimes"},
    ):
        refused = await api.patch("/_sim/settings", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["message"].startswith("Invalid settings")
    assert (await api.get("/_sim/settings")).json()["site_page_max_limit"] == 3


async def test_admin_api_can_turn_the_server_rate_limit_on_at_run_time(
    api: httpx.AsyncClient,
) -> None:
    await api.patch("/_sim/settings", json={"rate_limit_per_minute": 2})
    statuses = [(await api.get("/api/v0/corps")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_drop_over_real_http_cuts_the_connection_mid_body(
    sim_http: httpx.Client, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.DROP, count=1))
    with pytest.raises(httpx.RemoteProtocolError):
        sim_http.get(USERS)
    assert sim_http.get(USERS).status_code == 200


def test_truncate_over_real_http_sends_half_the_json_with_a_matching_length(
    sim_http: httpx.Client, sim_runtime: SimRuntime
) -> None:
    full = sim_http.get(USERS).content
    sim_runtime.faults.add(FaultRule(kind=FaultKind.TRUNCATE, count=1))
    response = sim_http.get(USERS)
    assert response.status_code == 200
    assert response.content == full[: len(full) // 2]
    assert int(response.headers["content-length"]) == len(full) // 2
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_timeout_over_real_http_stalls_past_the_client_timeout(
    sim_http: httpx.Client, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.TIMEOUT, count=1))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        sim_http.get(USERS, timeout=0.3)
    assert time.perf_counter() - started < 5
    assert sim_http.get(USERS).status_code == 200


def test_error_faults_and_security_headers_over_real_http(
    sim_http: httpx.Client, sim_runtime: SimRuntime
) -> None:
    sim_runtime.faults.add(FaultRule(kind=FaultKind.THROTTLE_429, count=1))
    throttled = sim_http.get(USERS)
    assert throttled.status_code == 429
    assert throttled.json() == {"message": "Rate limit exceeded"}
    ok = sim_http.get(USERS)
    assert ok.headers["content-type"] == "application/json; charset=utf-8"
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert ok.headers["x-request-id"]


async def test_configured_latency_delays_every_api_call_but_not_the_admin_api() -> None:
    app = create_app(SimConfig(users=5, sites=1, latency_ms=150))
    async with httpx.AsyncClient(
        transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
    ) as client:
        started = time.perf_counter()
        await client.get("/_sim/health")
        admin = time.perf_counter() - started
        started = time.perf_counter()
        await client.get("/api/v0/corps")
        api = time.perf_counter() - started
    assert admin < 0.15 <= api
