"""Async client for the Signal Sciences API v0: the endpoints identity governance needs.

Reads are retried with exponential backoff and jitter (a bounded number of tries for failures,
a bounded time for throttling: see `backoff`); writes are sent once (the task queue owns their
retries). Redirects are never followed. Every status code is interpreted in
`connectors.http.responses`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from sigsci_iga.connectors.http.bounded import DEFAULT_MAX_BODY_BYTES, BodySink, send_bounded
from sigsci_iga.connectors.http.calls import USER_AGENT, CallObserver, CallRecord, record_call
from sigsci_iga.connectors.http.limits import RequestLimiter
from sigsci_iga.connectors.http.responses import (
    decode_json,
    error_for_response,
    error_for_transport,
    expect_shape,
    scrub,
)
from sigsci_iga.connectors.http.segments import check_segment, check_sent_path
from sigsci_iga.connectors.signalsciences.backoff import ReadRetry
from sigsci_iga.connectors.signalsciences.decode import (
    BATCH_USERS,
    UserRow,
    UsersReader,
    UsersSink,
    decode_users,
)
from sigsci_iga.connectors.signalsciences.models import (
    ActivityEvent,
    Corp,
    Membership,
    Page,
    Site,
    SiteMember,
    User,
)
from sigsci_iga.connectors.signalsciences.paths import API_PREFIX, api_path
from sigsci_iga.domain.emails import check_address, normalize_email
from sigsci_iga.domain.model import corp_role
from sigsci_iga.errors import (
    ApiError,
    AuthError,
    ConfigError,
    InvalidInputError,
    RateLimitedError,
    UnexpectedResponseError,
)
from sigsci_iga.settings import Settings

DEFAULT_SITE_PAGE_SIZE = 100
DEFAULT_ACTIVITY_PAGE_SIZE = 1000
_MAX_PAGES = 100_000
#: A corp with more sites than this is a server inventing them (`SIGSCI_IGA_MAX_SITES`).
DEFAULT_MAX_SITES = 100_000
#: An incremental read with more events than this is better done as a full import (the
#: importer falls back to one when the feed fails), and a feed that never ends stops here.
DEFAULT_MAX_EVENTS = 200_000


@dataclass(frozen=True)
class SiteCursor:
    """Where the next page of sites is: a page number, or the server's own next link."""

    page: int = 1
    uri: str | None = None
    #: Sites read on the pages before, to compare with a server's totalCount.
    seen: int = 0


class RepeatGuard:
    """Stops paging that would never end: a page that repeats keys already seen, or too many pages."""

    def __init__(self, what: str, max_pages: int = _MAX_PAGES) -> None:
        self.what = what
        self.max_pages = max_pages
        self.pages = 0
        self.seen: set[str] = set()

    def check(self, keys: Sequence[str], path: str) -> None:
        self.pages += 1
        repeated = self.seen.intersection(keys)
        if repeated or self.pages > self.max_pages:
            reason = (
                f"page {self.pages} repeats {self.what} {sorted(repeated)[0]!r}"
                if repeated
                else f"more than {self.max_pages} pages"
            )
            raise UnexpectedResponseError(
                method="GET", path=path, status=200, message=f"{reason}; paging would not end"
            )
        self.seen.update(keys)


@dataclass(frozen=True)
class Reply:
    """A successful call: its status and decoded JSON body (None for 204 or an empty body)."""

    status: int
    body: Any


#: Turns a 2xx response into its value: (method, shown path, response) -> body.
BodyParser = Callable[[str, str, httpx.Response], Any]
#: Takes a 2xx body as it arrives instead of it being kept: (method, shown path, response).
BodyStream = Callable[[str, str, httpx.Response], BodySink]
M = TypeVar("M", bound=BaseModel)


def _template(path: str) -> str:
    """A path with its corp, user and site names replaced, for per-endpoint counters."""
    parts = path.split("?", 1)[0].split("/")
    names = {"corps": "{corp}", "users": "{email}", "sites": "{site}", "members": "{email}"}
    out: list[str] = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else ""
        out.append(names.get(previous, part))
    return "/".join(out)


class SigSciClient:
    """One corp's API, reached with an access token (or a password session as a fallback)."""

    def __init__(
        self,
        *,
        base_url: str,
        corp: str,
        email: str,
        token: SecretStr | None = None,
        password: SecretStr | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        rate_limit_per_minute: float = 600.0,
        max_concurrency: int = 4,
        read_attempts: int = 5,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 30.0,
        throttle_patience: float = 100.0,
        throttle_wait_max: float = 15.0,
        retry_jitter: float = 0.25,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_sites: int = DEFAULT_MAX_SITES,
        max_events: int = DEFAULT_MAX_EVENTS,
        observers: Sequence[CallObserver] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if token is None and password is None:
            raise ConfigError("an API token (or a password for session login) is required")
        self.corp = _checked_corp(corp)
        self.email = normalize_email(email)
        self._token = token
        self._password = password
        self._session_token: SecretStr | None = None
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        # The prefix httpx puts before every path: what a sent path must start with.
        self._base_path = urlsplit(base_url.rstrip("/")).path
        self._deadline = timeout
        self._max_body_bytes = max_body_bytes
        self.max_sites = max_sites
        self.max_events = max_events
        self._limiter = RequestLimiter(rate_limit_per_minute, max_concurrency)
        self._retry = ReadRetry(
            attempts=read_attempts,
            wait_initial=retry_wait_initial,
            wait_max=retry_wait_max,
            throttle_patience=throttle_patience,
            throttle_wait_max=throttle_wait_max,
            jitter=retry_jitter,
        )
        # Injectable so tests can prove minutes of backing off without waiting for them.
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not security
        self.observers: list[CallObserver] = list(observers)
        #: Calls sent, by "METHOD /path/template"; retries count as separate calls.
        self.calls: Counter[str] = Counter()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> Self:
        """Build a client from settings; raises ConfigError naming anything missing."""
        email, corp = settings.require_credentials()
        options: dict[str, Any] = {
            "base_url": settings.api_url,
            "corp": corp,
            "email": email,
            "token": settings.token,
            "password": settings.password,
            "transport": transport,
            "timeout": settings.timeout_seconds,
            "rate_limit_per_minute": settings.rate_limit_per_minute,
            "max_concurrency": settings.max_concurrency,
            "read_attempts": settings.read_attempts,
            "max_body_bytes": settings.max_body_bytes,
            "max_sites": settings.max_sites,
        }
        options.update(overrides)
        return cls(**options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # -- transport ---------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        values = (self._token, self._password, self._session_token)
        return tuple(v.get_secret_value() for v in values if v is not None)

    def redact(self, text: str) -> str:
        """Server-chosen text with this client's secrets masked, fit for an error message."""
        return scrub(text, self._secrets())

    def _auth_headers(self) -> dict[str, str]:
        if self._token is not None:
            return {"x-api-user": self.email, "x-api-token": self._token.get_secret_value()}
        if self._session_token is not None:
            return {"Authorization": f"Bearer {self._session_token.get_secret_value()}"}
        return {}

    def _notify(self, record: CallRecord) -> None:
        record = dataclasses.replace(record, template=_template(record.path))
        self.calls[f"{record.method} {record.template}"] += 1
        record_call(record)
        for observer in self.observers:
            observer(record)

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        authenticated: bool = True,
        parse: BodyParser | None = None,
        stream: BodyStream | None = None,
    ) -> Reply:
        shown = path
        if params:
            shown = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
        headers = self._auth_headers() if authenticated else {}
        request = self._http.build_request(
            method, path, params=params, json=json_body, data=form, headers=headers
        )
        # Nothing is sent unless the URL names exactly the path built (no dot segment resolved).
        check_sent_path(request.url, self._base_path + path)
        started = time.monotonic()
        async with self._limiter:
            try:
                response = await send_bounded(
                    self._http,
                    request,
                    deadline=self._deadline,
                    max_body_bytes=self._max_body_bytes,
                    shown=shown,
                    sink_for=None
                    if stream is None
                    else lambda r: stream(method, shown, r) if r.is_success else None,
                )
            except ApiError as exc:
                self._notify(
                    CallRecord(method, shown, exc.status, time.monotonic() - started, exc.message)
                )
                raise
            except httpx.TransportError as exc:
                error = error_for_transport(method, shown, exc, self._secrets())
                self._notify(
                    CallRecord(method, shown, None, time.monotonic() - started, error.message)
                )
                raise error from None
        failure = error_for_response(method, shown, response, self._secrets())
        body: Any = None
        if failure is None:
            # A truncated or non-JSON 2xx is a failed call too, for observers as for callers.
            try:
                if stream is not None:
                    body = None  # the sink took it as it arrived
                elif parse is None:
                    body = decode_json(method, shown, response)
                else:
                    body = parse(method, shown, response)
            except ApiError as exc:
                failure = exc
        self._notify(
            CallRecord(
                method,
                shown,
                response.status_code,
                time.monotonic() - started,
                failure.message if failure else None,
            )
        )
        if failure is not None:
            raise failure
        return Reply(response.status_code, body)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        parse: BodyParser | None = None,
        stream: BodyStream | None = None,
    ) -> Reply:
        """Send one call, logging in first for a password session and once more if it expired."""
        if self._token is None and self._session_token is None:
            await self.login()
        try:
            return await self._send_once(
                method, path, params=params, json_body=json_body, parse=parse, stream=stream
            )
        except AuthError:
            if self._token is not None or self._password is None:
                raise
            # Session tokens can expire early; log in again once, as the official sample does.
            await self.login()
            return await self._send_once(
                method, path, params=params, json_body=json_body, parse=parse, stream=stream
            )

    async def _read(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        shape: str = "object",
        parse: BodyParser | None = None,
        stream: BodyStream | None = None,
    ) -> Any:
        """GET with retries; returns the parsed body checked against the expected envelope."""
        retry = self._retry
        failures = 0
        throttles = 0
        throttled_since: float | None = None
        while True:
            try:
                reply = await self._request("GET", path, params=params, parse=parse, stream=stream)
            except RateLimitedError as exc:
                now = self._clock()
                throttled_since = now if throttled_since is None else throttled_since
                throttles += 1
                wait = retry.throttle_wait(
                    throttles, exc.retry_after, now - throttled_since, self._rng
                )
                if wait is None:
                    raise RateLimitedError(
                        method=exc.method,
                        path=exc.path,
                        status=exc.status,
                        message=f"{exc.message}; still throttled {now - throttled_since:.0f} s "
                        f"after the first refusal ({throttles} tries), giving up",
                        retry_after=exc.retry_after,
                    ) from None
                await self._sleep(wait)
                continue
            except ApiError as exc:
                failures += 1
                if not exc.retryable or failures >= retry.attempts:
                    raise
                await self._sleep(retry.failure_wait(failures, exc.retry_after, self._rng))
                continue
            if parse is not None or stream is not None:
                return reply.body
            shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
            return expect_shape("GET", shown, reply.status, reply.body, shape)

    async def _write(self, method: str, path: str, json_body: Any = None) -> Any:
        """Send a write once; returns the parsed body, or None for 204/empty."""
        return (await self._request(method, path, json_body=json_body)).body

    def _parse(self, model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            # Keys come from the server; one could echo the token back.
            where = self.redact(".".join(str(p) for p in first["loc"]))
            raise UnexpectedResponseError(
                method=method,
                path=path,
                status=200,
                message=f"{model.__name__} payload invalid at {where or 'top'}: {first['msg']}",
            ) from None

    def _parse_list(self, model: type[M], body: Any, method: str, path: str) -> list[M]:
        return [self._parse(model, item, method, path) for item in body["data"]]

    # -- auth --------------------------------------------------------------------------------

    async def login(self) -> None:
        """Exchange email and password for a session token (POST /auth, form-encoded)."""
        if self._password is None:
            raise ConfigError("session login needs SIGSCI_PASSWORD")
        path = API_PREFIX + "/auth"
        reply = await self._send_once(
            "POST",
            path,
            form={"email": self.email, "password": self._password.get_secret_value()},
            authenticated=False,
        )
        body = expect_shape("POST", path, reply.status, reply.body, "object")
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise UnexpectedResponseError(
                method="POST",
                path=path,
                status=reply.status,
                message="login answered without a token",
            )
        self._session_token = SecretStr(token)

    # -- corps -------------------------------------------------------------------------------

    def _corp_path(self, *rest: tuple[str, str] | str) -> str:
        return api_path("corps", (self.corp, "corp name"), *rest)

    async def list_corps(self) -> list[Corp]:
        path = api_path("corps")
        return self._parse_list(Corp, await self._read(path, shape="list"), "GET", path)

    async def get_corp(self) -> Corp:
        path = self._corp_path()
        return self._parse(Corp, await self._read(path), "GET", path)

    # -- users -------------------------------------------------------------------------------

    async def list_users(self, *, expand_memberships: bool = True) -> list[UserRow]:
        """All corp users in one call (the endpoint is not paginated), decoded by `decode`."""
        path = self._corp_path("users")
        params = {"expand": "memberships"} if expand_memberships else None
        users: list[UserRow] = await self._read(path, params=params, parse=decode_users)
        return users

    async def stream_users(
        self,
        sink: UsersSink,
        *,
        begin: Callable[[], None],
        batch_users: int = BATCH_USERS,
        expand_memberships: bool = True,
    ) -> None:
        """All corp users in one call, handed to `sink` in batches as the body arrives.

        The body is never held whole. A failed read that is retried starts again from the
        first user: `begin` is called before each attempt's first batch, and the caller must
        forget what earlier attempts handed on.
        """
        path = self._corp_path("users")
        params = {"expand": "memberships"} if expand_memberships else None

        def reader(method: str, shown: str, response: httpx.Response) -> UsersReader:
            begin()
            return UsersReader(
                method,
                shown,
                response.status_code,
                sink,
                content_type=response.headers.get("content-type", ""),
                batch_users=batch_users,
            )

        await self._read(path, params=params, stream=reader)

    async def get_user(self, email: str, *, expand_memberships: bool = True) -> User:
        """One user, named as the server spells the email (some servers match it exactly)."""
        path = self._corp_path("users", (check_address(email), "email"))
        params = {"expand": "memberships"} if expand_memberships else None
        return self._parse(User, await self._read(path, params=params), "GET", path)

    async def get_user_memberships(self, email: str) -> list[Membership]:
        path = self._corp_path("users", (check_address(email), "email"), "memberships")
        body = await self._read(path, shape="list")
        return self._parse_list(Membership, body, "GET", path)

    @staticmethod
    def _memberships_body(sites: Iterable[str]) -> dict[str, Any]:
        names = sorted({_checked_site(s) for s in sites})
        return {"data": [{"site": {"name": name}} for name in names]}

    def user_path(self, email: str, *rest: str) -> str:
        """Path of a corp user (checked and encoded), optionally with literal words after it."""
        return self._corp_path("users", (check_address(email), "email"), *rest)

    def site_path(self, site: str, *rest: str) -> str:
        """Path of a site (checked and encoded), optionally with literal words after it."""
        return self._corp_path("sites", (_checked_site(site), "site name"), *rest)

    def site_member_path(self, site: str, email: str, *rest: str) -> str:
        """Path of one site member (checked and encoded)."""
        return self._corp_path(
            "sites",
            (_checked_site(site), "site name"),
            "members",
            (check_address(email), "email"),
            *rest,
        )

    def invite_body(self, *, role: str, sites: Iterable[str]) -> dict[str, Any]:
        return {"role": corp_role(role).value, "memberships": self._memberships_body(sites)}

    async def invite_user(self, email: str, *, role: str, sites: Iterable[str]) -> User | None:
        """Invite a new corp user with a role and sites; returns the pending user if echoed."""
        path = self.user_path(email, "invite")
        data = await self._write("POST", path, self.invite_body(role=role, sites=sites))
        return self._parse(User, data, "POST", path) if isinstance(data, dict) else None

    async def update_user(
        self,
        email: str,
        *,
        role: str | None = None,
        sites: Iterable[str] | None = None,
        api_user: bool | None = None,
    ) -> User | None:
        """PATCH a corp user. `sites`, when given, REPLACES the whole membership set."""
        path = self._corp_path("users", (check_address(email), "email"))
        body: dict[str, Any] = {}
        if role is not None:
            body["role"] = corp_role(role).value
        if sites is not None:
            body["memberships"] = self._memberships_body(sites)
        if api_user is not None:
            body["apiUser"] = api_user
        if not body:
            raise InvalidInputError("update_user needs at least one of role, sites, api_user")
        data = await self._write("PATCH", path, body)
        return self._parse(User, data, "PATCH", path) if isinstance(data, dict) else None

    async def delete_user(self, email: str) -> None:
        await self._write("DELETE", self.user_path(email))

    # -- sites -------------------------------------------------------------------------------

    async def sites_page(self, page: int, limit: int = DEFAULT_SITE_PAGE_SIZE) -> Page[Site]:
        """One page of sites; `page` is 1-based."""
        path = self._corp_path("sites")
        body = await self._read(path, params={"page": page, "limit": limit}, shape="list")
        return self._site_page(body, path)

    def _site_page(self, body: Mapping[str, Any], path: str) -> Page[Site]:
        total = body.get("totalCount")
        return Page[Site](
            items=self._parse_list(Site, body, "GET", path),
            next_uri=_next_uri(body),
            next_given=isinstance(body.get("next"), dict),
            total_count=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    async def site_page_at(
        self, cursor: SiteCursor, *, limit: int = DEFAULT_SITE_PAGE_SIZE
    ) -> tuple[Page[Site], SiteCursor | None]:
        """Read the page a cursor names and say where the next one is (None: this was the last).

        A page shorter than `limit` may be a server's silent cap on `limit`, not the end, so the
        end is only believed when the server says so: an empty page; a `totalCount` the sites
        read so far reach; an empty `next` on a page reached through a next link, or on a page
        shorter than asked. Otherwise the following page number is read: a server that gives
        neither `totalCount` nor `next` costs one call more per listing (the empty last page).
        """
        if cursor.uri:
            path, params = self._split_next(cursor.uri, "sites")
            page = self._site_page(await self._read(path, params=params, shape="list"), path)
        else:
            page = await self.sites_page(cursor.page, limit)
        seen = cursor.seen + len(page.items)
        following = SiteCursor(page=cursor.page + 1, seen=seen)
        if not page.items:
            return page, None
        if seen > self.max_sites:
            raise UnexpectedResponseError(
                method="GET",
                path=self._corp_path("sites"),
                status=200,
                message=f"more than {self.max_sites} sites (SIGSCI_IGA_MAX_SITES); "
                "paging would not end",
            )
        if page.next_uri and page.next_uri == cursor.uri:
            raise UnexpectedResponseError(
                method="GET",
                path=self._corp_path("sites"),
                status=200,
                message="the next link names the page just read; paging would not end",
            )
        if page.next_uri:
            return page, SiteCursor(page=following.page, uri=page.next_uri, seen=seen)
        if page.total_count is not None:
            return page, None if seen >= page.total_count else following
        if page.next_given and (cursor.uri is not None or len(page.items) < limit):
            return page, None
        return page, following

    async def iter_site_pages(
        self, *, limit: int = DEFAULT_SITE_PAGE_SIZE
    ) -> AsyncIterator[Page[Site]]:
        """Every page of sites, refusing a server that repeats itself instead of ending."""
        guard = RepeatGuard("site")
        cursor: SiteCursor | None = SiteCursor()
        while cursor is not None:
            page, cursor = await self.site_page_at(cursor, limit=limit)
            guard.check([s.name for s in page.items], self._corp_path("sites"))
            yield page

    async def list_sites(self, *, limit: int = DEFAULT_SITE_PAGE_SIZE) -> list[Site]:
        return [site async for page in self.iter_site_pages(limit=limit) for site in page.items]

    async def get_site(self, site: str) -> Site:
        path = self._corp_path("sites", (_checked_site(site), "site name"))
        return self._parse(Site, await self._read(path), "GET", path)

    async def list_site_members(self, site: str) -> list[SiteMember]:
        path = self._corp_path("sites", (_checked_site(site), "site name"), "members")
        return self._parse_list(SiteMember, await self._read(path, shape="list"), "GET", path)

    async def add_site_members(self, site: str, emails: Iterable[str]) -> list[SiteMember]:
        """Add existing corp users to a site in one call (never touches their other sites)."""
        members = sorted({check_address(e) for e in emails})
        if not members:
            raise InvalidInputError("add_site_members needs at least one email")
        path = self.site_path(site, "members")
        data = await self._write("POST", path, {"members": members})
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            return self._parse_list(SiteMember, data, "POST", path)
        return []

    async def invite_site_member(self, site: str, email: str, *, role: str) -> SiteMember | None:
        path = self._corp_path(
            "sites",
            (_checked_site(site), "site name"),
            "members",
            (check_address(email), "email"),
            "invite",
        )
        data = await self._write("POST", path, {"role": corp_role(role).value})
        return self._parse(SiteMember, data, "POST", path) if isinstance(data, dict) else None

    async def remove_site_member(self, site: str, email: str) -> None:
        path = self._corp_path(
            "sites",
            (_checked_site(site), "site name"),
            "members",
            (check_address(email), "email"),
        )
        await self._write("DELETE", path)

    # -- activity ----------------------------------------------------------------------------

    async def iter_activity_pages(
        self,
        *,
        site: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        sort: str = "asc",
        limit: int = DEFAULT_ACTIVITY_PAGE_SIZE,
    ) -> AsyncIterator[Page[ActivityEvent]]:
        """Pages of the corp (or one site's) activity feed, following `next.uri` until empty."""
        if sort not in ("asc", "desc"):
            raise InvalidInputError(f"sort must be asc or desc, not {sort!r}")
        if site is None:
            path = self._corp_path("activity")
        else:
            path = self._corp_path("sites", (_checked_site(site), "site name"), "activity")
        params: dict[str, str | int] = {"sort": sort, "limit": limit, "page": 1}
        if since is not None:
            params["from"] = int(since.timestamp())
        if until is not None:
            params["until"] = int(until.timestamp())
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            body = await self._read(path, params=params, shape="list")
            events = self._parse_list(ActivityEvent, body, "GET", path)
            fresh = [e for e in events if e.id not in seen]
            if events and not fresh:
                raise UnexpectedResponseError(
                    method="GET",
                    path=path,
                    status=200,
                    message="activity page repeats only events already seen; paging would not end",
                )
            seen.update(e.id for e in fresh)
            if len(seen) > self.max_events:
                raise UnexpectedResponseError(
                    method="GET",
                    path=path,
                    status=200,
                    message=f"more than {self.max_events} activity events; paging would not end",
                )
            yield Page[ActivityEvent](items=fresh, next_uri=_next_uri(body))
            next_uri = _next_uri(body)
            if not next_uri or not events:
                return
            following = self._split_next(next_uri, "activity")
            if following == (path, {k: str(v) for k, v in params.items()}):
                raise UnexpectedResponseError(
                    method="GET",
                    path=path,
                    status=200,
                    message="the next link names the page just read; paging would not end",
                )
            path, params = following
        raise UnexpectedResponseError(
            method="GET", path=path, status=200, message=f"more than {_MAX_PAGES} activity pages"
        )

    def _split_next(self, uri: str, what: str) -> tuple[str, dict[str, str | int]]:
        """Check a `next.uri` stays on this API before following it (tokens never go elsewhere)."""
        parts = urlsplit(uri)
        if parts.scheme or parts.netloc or not parts.path.startswith(API_PREFIX + "/"):
            raise UnexpectedResponseError(
                method="GET",
                path=self._corp_path(what),
                status=200,
                message=f"next link {scrub(parts.path, self._secrets())!r} leaves the API",
            )
        try:
            check_sent_path(httpx.URL(parts.path), parts.path)
        except (InvalidInputError, httpx.InvalidURL):
            raise UnexpectedResponseError(
                method="GET",
                path=self._corp_path(what),
                status=200,
                message=f"next link {scrub(parts.path, self._secrets())!r} is not a plain path "
                "(dot segments or unencoded characters)",
            ) from None
        return parts.path, dict(parse_qsl(parts.query))


def _next_uri(body: Mapping[str, Any]) -> str | None:
    nxt = body.get("next")
    if isinstance(nxt, dict) and isinstance(nxt.get("uri"), str) and nxt["uri"]:
        return str(nxt["uri"])
    return None


def _checked_corp(corp: str) -> str:
    return check_segment(corp, "corp name")


def _checked_site(site: str) -> str:
    return check_segment(site, "site name")
