"""Retries (reads only), Retry-After, and requests refused before anything is sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from client_harness import Sim, raises, run
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    TransientError,
)
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN

CORP_ROUTE = "GET /corps/{corp}"
CLIENT_CORP_KEY = "GET /api/v0/corps/{corp}"

TRANSIENT_KINDS = [
    "error_500",
    "error_524",
    "drop",
    "truncate",
    "timeout",
    "throttle_429",
    "throttle_400",
]


@pytest.mark.parametrize("kind", TRANSIENT_KINDS)
def test_reads_retry_through_a_transient_fault_and_succeed(sim: Sim, kind: str) -> None:
    sim.fault(kind, method="GET", path="/corps/testcorp$", count=2)

    async def go() -> None:
        # Short enough to give up on the stalled replies, long enough for a loaded machine.
        async with sim.client(read_attempts=3, timeout=1.0 if kind == "timeout" else 5.0) as client:
            corp = await client.get_corp()
            assert corp.name == DEMO_CORP
            assert client.calls[CLIENT_CORP_KEY] == 3

    run(go())
    assert sim.calls(CORP_ROUTE) == 3  # two failed attempts, then the one that worked
    assert len(sim.records) == 3
    assert sim.records[-1].error is None
    # Every failed attempt is recorded as failed, a truncated 200 included.
    assert all(r.error for r in sim.records[:2])
    assert len(sim.requests) == 3


def test_reads_give_up_after_read_attempts_with_the_last_error(sim: Sim) -> None:
    sim.fault("error_524", method="GET", path="/corps/testcorp$", count=1)
    sim.fault("error_500", method="GET", path="/corps/testcorp$")

    async def go() -> None:
        async with sim.client(read_attempts=4) as client:
            error = await raises(TransientError, client.get_corp())
        assert error.status == 500  # the last failure, not the first (524)

    run(go())
    assert sim.calls(CORP_ROUTE) == 4
    assert [r.status for r in sim.records] == [524, 500, 500, 500]


def test_every_page_of_a_listing_is_retried_on_its_own(sim: Sim) -> None:
    # The first page fails once, then the second page once; only the failing page is read again.
    sim.fault("error_500", method="GET", path="/sites$", count=1)

    async def go() -> list[str]:
        async with sim.client() as client:
            pages = client.iter_site_pages(limit=3)
            first = await anext(pages)
            sim.fault("drop", method="GET", path="/sites$", count=1)
            rest = [p async for p in pages]
            return [s.name for p in [first, *rest] for s in p.items]

    run_names = run(go())
    assert run_names == list(sim.state.sites)
    # First page: one 500 + one success; second page: one drop + one success; third page and
    # the empty page that ends a data-only list: one each.
    assert sim.calls("GET /corps/{corp}/sites") == 6


WriteCall = Callable[[SigSciClient, Sim], Awaitable[Any]]


def _site(sim: Sim, index: int = 0) -> str:
    return sorted(sim.state.sites)[index]


def _member(sim: Sim) -> str:
    return next(u.email for u in sim.state.users.values() if u.role == "user" and u.sites)


WRITES: dict[str, tuple[str, WriteCall]] = {
    "invite": (
        "POST /corps/{corp}/users/{email}/invite",
        lambda c, s: c.invite_user("w@example.com", role="user", sites=[_site(s)]),
    ),
    "update": (
        "PATCH /corps/{corp}/users/{email}",
        lambda c, s: c.update_user(_member(s), role="observer"),
    ),
    "delete": (
        "DELETE /corps/{corp}/users/{email}",
        lambda c, s: c.delete_user(_member(s)),
    ),
    "add members": (
        "POST /corps/{corp}/sites/{site}/members",
        lambda c, s: c.add_site_members(_site(s), [_member(s)]),
    ),
    "invite to site": (
        "POST /corps/{corp}/sites/{site}/members/{email}/invite",
        lambda c, s: c.invite_site_member(_site(s), "w@example.com", role="user"),
    ),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_writes_are_never_retried_after_a_500(sim: Sim, name: str) -> None:
    route, call = WRITES[name]
    sim.fault("error_500", method=route.split()[0])
    version = sim.state.version

    async def go() -> None:
        async with sim.client(read_attempts=5) as client:
            error = await raises(TransientError, call(client, sim))
            assert error.status == 500
            assert client.total_calls == 1

    run(go())
    assert sim.calls(route) == 1
    assert sim.calls() == 1
    assert sim.state.version == version  # the fault answered before the app: nothing changed


def test_a_write_whose_reply_is_cut_is_not_resent_even_though_it_landed(sim: Sim) -> None:
    sim.fault("drop", method="POST", path="/invite$")

    async def go() -> None:
        async with sim.client(read_attempts=5) as client:
            await raises(
                TransientError, client.invite_user("cut@example.com", role="user", sites=[])
            )

    run(go())
    assert sim.calls("POST /corps/{corp}/users/{email}/invite") == 1
    assert sim.state.get_user("cut@example.com") is not None  # only a re-read can tell


def _throttle_then_ok(retry_after: str) -> tuple[httpx.MockTransport, list[float]]:
    """The one non-simulator server here: the simulator never sends Retry-After."""
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(
                429, headers={"Retry-After": retry_after}, json={"message": "Rate limit exceeded"}
            )
        return httpx.Response(200, json={"name": DEMO_CORP, "displayName": "Test Corp"})

    return httpx.MockTransport(handler), seen


@pytest.mark.parametrize("retry_after", ["0", "0.4"])
def test_a_read_waits_as_long_as_retry_after_says_instead_of_its_own_backoff(
    retry_after: str,
) -> None:
    transport, seen = _throttle_then_ok(retry_after)

    async def go() -> None:
        async with SigSciClient(
            base_url="http://mock",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            token=SecretStr(DEMO_TOKEN),
            transport=transport,
            read_attempts=2,
            # Its own backoff would wait at least 20 s: a fast retry proves Retry-After won.
            retry_wait_initial=20.0,
            retry_wait_max=60.0,
        ) as client:
            assert (await client.get_corp()).name == DEMO_CORP

    run(go())
    assert len(seen) == 2
    gap = seen[1] - seen[0]
    assert float(retry_after) - 0.05 <= gap < 10.0


def test_only_retryable_errors_back_off_and_a_failures_retry_after_is_capped() -> None:
    waits: list[float] = []
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "86400"}, json={"message": "later"}),
            httpx.Response(200, json={"name": DEMO_CORP}),
            httpx.Response(401, json={"message": "no"}),
        ]
    )

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        async with SigSciClient(
            base_url="http://mock",
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            token=SecretStr("t0ken"),
            transport=httpx.MockTransport(lambda request: next(answers)),
            retry_wait_max=30.0,
            sleep=sleep,
        ) as client:
            assert (await client.get_corp()).name == DEMO_CORP
            await raises(AuthError, client.get_corp())
            assert client.total_calls == 3

    run(go())
    # A day's Retry-After from a hostile server is cut to the longest wait; a 401 is not retried.
    assert waits == [30.0]


BAD_EMAILS = [
    "",
    "   ",
    "a/b@example.com",
    "a\\b@example.com",
    "a..b@example.com",
    "..@example.com",
    "tab\t@example.com",
    "nul\x00@example.com",
    "newline\n@example.com",
    "del\x7f@example.com",
    "no-at-sign.example.com",
]
BAD_SITES = ["", "  ", "a/b", "..", "a..b", "../users", "tab\tsite", "nul\x00site", "cr\rsite"]


async def _drain(pages: AsyncIterator[Any]) -> None:
    async for _ in pages:
        pass


def _email_calls(client: SigSciClient, email: str, site: str) -> list[Awaitable[Any]]:
    return [
        client.get_user(email),
        client.get_user_memberships(email),
        client.invite_user(email, role="user", sites=[site]),
        client.update_user(email, role="user"),
        client.delete_user(email),
        client.add_site_members(site, [email]),
        client.invite_site_member(site, email, role="user"),
        client.remove_site_member(site, email),
    ]


def _site_calls(client: SigSciClient, site: str, email: str) -> list[Awaitable[Any]]:
    return [
        client.get_site(site),
        client.list_site_members(site),
        client.add_site_members(site, [email]),
        client.invite_site_member(site, email, role="user"),
        client.remove_site_member(site, email),
        client.invite_user(email, role="user", sites=[site]),
        client.update_user(email, sites=[site]),
        _drain(client.iter_activity_pages(site=site)),
    ]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_bad_email_is_refused_before_any_request_is_sent(local_sim: Sim, email: str) -> None:
    sim = local_sim
    site = _site(sim)

    async def go() -> None:
        async with sim.client() as client:
            for call in _email_calls(client, email, site):
                await raises(InvalidInputError, call)

    run(go())
    assert sim.requests == []
    assert sim.calls() == 0


@pytest.mark.parametrize("site", BAD_SITES)
def test_a_bad_site_name_is_refused_before_any_request_is_sent(local_sim: Sim, site: str) -> None:
    sim = local_sim

    async def go() -> None:
        async with sim.client() as client:
            for call in _site_calls(client, site, _member(sim)):
                await raises(InvalidInputError, call)

    run(go())
    assert sim.requests == []
    assert sim.calls() == 0


def test_a_plus_in_an_email_is_sent_percent_encoded_and_still_finds_the_user(sim: Sim) -> None:
    site = _site(sim)
    sim.state.add_user("first+tag@example.com", "user", [site])

    async def go() -> None:
        async with sim.client() as client:
            user = await client.get_user("first+tag@example.com")
            assert user.email == "first+tag@example.com"
            assert user.site_names == [site]
            await client.remove_site_member(site, "first+tag@example.com")
            await client.delete_user("first+tag@example.com")

    run(go())
    raw_paths = [r.url.raw_path for r in sim.requests]
    assert (
        raw_paths[0] == b"/api/v0/corps/testcorp/users/first%2Btag@example.com?expand=memberships"
    )
    assert all(b"+" not in p for p in raw_paths)
    assert sim.state.get_user("first+tag@example.com") is None


def test_emails_are_sent_as_spelled_and_read_back_lower_cased_with_the_servers_spelling(
    sim: Sim,
) -> None:
    site = _site(sim)

    async def go() -> None:
        async with sim.client() as client:
            invited = await client.invite_user("Mixed.Case@Example.com", role="user", sites=[])
            assert invited is not None
            assert (invited.email, invited.raw_email) == (
                "mixed.case@example.com",
                "Mixed.Case@Example.com",
            )
            await client.add_site_members(site, ["Mixed.Case@Example.com"])
            user = await client.get_user("Mixed.Case@Example.com")
            assert user.site_names == [site]
            await raises(NotFoundError, client.get_user("mixed.case@example.com"))

    run(go())
    assert [r.url.path for r in sim.requests[:1]] == [
        "/api/v0/corps/testcorp/users/Mixed.Case@Example.com/invite"
    ]
    assert sim.state.users["Mixed.Case@Example.com"].sites == {site}
