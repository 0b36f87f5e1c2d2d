"""The users list, decoded by msgspec: the same users as the pydantic model reads, the same refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from client_harness import Sim, raises, run

from sigsci_iga.connectors.signalsciences.models import User, UserStatus
from sigsci_iga.errors import TransientError, UnexpectedResponseError

USERS_ROUTE = "GET /corps/{corp}/users"

ODD_USERS: list[dict[str, Any]] = [
    {
        "email": "  Mixed.Case@Example.com ",
        "name": None,
        "role": "corpOwner",
        "status": "invited",
        "mfaEnabled": "true",
        "created": "2024-02-03T04:05:06Z",
        "apiUser": 1,
        "memberships": {"data": [{"site": {"name": "www"}, "role": "corpUser"}], "uri": "/x"},
        "unknownKey": {"nested": [1, 2, 3]},
    },
    {"email": "plain@example.com", "role": "observer", "status": "active"},
    {"email": "stranger@example.com", "role": "somethingNew", "status": 7, "created": 1700000000},
]


def _replace_users(body: Callable[[], bytes]) -> Any:
    """A response hook answering the users list with `body()` instead of the simulator's."""

    async def hook(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if not request.url.path.endswith("/users"):
            return response
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=body(), request=request
        )

    return hook


def test_the_users_list_reads_every_field_as_the_single_user_model_does(sim: Sim) -> None:
    sim.response_hook = _replace_users(lambda: json.dumps({"data": ODD_USERS}).encode())

    async def go() -> None:
        async with sim.client() as client:
            users = await client.list_users()
        for listed, raw in zip(users, ODD_USERS, strict=True):
            model = User.model_validate(raw)
            for name in (
                "email", "raw_email", "name", "role", "status", "raw_status", "mfa_enabled",
                "created", "api_user", "auth_status", "sso_provisioned",
            ):  # fmt: skip
                assert getattr(listed, name) == getattr(model, name), name
            assert listed.site_names == model.site_names

    run(go())
    assert sim.calls(USERS_ROUTE) == 1


def test_a_user_of_the_wrong_shape_is_refused_naming_its_index_and_field(sim: Sim) -> None:
    users = [*ODD_USERS, {"email": 42, "role": "user"}]
    sim.response_hook = _replace_users(lambda: json.dumps({"data": users}).encode())

    async def go() -> None:
        async with sim.client(read_attempts=3) as client:
            error = await raises(UnexpectedResponseError, client.list_users())
        assert "users list invalid at data.3.email" in error.message
        assert not error.retryable

    run(go())
    assert sim.calls(USERS_ROUTE) == 1


def test_a_list_without_data_is_refused_and_a_broken_body_is_transient(sim: Sim) -> None:
    bodies = iter([b'{"users": []}', b'{"data": [{"email": "a@b.c", "role": "us'])
    sim.response_hook = _replace_users(lambda: next(bodies))

    async def go() -> None:
        async with sim.client(read_attempts=1) as client:
            missing = await raises(UnexpectedResponseError, client.list_users())
            broken = await raises(TransientError, client.list_users())
        assert "users list invalid at top" in missing.message
        assert "truncated or non-JSON body" in broken.message

    run(go())


def test_a_users_list_nested_deeper_than_the_stack_is_refused_not_a_crash(sim: Sim) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"data": [{"email": "a@b.c", "role": "user", "x": ' + deep + "}]}"
    sim.response_hook = _replace_users(body.encode)

    async def go() -> None:
        async with sim.client(read_attempts=3) as client:
            error = await raises(UnexpectedResponseError, client.list_users())
        assert "nested deeper than" in error.message

    run(go())
    assert sim.calls(USERS_ROUTE) == 1


def test_statuses_other_than_active_are_pending_invitees(sim: Sim) -> None:
    sim.response_hook = _replace_users(lambda: json.dumps({"data": ODD_USERS}).encode())

    async def go() -> None:
        async with sim.client() as client:
            users = await client.list_users()
        assert [u.status for u in users] == [
            UserStatus.PENDING,
            UserStatus.ACTIVE,
            UserStatus.PENDING,
        ]
        assert [u.raw_status for u in users] == ["invited", "active", "7"]

    run(go())
