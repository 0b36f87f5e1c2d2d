"""Paging state machines for import calls, with guards against listings that never end.

A `PageState` is plain JSON (it travels inside the engine's opaque cursor). Every kind stops on an
empty page; every kind refuses a page whose records repeat an earlier page, a next link or cursor
seen before, a next link off the base URL's host, and more than `max_pages` pages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from sigsci_iga.connectors.rest.spec import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
    Pagination,
    get_path,
    parse_path,
)
from sigsci_iga.errors import UnexpectedResponseError


@dataclass
class PageState:
    """Where the next page is: a page number or offset, a URL, or a cursor; and what was seen."""

    pages: int = 0
    position: int | None = None
    url: str | None = None
    cursor: str | None = None
    fetched: int = 0
    #: Short digests of page contents, next links and cursors already met.
    seen: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageState:
        return cls(**data)


def digest(kind: str, value: Any) -> str:
    """A short, stable fingerprint (not security relevant: a repeat detector)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return kind + ":" + hashlib.sha256(text.encode()).hexdigest()[:16]


def same_origin(url: str, base_url: str) -> bool:
    """Same scheme, host and port as the base URL."""
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def _empty(value: Any) -> bool:
    return value is None or value in ("", [], {}, False)


class Pager:
    """Computes each page's request and the state after a page, for one call's pagination."""

    def __init__(self, spec: Pagination, *, base_url: str, path: str) -> None:
        self.spec = spec
        self.base_url = base_url
        #: Shown in errors: the call's path, never a full URL with a query.
        self.path = path

    def first(self) -> PageState:
        spec = self.spec
        if isinstance(spec, PagePagination | OffsetPagination):
            return PageState(position=spec.start)
        return PageState()

    def request(self, state: PageState) -> tuple[str | None, dict[str, str]]:
        """(absolute URL to fetch instead of the call's own, extra query parameters)."""
        spec = self.spec
        if isinstance(spec, PagePagination):
            return None, {spec.page_param: str(state.position), spec.size_param: str(spec.size)}
        if isinstance(spec, OffsetPagination):
            return None, {spec.offset_param: str(state.position), spec.limit_param: str(spec.size)}
        if isinstance(spec, CursorPagination) and state.cursor is not None:
            return None, {spec.cursor_param: state.cursor}
        return state.url, {}

    def _fail(self, message: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            method="GET", path=self.path, status=200, message=f"{message}; paging would not end"
        )

    def advance(
        self,
        state: PageState,
        *,
        body: Any,
        records: list[Any],
        links: dict[str, dict[str, str]],
        request_url: str,
    ) -> PageState | None:
        """The state for the next page, or None when this page was the last one."""
        spec = self.spec
        pages = state.pages + 1
        seen = list(state.seen)
        if records:
            fingerprint = digest("page", records)
            if fingerprint in seen:
                raise self._fail(f"page {pages} repeats the records of an earlier page")
            seen.append(fingerprint)
        if isinstance(spec, NoPagination) or not records:
            return None
        fetched = state.fetched + len(records)
        following: PageState | None
        if isinstance(spec, PagePagination | OffsetPagination):
            following = self._counted(spec, state, body, records, fetched)
        elif isinstance(spec, NextUrlPagination):
            value = get_path(body, parse_path(spec.path))
            following = None if _empty(value) else self._url_state(str(value), request_url)
        elif isinstance(spec, LinkHeaderPagination):
            value = links.get("next", {}).get("url")
            following = None if _empty(value) else self._url_state(str(value), request_url)
        else:
            assert isinstance(spec, CursorPagination)
            value = get_path(body, parse_path(spec.cursor_path))
            following = None if _empty(value) else PageState(cursor=str(value))
        if following is None:
            return None
        if pages >= spec.max_pages:
            raise self._fail(f"more than {spec.max_pages} pages (max_pages)")
        for marker in (following.url, following.cursor):
            if marker is not None:
                fingerprint = digest("next", marker)
                if fingerprint in seen:
                    raise self._fail("the next link or cursor repeats an earlier one")
                seen.append(fingerprint)
        following.pages = pages
        following.fetched = fetched
        following.seen = seen
        return following

    def _counted(
        self,
        spec: PagePagination | OffsetPagination,
        state: PageState,
        body: Any,
        records: list[Any],
        fetched: int,
    ) -> PageState | None:
        for rule in spec.stop:
            if rule == "short_page" and len(records) < spec.size:
                return None
            if rule == "total":
                total = get_path(body, parse_path(spec.total_path or ""))
                if not isinstance(total, int) or isinstance(total, bool):
                    raise UnexpectedResponseError(
                        method="GET",
                        path=self.path,
                        status=200,
                        message=f"total at {spec.total_path!r} is not a number",
                    )
                if fetched >= total:
                    return None
            if rule == "empty_next" and _empty(get_path(body, parse_path(spec.next_path or ""))):
                return None
        position = state.position if state.position is not None else spec.start
        step = 1 if isinstance(spec, PagePagination) else spec.size
        return PageState(position=position + step)

    def _url_state(self, value: str, request_url: str) -> PageState:
        url = urljoin(request_url, value)
        if not same_origin(url, self.base_url):
            raise UnexpectedResponseError(
                method="GET",
                path=self.path,
                status=200,
                message=f"next link to {urlsplit(url).netloc or '?'} leaves the base URL's host",
            )
        return PageState(url=url)
