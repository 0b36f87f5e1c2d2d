"""The users list read as it arrives: the same users as a whole body, in bounded batches."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from client_harness import Sim, raises, run
from test_client_users_list import ODD_USERS

from sigsci_iga.connectors.signalsciences.decode import UserRow, UsersReader, decode_users
from sigsci_iga.errors import TransientError, UnexpectedResponseError

USERS_ROUTE = "GET /corps/{corp}/users"

# Names a naive scan for `},{`, brackets or quotes would split a user at.
TRICKY_USERS: list[dict[str, Any]] = [
    *ODD_USERS,
    {"email": "brace@example.com", "role": "user", "name": 'a},{"email": "x@y.z"} ] ['},
    {"email": "quote@example.com", "role": "user", "name": "ends with a backslash \\"},
    {"email": "escaped@example.com", "role": "user", "name": '\u00e9\u2603 \\u005d "]"'},
    {
        "email": "many@example.com",
        "role": "user",
        "memberships": {"data": [{"site": {"name": f"s{i}"}} for i in range(40)]},
    },
]


def _body(users: list[dict[str, Any]]) -> bytes:
    """A users list with keys around `data` that a reader must skip, and odd white space."""
    envelope = {"meta": {"data": [{"email": "not-a-user"}]}, "data": users, "links": ["]", "}"]}
    return json.dumps(envelope, indent=1).encode()


def _feed(reader: UsersReader, body: bytes, chunk: int) -> None:
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])


def _whole(body: bytes) -> list[UserRow]:
    return decode_users("GET", "/users", httpx.Response(200, content=body))


def _stream(body: bytes, chunk: int, **options: Any) -> tuple[list[list[UserRow]], UsersReader]:
    batches: list[list[UserRow]] = []
    reader = UsersReader("GET", "/users", 200, batches.append, **options)
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])
    reader.end()
    return batches, reader


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 20])
def test_any_chunking_gives_the_users_of_the_whole_body(chunk: int) -> None:
    body = _body(TRICKY_USERS)

    batches, _ = _stream(body, chunk)

    streamed = [user for batch in batches for user in batch]
    assert streamed == _whole(body)
    assert [u.email for u in streamed] == [
        u["email"].strip().lower() for u in TRICKY_USERS if isinstance(u["email"], str)
    ]
    assert streamed[-4].name == TRICKY_USERS[-4]["name"]
    assert len(streamed[-1].site_names) == 40


def test_batches_never_exceed_their_size() -> None:
    users = [{"email": f"u{i}@example.com", "role": "user"} for i in range(25)]

    batches, reader = _stream(_body(users), 100, batch_users=4)

    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 4, 1]
    assert reader.largest_batch == 4
    assert reader.users == 25


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.9, 0.999])
def test_a_body_cut_anywhere_is_refused_and_no_partial_user_is_handed_on(cut: float) -> None:
    users = [{"email": f"u{i}@example.com", "role": "user"} for i in range(50)]
    body = _body(users)
    batches: list[list[UserRow]] = []
    reader = UsersReader("GET", "/users", 200, batches.append, batch_users=3)

    reader.feed(body[: int(len(body) * cut)])
    with pytest.raises(TransientError, match="truncated or non-JSON"):
        reader.end()

    handed = [user.email for batch in batches for user in batch]
    assert handed == [f"u{i}@example.com" for i in range(len(handed))]
    assert len(handed) < 50


def test_a_malformed_user_is_refused_as_it_arrives_naming_its_index_and_field() -> None:
    users: list[dict[str, Any]] = [{"email": f"u{i}@example.com", "role": "user"} for i in range(9)]
    users[7] = {"email": ["not", "a", "string"], "role": "user"}
    batches: list[list[UserRow]] = []
    reader = UsersReader("GET", "/users", 200, batches.append, batch_users=2)

    body = _body(users)
    with pytest.raises(UnexpectedResponseError, match=r"users list invalid at data\.7\.email"):
        _feed(reader, body, 16)

    # The users before it went on in whole batches; nothing after it was read.
    assert [len(b) for b in batches] == [2, 2, 2]


def test_a_user_longer_than_the_cap_is_refused_before_it_is_buffered_whole() -> None:
    users = [
        {"email": "a@example.com", "role": "user"},
        {"email": "b@example.com", "role": "user", "name": "x" * 100_000},
    ]
    body = _body(users)
    fed: list[int] = []
    reader = UsersReader("GET", "/users", 200, lambda _batch: None, max_user_bytes=4_096)
    original = reader.feed

    def counted(chunk: bytes) -> None:
        fed.append(len(chunk))
        original(chunk)

    reader.feed = counted  # type: ignore[method-assign]
    with pytest.raises(UnexpectedResponseError, match=r"data\.1: one element longer than 4096"):
        _feed(reader, body, 1_000)

    # Refused a few chunks past the cap, not once the whole 100 kB had been buffered.
    assert sum(fed) < 10_000


def test_the_same_email_in_two_batches_is_refused() -> None:
    users = [{"email": f"u{i}@example.com", "role": "user"} for i in range(5)]
    users.append({"email": "U2@Example.com", "role": "user"})

    with pytest.raises(UnexpectedResponseError, match=r"names 'u2@example\.com' twice"):
        _stream(_body(users), 50, batch_users=2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"users": []}', "users list invalid at top: Object missing required field `data`"),
        (b'{"data": {"a": 1}}', "users list invalid at data: Expected `array`, got `object`"),
        (b"[1, 2]", "users list invalid at top: Expected `object`, got `array`"),
    ],
)
def test_a_wrong_envelope_is_untrusted(body: bytes, message: str) -> None:
    with pytest.raises(UnexpectedResponseError) as caught:
        _stream(body, 3)
    assert message in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "body", [b'{"data": [] } x', b'{"data": [{"email": "a@b.c", "role": "user"},]}', b"{"]
)
def test_broken_json_is_transient(body: bytes) -> None:
    with pytest.raises(TransientError, match="truncated or non-JSON"):
        _stream(body, 5)


def test_the_client_streams_the_simulators_list_in_bounded_batches(sim: Sim) -> None:
    for index in range(23):
        sim.state.invite_user(f"streamed{index}@example.com", "user", [])
    batches: list[list[UserRow]] = []
    begun: list[int] = []

    async def go() -> list[UserRow]:
        async with sim.client() as client:
            await client.stream_users(
                batches.append, begin=lambda: begun.append(len(batches)), batch_users=5
            )
            return await client.list_users()

    whole = run(go())
    assert [u.email for b in batches for u in b] == [u.email for u in whole]
    assert max(len(b) for b in batches) == 5
    assert begun == [0]
    assert sim.calls(USERS_ROUTE) == 2


def test_a_truncated_answer_is_read_again_from_the_start(sim: Sim) -> None:
    sim.fault("truncate", path="/users$", count=1)
    batches: list[list[UserRow]] = []
    begun: list[int] = []

    def begin() -> None:
        begun.append(len(batches))
        batches.clear()

    async def go() -> None:
        async with sim.client(read_attempts=3) as client:
            await client.stream_users(batches.append, begin=begin, batch_users=2)

    run(go())
    assert len(begun) == 2
    emails = [u.email for b in batches for u in b]
    assert len(emails) == len(set(emails)) == len(sim.state.users)
    assert sim.calls(USERS_ROUTE) == 2


def test_a_truncated_answer_on_every_attempt_fails_transiently(sim: Sim) -> None:
    sim.fault("truncate", path="/users$")

    async def go() -> None:
        async with sim.client(read_attempts=2) as client:
            error = await raises(
                TransientError, client.stream_users(lambda _b: None, begin=lambda: None)
            )
        assert "truncated or non-JSON" in error.message

    run(go())
    assert sim.calls(USERS_ROUTE) == 2
