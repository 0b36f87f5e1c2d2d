"""A package that exceeds a limit fails that call, record or run with a located error: no traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from pkg_harness import generic_document, json_response, mock_connector, write_package

from sigsci_iga.connectors.base import SetRole
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.errors import ApiError, BadRequestError, InvalidInputError, UnexpectedResponseError

ENV = {"GENERIC_TOKEN": "tok-secret-123"}
PAD = "p" * 600_000
USERS = {"items": [{"id": "1", "mail": "ann@example.com", "state": "on"}]}


def padded_document(**overrides: Any) -> dict[str, Any]:
    """The generic package with a large non-secret parameter `pad` and an update operation."""
    document = generic_document(**overrides)
    document["parameters"]["pad"] = {"default": "x"}
    document["provisioning"] = {
        "update_account": [
            {
                "name": "set",
                "method": "PATCH",
                "url": "/users/${account.email}",
                "body": {"role": "${account.role}"},
            }
        ]
    }
    return document


def run_update(path: Path, sent: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return json_response({})

    async def main() -> None:
        async with mock_connector(load_package(path), handler, {"pad": PAD}, ENV) as connector:
            await connector.execute(SetRole("ann@example.com", "admin"))

    asyncio.run(main())


def test_a_body_over_the_text_limit_fails_the_call_naming_file_json_path_and_limit(
    tmp_path: Path,
) -> None:
    document = padded_document()
    document["provisioning"]["update_account"][0]["body"]["note"] = "${params.pad + params.pad}"
    path = write_package(tmp_path, document)
    sent: list[httpx.Request] = []

    with pytest.raises(BadRequestError) as caught:
        run_update(path, sent)

    message = str(caught.value)
    assert str(path) in message
    assert "provisioning.update_account[0].body.note" in message
    assert "limit MAX_TEXT_LENGTH" in message
    assert sent == []


def test_a_body_whose_each_blocks_build_too_many_values_fails_the_call(tmp_path: Path) -> None:
    document = padded_document()
    row = {"$each": "params.pad.split(',')", "$as": "y", "$emit": "${y}"}
    document["provisioning"]["update_account"][0]["body"]["grid"] = {
        "$each": "params.pad.split(',')",
        "$as": "x",
        "$emit": row,
    }
    path = write_package(tmp_path, document)
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return json_response({})

    async def main() -> None:
        csv = ",".join(["a"] * 400)  # 400 x 400 values in all
        async with mock_connector(load_package(path), handler, {"pad": csv}, ENV) as connector:
            await connector.execute(SetRole("ann@example.com", "admin"))

    with pytest.raises(BadRequestError) as caught:
        asyncio.run(main())
    assert "provisioning.update_account[0].body" in str(caught.value)
    assert "limit MAX_LIST_LENGTH" in str(caught.value)
    assert sent == []


def test_a_url_segment_over_the_limit_fails_the_call(tmp_path: Path) -> None:
    document = padded_document()
    document["provisioning"]["update_account"][0]["url"] = "/users/${params.pad + params.pad}"
    path = write_package(tmp_path, document)
    sent: list[httpx.Request] = []

    with pytest.raises(BadRequestError, match="limit MAX_TEXT_LENGTH") as caught:
        run_update(path, sent)
    assert "provisioning.update_account[0].url" in str(caught.value)
    assert sent == []


def test_an_auth_header_over_the_limit_fails_the_call_as_an_api_error(tmp_path: Path) -> None:
    document = padded_document()
    document["connection"]["auth"]["key"]["headers"]["x-pad"] = "${params.pad + params.pad}"
    path = write_package(tmp_path, document)
    sent: list[httpx.Request] = []

    with pytest.raises(ApiError) as caught:
        run_update(path, sent)
    assert "connection.auth.key.headers.x-pad" in str(caught.value)
    assert "limit MAX_TEXT_LENGTH" in str(caught.value)
    assert sent == []


def test_an_import_field_over_the_limit_fails_the_import_naming_file_json_path_and_limit(
    tmp_path: Path,
) -> None:
    document = padded_document()
    document["import"]["accounts"]["fields"]["extra.big"] = {
        "expression": "record.mail + params.pad + params.pad"
    }
    path = write_package(tmp_path, document)

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(USERS)

    async def main() -> None:
        async with mock_connector(load_package(path), handler, {"pad": PAD}, ENV) as connector:
            await connector.accounts_page(None)

    with pytest.raises(UnexpectedResponseError) as caught:
        asyncio.run(main())
    message = str(caught.value)
    assert str(path) in message
    assert "import.accounts.fields.extra.big.expression" in message
    assert "limit MAX_TEXT_LENGTH" in message


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [200, 20_000])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_package_nested_too_deeply_is_refused_with_its_file_not_a_recursion_error(
    tmp_path: Path, depth: int, suffix: str
) -> None:
    document = padded_document()
    document["provisioning"]["update_account"][0]["body"] = {"deep": "@DEEP@"}
    text = write_package(tmp_path, document, "pkg.json").read_text()
    path = tmp_path / f"deep{suffix}"
    # JSON text is YAML too (flow style), so one text serves both readers.
    path.write_text(text.replace('"@DEEP@"', _nested(depth)))

    with pytest.raises(InvalidInputError) as caught:
        load_package(path)
    assert str(path) in str(caught.value)
    assert "nests deeper than" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "reason"), [(200, "nested deeper than 64 levels"), (400, "non-JSON body")]
)
def test_a_response_nested_too_deeply_fails_the_read_not_the_process(
    tmp_path: Path, status: int, reason: str
) -> None:
    path = write_package(tmp_path, padded_document())
    deep = ("[" * 50_000 + "]" * 50_000).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=deep, headers={"content-type": "application/json"})

    async def main() -> None:
        async with mock_connector(load_package(path), handler, env=ENV) as connector:
            await connector.accounts_page(None)

    with pytest.raises(ApiError, match=reason):
        asyncio.run(main())
