"""Auth profiles, field mapping and links of the rest connector against scripted servers."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pkg_harness import generic_document, json_response, mock_connector, write_package

from sigsci_iga.connectors.base import SetRole
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import NotSupportedError
from sigsci_iga.domain.model import AccountSnapshot
from sigsci_iga.errors import AuthError, BadRequestError, UnexpectedResponseError

ENV = {"GENERIC_TOKEN": "tok-secret-123"}
USERS = {
    "items": [
        {"id": "1", "mail": "Ann@Example.com", "state": "on", "groups": [{"n": "g1"}, {"n": "g2"}]},
        {"id": "2", "mail": "bob@example.com", "state": "invited", "groups": []},
    ]
}


def accounts(tmp_path: Path, document: dict[str, Any], handler: Any) -> list[AccountSnapshot]:
    loaded = load_package(write_package(tmp_path, document))

    async def main() -> list[AccountSnapshot]:
        async with mock_connector(loaded, handler, env=ENV) as connector:
            page = await connector.accounts_page(None)
            return list(page.items)

    return asyncio.run(main())


def test_field_mapping_status_and_links_from_the_account(tmp_path: Path) -> None:
    document = generic_document()
    accounts_spec = document["import"]["accounts"]
    accounts_spec["fields"].update(
        {
            "name": {"expression": "record.mail.split('@')[0]"},
            "role": {"path": "kind", "default": "Observer", "value_map": {"observer": "observer"}},
            "created": {"path": "since", "type": "datetime", "date_format": "epoch"},
            "extra.groups_count": {"expression": "record.groups.size()", "type": "int"},
            "extra.note": {"path": "note", "omit_if_null": True},
        }
    )
    accounts_spec["status"]["pending_values"] = ["invited"]
    document["import"]["links"] = [
        {
            "type": "from_account_field",
            "entitlement_type": "Group",
            "path": "groups",
            "value_path": "n",
        }
    ]
    users = {"items": [dict(u, since=0) for u in USERS["items"]]}
    found = accounts(tmp_path, document, lambda r: json_response(users))
    ann, bob = sorted(found, key=lambda a: a.email)
    assert ann.email == "ann@example.com"
    assert ann.name == "Ann"
    assert ann.role == "observer"
    assert ann.status == "active"
    assert bob.status == "pending"
    assert ann.sites == frozenset({"g1", "g2"})
    assert ann.created == datetime(1970, 1, 1, tzinfo=UTC)
    assert ann.extra == {"groups_count": 2}

    users["items"][1]["state"] = "gone"
    with pytest.raises(UnexpectedResponseError, match="neither active nor pending"):
        accounts(tmp_path, document, lambda r: json_response(users))


def test_links_from_calls_per_value_and_per_account(tmp_path: Path) -> None:
    document = generic_document()
    document["import"]["links"] = [
        {
            "type": "per_entitlement_call",
            "entitlement_type": "Group",
            "call": {"url": "/groups/${entitlementValue.value}/members"},
            "records_path": "items",
            "account_key_path": "user.id",
        }
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/users":
            return json_response(USERS)
        if path == "/v1/groups":
            return json_response({"items": [{"name": "g1"}, {"name": "g 2"}]})
        members = {"/v1/groups/g1/members": ["1", "2"], "/v1/groups/g%202/members": ["1", "9"]}
        return json_response(
            {"items": [{"user": {"id": i}} for i in members[request.url.raw_path.decode()]]}
        )

    found = {a.email: a.sites for a in accounts(tmp_path, document, handler)}
    assert found == {
        "ann@example.com": frozenset({"g1", "g 2"}),
        "bob@example.com": frozenset({"g1"}),
    }

    document["import"]["links"] = [
        {
            "type": "per_account_call",
            "entitlement_type": "Group",
            "call": {"url": "/users/${account.key}/groups"},
            "records_path": "items",
            "value_path": "name",
        }
    ]

    def per_account(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/users":
            return json_response(USERS)
        owner = request.url.path.split("/")[3]
        return json_response({"items": [{"name": f"own-{owner}"}]})

    found = {a.email: a.sites for a in accounts(tmp_path, document, per_account)}
    assert found == {
        "ann@example.com": frozenset({"own-1"}),
        "bob@example.com": frozenset({"own-2"}),
    }


def test_token_call_fetches_refreshes_and_gives_up(tmp_path: Path) -> None:
    document = generic_document()
    document["parameters"]["client"] = {"required": True}
    document["connection"]["auth"] = {
        "oauth": {
            "type": "token_call",
            "call": {
                "method": "POST",
                "url": "/oauth/token",
                "body": {"client_id": "${params.client}", "secret": "${params.token}"},
                "body_format": "form",
            },
            "token_path": "access_token",
            "refresh_on_statuses": [401],
            "max_refresh_tries": 2,
        }
    }
    issued: list[str] = []
    valid: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            assert b"client_id=c1" in request.content
            token = f"t{len(issued)}"
            issued.append(token)
            return json_response({"access_token": token})
        if request.headers.get("authorization", "").removeprefix("Bearer ") in valid:
            return json_response(USERS)
        return json_response({"message": "expired"}, status=401)

    loaded = load_package(write_package(tmp_path, document))

    async def main() -> None:
        async with mock_connector(loaded, handler, params={"client": "c1"}, env=ENV) as connector:
            valid.add("t0")
            assert len((await connector.accounts_page(None)).items) == 2
            valid.clear()
            valid.add("t1")  # t0 expired: one refresh, then success
            assert len((await connector.accounts_page(None)).items) == 2
            valid.clear()  # nothing works: bounded refreshes, then the auth error
            with pytest.raises(AuthError) as caught:
                await connector.accounts_page(None)
            assert "t2" not in str(caught.value)
            assert "tok-secret-123" not in repr(connector.describe_all(SetRole("a@x.com", "user")))

    asyncio.run(main())
    assert issued == ["t0", "t1", "t2", "t3"]


def test_basic_and_session_login(tmp_path: Path) -> None:
    document = generic_document()
    document["connection"]["auth"] = {
        "basic": {"type": "basic", "username": "svc", "password": "${params.token}"}
    }
    expected = "Basic " + base64.b64encode(b"svc:tok-secret-123").decode()

    def basic(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == expected
        return json_response(USERS)

    assert len(accounts(tmp_path, document, basic)) == 2

    document["connection"]["auth"] = {
        "login": {
            "type": "session_login",
            "call": {"method": "POST", "url": "/auth", "body": {"password": "${params.token}"}},
        }
    }

    def session(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth":
            return json_response({"token": "sess"})
        assert request.headers["authorization"] == "Bearer sess"
        return json_response(USERS)

    assert len(accounts(tmp_path, document, session)) == 2


def test_no_activity_feed_and_no_read_call_fall_back_to_the_list(tmp_path: Path) -> None:
    loaded = load_package(write_package(tmp_path, generic_document()))

    async def main() -> None:
        handler = lambda r: json_response(USERS)  # noqa: E731
        async with mock_connector(loaded, handler, env=ENV) as connector:
            with pytest.raises(NotSupportedError, match="no activity feed"):
                await connector.changes_since(datetime.now(UTC))
            found = await connector.read_account("BOB@example.com")
            assert found is not None
            assert found.status == "pending"
            assert await connector.read_account("nobody@example.com") is None

    asyncio.run(main())


def test_success_and_failure_rules(tmp_path: Path) -> None:
    document = generic_document()
    document["import"]["role_entitlement_type"] = None
    document["provisioning"] = {
        "update_account": [
            {
                "name": "patch",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "body": {"role": "${account.role}"},
                "success": {"statuses": [200], "body_match": {"path": "result", "equals": "ok"}},
                "failure": {"body_match": {"path": "error", "exists": True}},
                "capture": {"id": "user.id"},
            },
            {
                "name": "audit",
                "method": "POST",
                "url": "/audit",
                "when": "response.patch.id != null",
                "body": {"user": "${response.patch.id}"},
            },
        ]
    }
    loaded = load_package(write_package(tmp_path, document))
    answers: list[dict[str, Any]] = []
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path} {request.content.decode()}")
        return json_response(answers.pop(0))

    async def main() -> None:
        async with mock_connector(loaded, handler, env=ENV) as connector:
            answers.extend([{"result": "ok", "user": {"id": 7}}, {}])
            await connector.execute(SetRole("a@x.com", "admin"))
            assert sent[-1] == 'POST /v1/audit {"user":7}'
            answers.extend([{"result": "ok"}])
            await connector.execute(SetRole("a@x.com", "admin"))  # no id: audit skipped
            answers.extend([{"result": "no"}])
            with pytest.raises(UnexpectedResponseError, match="success rule"):
                await connector.execute(SetRole("a@x.com", "admin"))
            answers.extend([{"result": "ok", "error": "x"}])
            with pytest.raises(BadRequestError, match="failure rule"):
                await connector.execute(SetRole("a@x.com", "admin"))
            described = connector.describe_all(SetRole("a@x.com", "admin"))
            assert [c.path for c in described] == ["/v1/users/a@x.com", "/v1/audit"]

    asyncio.run(main())
    assert len(sent) == 5
