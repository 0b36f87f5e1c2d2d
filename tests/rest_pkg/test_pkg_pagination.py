"""Pagination kinds against scripted servers, and the guards that stop listings that never end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pkg_harness import generic_document, json_response, mock_connector, write_package

from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.domain.model import SiteSnapshot
from sigsci_iga.errors import UnexpectedResponseError
from sigsci_iga.importer.run import _read_all

ENV = {"GENERIC_TOKEN": "tok-secret-123"}
Handler = Callable[[httpx.Request], httpx.Response]


def groups(names: list[str], **more: Any) -> dict[str, Any]:
    return {"items": [{"name": n} for n in names], **more}


def read_sites(tmp_path: Path, pagination: dict[str, Any], handler: Handler) -> list[str]:
    """Drive sites_page to the end the way the importer does; returns the names in order."""
    document = generic_document()
    document["import"]["entitlement_types"]["Group"]["calls"][0]["pagination"] = pagination
    loaded = load_package(write_package(tmp_path, document))

    def noop(_stage: str, _done: int, _total: int | None) -> None:
        return None

    async def main() -> list[SiteSnapshot]:
        async with mock_connector(loaded, handler, env=ENV) as connector:
            return await _read_all(connector.sites_page, "sites", noop)

    return [s.name for s in asyncio.run(main())]


def test_page_numbers_stop_on_a_short_page(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        page = int(request.url.params["p"])
        assert request.url.params["n"] == "2"
        assert request.headers["x-key"] == "tok-secret-123"
        return json_response(groups({1: ["a", "b"], 2: ["c", "d"], 3: ["e"]}[page]))

    pagination = {"type": "page", "page_param": "p", "size_param": "n", "size": 2}
    assert read_sites(tmp_path, pagination, handler) == ["a", "b", "c", "d", "e"]
    assert seen[0] == "https://api.example.com/v1/groups?p=1&n=2"
    assert len(seen) == 3


def test_offsets_stop_at_the_total(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["from"])
        names = ["a", "b", "c", "d"][offset : offset + 2]
        return json_response(groups(names, meta={"total": 4}))

    pagination = {
        "type": "offset",
        "offset_param": "from",
        "limit_param": "count",
        "size": 2,
        "stop": ["total"],
        "total_path": "meta.total",
    }
    assert read_sites(tmp_path, pagination, handler) == ["a", "b", "c", "d"]


def test_next_url_relative_and_cursor_and_link_header(tmp_path: Path) -> None:
    def by_url(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("page", "1")
        nxt = {"1": "/v1/groups?page=2", "2": "groups?page=3", "3": None}[page]
        return json_response(groups([f"g{page}"], next=nxt))

    pagination = {"type": "next_url", "path": "next"}
    assert read_sites(tmp_path, pagination, by_url) == ["g1", "g2", "g3"]

    def by_cursor(request: httpx.Request) -> httpx.Response:
        at = request.url.params.get("after", "")
        nxt = {"": "c1", "c1": "c2", "c2": ""}[at]
        return json_response(groups([f"x{at}"], cursor=nxt))

    pagination = {"type": "cursor", "cursor_path": "cursor", "cursor_param": "after"}
    assert read_sites(tmp_path, pagination, by_cursor) == ["x", "xc1", "xc2"]

    def by_link(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        headers = {"link": f'<https://api.example.com/v1/groups?page={page + 1}>; rel="next"'}
        return json_response(groups([f"l{page}"]), **(headers if page < 3 else {}))

    assert read_sites(tmp_path, {"type": "link_header"}, by_link) == ["l1", "l2", "l3"]


def test_an_endless_next_link_is_refused(tmp_path: Path) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        # Fresh records every time, but always the same next link.
        return json_response(groups([f"n{calls}"], next="/v1/groups?page=2"))

    with pytest.raises(
        UnexpectedResponseError, match="repeats an earlier one; paging would not end"
    ):
        read_sites(tmp_path, {"type": "next_url", "path": "next"}, handler)
    assert calls <= 3


def test_a_repeated_page_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        # The server ignores the page number: every page is the same full page.
        return json_response(groups(["a", "b"]))

    pagination = {"type": "page", "page_param": "page", "size_param": "limit", "size": 2}
    with pytest.raises(UnexpectedResponseError, match="repeats the records of an earlier page"):
        read_sites(tmp_path, pagination, handler)


def test_max_pages_is_an_error_not_a_silent_stop(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return json_response(groups([f"p{page}a", f"p{page}b"]))

    pagination = {
        "type": "page",
        "page_param": "page",
        "size_param": "limit",
        "size": 2,
        "max_pages": 3,
    }
    with pytest.raises(UnexpectedResponseError, match="more than 3 pages"):
        read_sites(tmp_path, pagination, handler)


def test_a_next_link_off_the_host_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(groups(["a"], next="https://evil.example.net/v1/groups?page=2"))

    with pytest.raises(UnexpectedResponseError, match="leaves the base URL's host"):
        read_sites(tmp_path, {"type": "next_url", "path": "next"}, handler)


def test_records_must_be_a_list(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response({"items": {"name": "a"}})

    with pytest.raises(UnexpectedResponseError, match="expected a list at 'items'"):
        read_sites(tmp_path, {"type": "none"}, handler)


def test_reads_are_retried_and_redirects_refused(tmp_path: Path) -> None:
    answers = [httpx.Response(503, json={"message": "busy"}), json_response(groups(["a"]))]

    def flaky(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    assert read_sites(tmp_path, {"type": "none"}, flaky) == ["a"]

    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://login.example.com/"})

    with pytest.raises(UnexpectedResponseError, match="redirect"):
        read_sites(tmp_path, {"type": "none"}, redirect)
