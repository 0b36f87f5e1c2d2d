"""Values computed from a secret stay masked wherever a request is shown, and real where it is sent.

Each transformation is placed in a body, a URL path segment and a query value of an update call;
`describe_all` (what `packages render` prints and the worker journals as intents), the call
records (journaled as calls) and error messages must show `***`, while the request sent carries
the real value.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from pkg_harness import generic_document, json_response, write_package

from sigsci_iga.connectors.base import SetRole
from sigsci_iga.connectors.http.calls import CallRecord, capture_calls
from sigsci_iga.connectors.rest.expressions import compile_expression
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.errors import BadRequestError, ConfigError, UnexpectedResponseError

TOKEN = "tok-secret-123"
ENV = {"GENERIC_TOKEN": TOKEN}
STEP = SetRole("ann@example.com", "admin")

TRANSFORMS = [
    "params.token",
    "params.token.toUpperCase()",
    "params.token.toLowerCase().trim()",
    "params.token.substring(4)",
    "params.token.substring(0, 9)",
    "params.token.replace('-', '_')",
    "params.token.replaceAll('[0-9]', '#')",
    "params.token.split('-')[1]",
    "params.token.split('-').join('+')",
    "'id-' + params.token",
    "params.token + '-v2'",
    "params.token.toString()",
    "params.token ?: 'none'",
    "params.token.toUpperCase().contains('SECRET') ? 'yes' : 'no'",
    "params.token.size()",
    "'' + params",
]


#: How a body shows a transformation when only part of its text comes from the secret.
PARTLY_SHOWN = {
    "'id-' + params.token": "id-***",
    "params.token + '-v2'": "***-v2",
    "'' + params": '{"token":"***"}',
}


def raw(transform: str) -> Any:
    """What the transformation gives on the real token."""
    expression = compile_expression(transform, where="t", roots={"params"})
    return expression.evaluate({"params": {"token": TOKEN}})


def real(transform: str) -> str:
    """What the transformation gives on the real token, as it reads in text."""
    expression = compile_expression(transform, where="t", roots={"params"})
    result = expression.render_text({"params": {"token": TOKEN}})
    assert isinstance(result, str)
    return result


def leaky(tmp_path: Path, transform: str, place: str) -> Path:
    """A package whose update call carries `transform` in its body, path or query."""
    document = generic_document()
    call: dict[str, Any] = {
        "name": "set",
        "method": "PATCH",
        "url": "/users/${account.email}",
        "body": {"role": "${account.role}"},
    }
    template = "${" + transform + "}"
    if place == "body":
        call["body"]["note"] = template
    elif place == "path":
        call["url"] = "/users/${account.email}/keys/" + template
    elif place == "query":
        call["query"] = {"k": template}
    document["provisioning"] = {"update_account": [call]}
    return write_package(tmp_path, document)


def run(
    path: Path, handler: Any
) -> tuple[tuple[Any, ...], list[CallRecord], list[httpx.Request], Exception | None]:
    """describe_all, then execute; returns (described, call records, requests sent, error)."""
    sent: list[httpx.Request] = []
    records: list[CallRecord] = []

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        response: httpx.Response = handler(request)
        return response

    bound = load_package(path).bind({}, env=ENV)

    async def main() -> tuple[tuple[Any, ...], Exception | None]:
        transport = httpx.MockTransport(recording)
        async with RestConnector(bound, transport=transport) as conn:
            described = conn.describe_all(STEP)
            with capture_calls() as calls:
                try:
                    await conn.execute(STEP)
                except BadRequestError as exc:
                    return described, exc
                finally:
                    records.extend(calls)
            return described, None

    described, error = asyncio.run(main())
    return described, records, sent, error


def shown(described: tuple[Any, ...], records: list[CallRecord], error: Exception | None) -> str:
    """Everything a person or the journal could see of the calls."""
    return json.dumps(
        {
            "described": [[c.method, c.path, c.body] for c in described],
            "records": [[r.method, r.path, r.error] for r in records],
            "error": str(error) if error else None,
        }
    )


# A url may hold neither `?` nor `#`, even inside `${...}`: those transformations go elsewhere.
PLACED = [
    (place, transform)
    for place in ("body", "path", "query")
    for transform in TRANSFORMS
    if place != "path" or not set("?#") & set(transform)
]


@pytest.mark.parametrize(("place", "transform"), PLACED)
def test_a_value_computed_from_a_secret_is_masked_where_shown_and_real_where_sent(
    tmp_path: Path, transform: str, place: str
) -> None:
    secret = real(transform)
    described, records, sent, error = run(
        leaky(tmp_path, transform, place), lambda r: json_response({})
    )

    assert error is None
    text = shown(described, records, None)
    assert TOKEN not in text
    if len(secret) > 3:  # `yes`, `no` and a length may well appear elsewhere
        assert secret not in text
    [call] = described
    [record] = records
    [request] = sent
    if place == "body":
        assert call.body["note"] == PARTLY_SHOWN.get(transform, "***")
        assert json.loads(request.content)["note"] == raw(transform)
    elif place == "path":
        assert call.path == "/v1/users/ann@example.com/keys/***"
        assert record.path == call.path
        assert unquote(request.url.raw_path.decode()).endswith(f"/keys/{secret}")
    else:
        assert call.path == "/v1/users/ann@example.com?k=***"
        assert record.path == call.path
        assert request.url.params["k"] == secret


@pytest.mark.parametrize("transform", TRANSFORMS[:8])
def test_a_server_echoing_a_transformed_secret_in_its_error_is_scrubbed(
    tmp_path: Path, transform: str
) -> None:
    secret = real(transform)

    def echo(request: httpx.Request) -> httpx.Response:
        return json_response({"message": f"bad value {secret} in request"}, status=400)

    described, records, _, error = run(leaky(tmp_path, transform, "body"), echo)

    assert isinstance(error, BadRequestError)
    text = shown(described, records, error)
    assert secret not in text
    assert "bad value *** in request" in str(error)
    assert records[0].error is not None
    assert secret not in records[0].error


def test_only_the_secret_part_of_a_text_is_masked(tmp_path: Path) -> None:
    document = generic_document()
    document["provisioning"] = {
        "update_account": [
            {
                "name": "set",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "body": {
                    "note": "key ${params.token.toUpperCase()} for ${account.email}",
                    "auth": "${'Bearer ' + params.token}",
                    "all": "${params}",
                },
            }
        ]
    }
    described, _, sent, _ = run(write_package(tmp_path, document), lambda r: json_response({}))

    assert described[0].body == {
        "note": "key *** for ann@example.com",
        "auth": "Bearer ***",
        "all": {"token": "***"},
    }
    assert json.loads(sent[0].content) == {
        "note": f"key {TOKEN.upper()} for ann@example.com",
        "auth": f"Bearer {TOKEN}",
        "all": {"token": TOKEN},
    }


def test_a_token_from_an_auth_call_is_masked_once_transformed(tmp_path: Path) -> None:
    document = generic_document()
    document["connection"]["auth"] = {
        "oauth": {
            "type": "token_call",
            "call": {
                "method": "POST",
                "url": "/token",
                "body": {"secret": "${params.token}"},
            },
            "token_path": "access_token",
        }
    }
    document["provisioning"] = {
        "update_account": [
            {
                "name": "set",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "query": {"t": "${access_token.toLowerCase()}"},
                "body": {"t": "${access_token.substring(7)}"},
            }
        ]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return json_response({"access_token": "FRESH-TOKEN-XYZ"})
        return json_response({})

    described, records, sent, error = run(write_package(tmp_path, document), handler)

    assert error is None
    assert "fresh-token-xyz" not in shown(described, records, None).lower()
    assert records[-1].path == "/v1/users/ann@example.com?t=***"
    assert sent[-1].url.params["t"] == "bearer fresh-token-xyz"
    assert json.loads(sent[-1].content) == {"t": "FRESH-TOKEN-XYZ"}


def test_a_when_condition_computed_from_a_secret_does_not_hide_a_described_call(
    tmp_path: Path,
) -> None:
    # Whether a call is listed would tell one bit of the secret: the call is listed either way.
    document = generic_document()
    document["provisioning"] = {
        "update_account": [
            {
                "name": "set",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "when": "params.token.startsWith('x')",
            }
        ]
    }
    described, _, sent, _ = run(write_package(tmp_path, document), lambda r: json_response({}))
    assert [c.method for c in described] == ["PATCH"]
    assert sent == []  # the real condition is false


def test_the_base64_of_a_secret_in_basic_auth_never_shows(tmp_path: Path) -> None:
    # The language has no base64 function; Basic auth is the one place a secret is base64-encoded.
    document = generic_document()
    document["connection"]["auth"] = {
        "basic": {"type": "basic", "username": "svc", "password": "${params.token}"}
    }
    document["provisioning"] = {
        "update_account": [{"name": "set", "method": "PATCH", "url": "/users/${account.email}"}]
    }
    encoded = base64.b64encode(f"svc:{TOKEN}".encode()).decode()

    def echo(request: httpx.Request) -> httpx.Response:
        return json_response({"message": f"refused {request.headers['Authorization']}"}, 400)

    described, records, sent, error = run(write_package(tmp_path, document), echo)
    assert sent[0].headers["Authorization"] == f"Basic {encoded}"
    assert encoded not in shown(described, records, error)


def test_an_each_block_over_a_list_computed_from_a_secret_is_masked_whole(tmp_path: Path) -> None:
    document = generic_document()
    document["provisioning"] = {
        "update_account": [
            {
                "name": "set",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "body": {
                    "parts": {
                        "$each": "params.token.split('-')",
                        "$as": "p",
                        "$emit": {"p": "${p}"},
                    }
                },
            }
        ]
    }
    described, _, sent, _ = run(write_package(tmp_path, document), lambda r: json_response({}))
    assert described[0].body == {"parts": "***"}
    assert json.loads(sent[0].content) == {"parts": [{"p": "tok"}, {"p": "secret"}, {"p": "123"}]}


def test_an_invalid_path_segment_computed_from_a_secret_is_refused_without_its_value(
    tmp_path: Path,
) -> None:
    document = generic_document()
    document["provisioning"] = {
        "update_account": [
            {"name": "set", "method": "PATCH", "url": "/users/${params.token.replace('-', '/')}"}
        ]
    }
    described, records, sent, error = run(
        write_package(tmp_path, document), lambda r: json_response({})
    )
    assert isinstance(error, BadRequestError)
    assert "computed from a secret" in str(error)
    assert "tok/secret" not in shown(described, records, error)
    assert sent == []


def test_an_import_field_computed_from_a_secret_fails_the_import(tmp_path: Path) -> None:
    document = generic_document()
    document["import"]["accounts"]["fields"]["extra.leak"] = {
        "expression": "record.mail + params.token.toUpperCase()"
    }
    path = write_package(tmp_path, document)
    users = {"items": [{"id": "1", "mail": "ann@example.com", "state": "on"}]}

    async def main() -> None:
        transport = httpx.MockTransport(lambda r: json_response(users))
        bound = load_package(path).bind({}, env=ENV)
        async with RestConnector(bound, transport=transport) as connector:
            await connector.accounts_page(None)

    with pytest.raises(UnexpectedResponseError) as caught:
        asyncio.run(main())
    assert "import.accounts.fields.extra.leak.expression" in str(caught.value)
    assert "secrets are never imported" in str(caught.value)
    assert TOKEN.upper() not in str(caught.value)


def test_a_base_url_computed_from_a_secret_is_refused_when_binding(tmp_path: Path) -> None:
    document = generic_document()
    document["connection"]["base_url"] = "https://${params.token}.example.com"
    loaded = load_package(write_package(tmp_path, document))
    with pytest.raises(ConfigError, match="base_url is computed from a secret") as caught:
        loaded.bind({}, env=ENV)
    assert TOKEN not in str(caught.value)


def test_a_next_link_echoing_a_transformed_secret_is_scrubbed_from_the_call_records(
    tmp_path: Path,
) -> None:
    document = generic_document()
    call = document["import"]["accounts"]["calls"][0]
    call["query"] = {"key": "${params.token.toUpperCase()}"}
    call["pagination"] = {"type": "next_url", "path": "next"}
    path = write_package(tmp_path, document)
    pages = {
        None: {
            "items": [{"id": "1", "mail": "a@example.com", "state": "on"}],
            "next": "/v1/users?key=" + TOKEN.upper() + "&page=2",
        },
        "2": {"items": [{"id": "2", "mail": "b@example.com", "state": "on"}], "next": None},
    }
    records: list[CallRecord] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/users"):
            return json_response(pages[request.url.params.get("page")])
        return json_response({"items": []})

    async def main() -> int:
        bound = load_package(path).bind({}, env=ENV)
        transport = httpx.MockTransport(handler)
        async with RestConnector(bound, transport=transport) as conn:
            with capture_calls() as calls:
                found = len((await conn.accounts_page(None)).items)
            records.extend(calls)
            return found

    assert asyncio.run(main()) == 2
    users = [r.path for r in records if "/users" in r.path]
    assert users == ["/v1/users?key=***", "/v1/users?key=***&page=2"]
