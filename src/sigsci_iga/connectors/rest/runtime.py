"""The `rest` connector: the connector contract driven by a connection package.

Requests are rendered from compiled templates into parsed JSON (never by splicing text), every
URL is checked to stay on the base URL's scheme and host, path segments from data are checked and
percent-encoded, redirects are never followed, and status codes map through the same
`http.responses` module as the native connector unless a call's own success/failure rules say
otherwise. Reads retry with backoff; writes are sent once (the worker owns their retries).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx
import stamina

from sigsci_iga.connectors.base import (
    AddToSite,
    ChangeBatch,
    ConnectionReport,
    DeleteAccount,
    Invite,
    PageResult,
    PlannedCall,
    RemoveFromSite,
    SetRole,
    Step,
    require_caller,
)
from sigsci_iga.connectors.http.bounded import DEFAULT_MAX_BODY_BYTES, send_bounded
from sigsci_iga.connectors.http.calls import USER_AGENT, CallRecord, record_call
from sigsci_iga.connectors.http.limits import RequestLimiter
from sigsci_iga.connectors.http.responses import (
    error_for_response,
    error_for_transport,
    json_too_deep,
    scrub,
    too_deep_error,
)
from sigsci_iga.connectors.http.segments import check_sent_path, encode_segment
from sigsci_iga.connectors.rest.auth import AuthState, Reply
from sigsci_iga.connectors.rest.expressions import EvaluationError
from sigsci_iga.connectors.rest.loader import (
    BoundPackage,
    CompiledField,
    CompiledRequest,
    cached_path,
)
from sigsci_iga.connectors.rest.pagination import Pager, PageState, same_origin
from sigsci_iga.connectors.rest.spec import (
    BodyMatch,
    FromAccountFieldLink,
    ImportCall,
    PerAccountCallLink,
    PerEntitlementCallLink,
    ProvisioningCall,
    ResponseRule,
    StatusRule,
    get_path,
)
from sigsci_iga.connectors.rest.taint import MASK, Secret, masked, reveal, secret_texts, tainted
from sigsci_iga.domain.model import AccountSnapshot, SiteSnapshot
from sigsci_iga.errors import (
    ApiError,
    BadRequestError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    TransientError,
    UnexpectedResponseError,
)

#: Query parameters as httpx takes them (every value here is already text).
QueryPairs = list[tuple[str, str | int | float | bool | None]]
#: Query parameters as shown: None stands for a value computed from a secret.
ShownPairs = list[tuple[str, str | None]]
_UNSUPPORTED = "NONE"
#: `validate` reads the sites list the way an import does, but never endlessly.
_MAX_VALIDATE_PAGES = 10_000


@dataclass(frozen=True)
class _Rendered:
    """One request: what is sent, how it is shown, and the secret texts it carries."""

    url: str
    query: QueryPairs
    headers: dict[str, str]
    body: Any
    shown: str
    secrets: list[str]


class NotSupportedError(ApiError):
    """The package does not describe this capability (e.g. an activity feed).

    An ApiError so that the importer's incremental mode falls back to a full import.
    """


def _mask(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of a JSON value with every secret replaced by `***`."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    return value


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body_matches(match: BodyMatch, body: Any) -> bool:
    found = get_path(body, cached_path(match.path), default=_ABSENT)
    if "exists" in match.model_fields_set:
        return (found is not _ABSENT and found is not None) == match.exists
    if found is _ABSENT:
        return False
    if "contains" in match.model_fields_set:
        return isinstance(found, str | list) and match.contains in found
    return bool(found == match.equals)


_ABSENT: Any = object()


def _rule_matches(rule: ResponseRule, status: int, body: Any) -> bool:
    if rule.statuses and status not in rule.statuses:
        return False
    return rule.body_match is None or _body_matches(rule.body_match, body)


#: A body nested deeper than `MAX_JSON_DEPTH`: refused, whatever the call's rules say.
_TOO_DEEP: Any = object()


def _parse_json(content: bytes) -> Any:
    if not content:
        return None
    try:
        value = json.loads(content)
    except RecursionError:
        return _TOO_DEEP
    except ValueError:
        return _ABSENT
    if isinstance(value, dict | list) and json_too_deep(value):
        return _TOO_DEEP
    return value


class RestConnector:
    """A target reached through a connection package; same contract as the native connector."""

    kind = "rest"
    #: No role is known to reach every site implicitly unless the planner says so.
    all_sites_roles: frozenset[str] = frozenset()

    def __init__(
        self,
        package: BoundPackage,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.package = package
        spec = package.spec.connection
        self._deadline = spec.timeout_seconds
        self._max_body_bytes = max_body_bytes
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=spec.timeout_seconds,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self._limiter = RequestLimiter(spec.rate_limit_per_minute, spec.max_concurrency)
        self._secrets: list[str] = list(package.secrets)
        self._auth = AuthState(package, self._login, self._secrets)
        #: Calls sent, by "METHOD <json path of the call>"; retries count as separate calls.
        self.calls: Counter[str] = Counter()
        #: Values captured by the last operation's calls, by call name (written-back attributes).
        self.captured: dict[str, dict[str, Any]] = {}

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
    def secrets(self) -> tuple[str, ...]:
        """Every secret known so far (parameters and tokens), for scrubbing."""
        return tuple(self._secrets)

    # -- building requests -----------------------------------------------------------------

    def _bindings(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {
            "params": self.package.param_bindings,
            "connection": self.package.connection_binding,
        }
        if extra:
            values.update(extra)
        return values

    def _render_error(self, call: CompiledRequest, exc: Exception) -> BadRequestError:
        # Data that cannot be rendered (a missing value) fails this call; nothing is sent.
        return BadRequestError(
            method=call.spec.method,
            path=call.where,
            status=None,
            message=scrub(f"cannot render the request: {exc}", self._secrets),
        )

    def _url(
        self, call: CompiledRequest, bindings: Mapping[str, Any], found: list[str]
    ) -> tuple[str, str]:
        """(the URL to send, its path as shown: a segment computed from a secret reads `***`).

        The text of every secret rendered is added to `found`.
        """
        base = self.package.base_url
        hidden_origin = False
        if call.origin is None:
            prefix = base
        elif isinstance(call.origin, str):
            prefix = call.origin
        else:
            value = call.origin.render(bindings)
            found += secret_texts(value)
            hidden_origin = tainted(value)
            prefix = str(reveal(value) or "").rstrip("/")
        parts: list[str] = []
        shown: list[str] = []
        for segment in call.segments:
            if segment.template is None:
                parts.append(segment.raw)
                shown.append(segment.raw)
                continue
            value = segment.template.render(bindings)
            found += secret_texts(value)
            plain = reveal(value)
            text = "" if plain is None else str(plain)
            try:
                parts.append(encode_segment(text, f"path segment {segment.raw!r}"))
            except InvalidInputError as exc:
                # The check quotes the value: not when it was computed from a secret.
                message = str(exc)
                if tainted(value):
                    message = f"path segment {segment.raw!r}, computed from a secret, is invalid"
                raise BadRequestError(
                    method=call.spec.method,
                    path=call.where,
                    status=None,
                    message=scrub(message, [*self._secrets, *found]),
                ) from None
            shown.append(MASK if tainted(value) else parts[-1])
        tail = "/" if call.trailing_slash else ""
        url = prefix + ("/" + "/".join(parts) if parts else "") + tail
        shown_prefix = "/" + MASK if hidden_origin else urlsplit(prefix).path
        shown_path = shown_prefix + ("/" + "/".join(shown) if shown else "") + tail
        return self._checked_url(url, call, host_shown=not hidden_origin), shown_path

    def _checked_url(self, url: str, call: CompiledRequest, *, host_shown: bool = True) -> str:
        if not same_origin(url, self.package.base_url):
            host = (urlsplit(url).netloc or "?") if host_shown else "(computed from a secret)"
            raise UnexpectedResponseError(
                method=call.spec.method,
                path=call.where,
                status=None,
                message=f"url host {host} is not the base URL's host",
            )
        return url

    def _query(
        self, call: CompiledRequest, bindings: Mapping[str, Any], found: list[str]
    ) -> tuple[QueryPairs, ShownPairs]:
        """(the query to send, the query as shown: a value computed from a secret is None)."""
        pairs: QueryPairs = []
        shown: ShownPairs = []
        for name, template in call.query:
            value = template.render(bindings)
            found += secret_texts(value)
            plain = reveal(value)
            if plain is None:
                continue
            texts = [_query_text(item) for item in (plain if isinstance(plain, list) else [plain])]
            pairs.extend((name, text) for text in texts)
            # One masked pair for a whole list: even its length could tell something.
            shown.extend([(name, None)] if tainted(value) else [(name, t) for t in texts])
        return pairs, shown

    def _headers(
        self, call: CompiledRequest, bindings: Mapping[str, Any], found: list[str]
    ) -> dict[str, str]:
        headers = {}
        for name, template in call.headers:
            value = template.render(bindings)
            found += secret_texts(value)
            plain = reveal(value)
            text = "" if plain is None else str(plain)
            if "\r" in text or "\n" in text:
                raise BadRequestError(
                    method=call.spec.method,
                    path=call.where,
                    status=None,
                    message=f"header {name} renders a line break",
                )
            headers[name] = text
        return headers

    def _shown(self, path: str, query: ShownPairs, found: Sequence[str] = ()) -> str:
        """Path and query as journals and errors show them: no host, secrets masked."""
        pairs = [
            f"{quote_plus(name)}={MASK}" if value is None else urlencode([(name, value)])
            for name, value in query
        ]
        text = path + (("&" if "?" in path else "?") + "&".join(pairs) if pairs else "")
        # Masking is by structure; scrubbing known secret text also catches a server's echo.
        return scrub(text, [*self._secrets, *found])

    def _render(
        self,
        call: CompiledRequest,
        bindings: Mapping[str, Any],
        *,
        url: str | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> _Rendered:
        """The request to send and how it is shown; `url` (a next page) replaces the call's."""
        found: list[str] = []
        if url:
            # A next link often echoes what the first page sent: learn its secrets to scrub them.
            self._url(call, bindings, found)
            self._query(call, bindings, found)
            target = self._checked_url(url, call)
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            query: QueryPairs = []
            shown_query: ShownPairs = []
        else:
            target, path = self._url(call, bindings, found)
            query, shown_query = self._query(call, bindings, found)
        extra = list((extra_query or {}).items())
        query += extra
        shown_query += extra
        headers = self._headers(call, bindings, found)
        body = call.body.render(bindings) if call.body is not None else None
        found += secret_texts(body)
        return _Rendered(
            url=target,
            query=query,
            headers=headers,
            body=reveal(body),
            shown=self._shown(path, shown_query, found),
            secrets=found,
        )

    # -- sending ---------------------------------------------------------------------------

    def _check_target(
        self, call: CompiledRequest, target: str, *, linked: bool, secrets: Sequence[str]
    ) -> None:
        """Nothing is sent unless the URL names exactly the path built (or linked to)."""
        try:
            check_sent_path(httpx.URL(target), urlsplit(target).path)
        except (InvalidInputError, httpx.InvalidURL) as exc:
            problem = UnexpectedResponseError if linked else BadRequestError
            raise problem(
                method=call.spec.method,
                path=call.where,
                status=None,
                message=scrub(str(exc), [*self._secrets, *secrets]),
            ) from None

    def _notify(self, call: CompiledRequest, record: CallRecord) -> None:
        self.calls[f"{record.method} {call.where}"] += 1
        record_call(dataclasses.replace(record, template=call.where))

    async def _login(self, call: CompiledRequest) -> Reply:
        return await self._send(call, self._bindings(), authenticated=False)

    async def _send(
        self,
        call: CompiledRequest,
        bindings: dict[str, Any],
        *,
        url: str | None = None,
        extra_query: Mapping[str, str] | None = None,
        authenticated: bool = True,
        rules: ProvisioningCall | None = None,
    ) -> Reply:
        """Send one call (re-authenticating when the profile says so); raise on failure."""
        method = call.spec.method
        try:
            if authenticated:
                token = await self._auth.access_token(call.auth)
                bindings = {**bindings, "access_token": None if token is None else Secret(token)}
            rendered = self._render(call, bindings, url=url, extra_query=extra_query)
        except (EvaluationError, InvalidInputError) as exc:
            raise self._render_error(call, exc) from None
        target, query, headers, shown = (
            rendered.url,
            rendered.query,
            rendered.headers,
            rendered.shown,
        )
        self._check_target(call, target, linked=bool(url), secrets=rendered.secrets)
        content: dict[str, Any] = {}
        if rendered.body is not None:
            if call.spec.body_format == "form":
                content["data"] = {k: _query_text(v) for k, v in dict(rendered.body).items()}
            else:
                content["json"] = rendered.body
        refreshes = 0
        while True:
            try:
                auth_headers = await self._auth.headers(call.auth) if authenticated else {}
            except (EvaluationError, InvalidInputError, ConfigError) as exc:
                # An auth template that cannot render fails this call like any other template.
                raise self._render_error(call, exc) from None
            used_token = self._auth.current(call.auth) if authenticated else None
            # What a server echoes is scrubbed of this request's secrets as well as the known ones.
            secrets = [*self._secrets, *rendered.secrets]
            started = time.monotonic()
            async with self._limiter:
                try:
                    request = self._http.build_request(
                        method,
                        target,
                        params=query or None,
                        headers={**headers, **auth_headers},
                        **content,
                    )
                    response = await send_bounded(
                        self._http,
                        request,
                        deadline=self._deadline,
                        max_body_bytes=self._max_body_bytes,
                        shown=shown,
                    )
                except ApiError as exc:
                    self._notify(
                        call,
                        CallRecord(
                            method, shown, exc.status, time.monotonic() - started, exc.message
                        ),
                    )
                    raise
                except httpx.TransportError as exc:
                    error = error_for_transport(method, shown, exc, secrets)
                    self._notify(
                        call,
                        CallRecord(method, shown, None, time.monotonic() - started, error.message),
                    )
                    raise error from None
            status = response.status_code
            refused = error_for_response(method, shown, response, secrets)
            if (
                authenticated
                and refused is not None
                and refreshes < self._auth.max_refresh(call.auth)
                and self._auth.should_refresh(call.auth, status, refused.message)
            ):
                self._notify(
                    call,
                    CallRecord(method, shown, status, time.monotonic() - started, "re-auth"),
                )
                refreshes += 1
                await self._auth.refresh(call.auth, stale=used_token)
                continue
            failure, parsed = self._classify(method, shown, response, rules, secrets)
            self._notify(
                call,
                CallRecord(
                    method,
                    shown,
                    status,
                    time.monotonic() - started,
                    failure.message if failure else None,
                ),
            )
            if failure is not None:
                raise failure
            links = {str(k): v for k, v in response.links.items() if k}
            return Reply(status, parsed, response.headers, str(response.url), links)

    @staticmethod
    def _classify(
        method: str,
        shown: str,
        response: httpx.Response,
        rules: ProvisioningCall | None,
        secrets: Sequence[str],
    ) -> tuple[ApiError | None, Any]:
        """(the error this response means or None, the parsed body)."""
        status = response.status_code
        parsed = _parse_json(response.content)
        default = error_for_response(method, shown, response, secrets)
        if parsed is _TOO_DEEP:
            # An error status says what went wrong already; a success with such a body is untrusted.
            return default or too_deep_error(method, shown, status), None
        if rules is not None:
            body = None if parsed is _ABSENT else parsed
            if rules.failure is not None and _rule_matches(rules.failure, status, body):
                return default or BadRequestError(
                    method=method,
                    path=shown,
                    status=status,
                    message="the response matches the call's failure rule",
                ), None
            if rules.success is not None:
                if _rule_matches(rules.success, status, body):
                    return None, body
                return default or UnexpectedResponseError(
                    method=method,
                    path=shown,
                    status=status,
                    message="the response does not match the call's success rule",
                ), None
            # A write that succeeded is not undone by an unreadable body: no captures, though.
            return default, body
        if default is not None:
            return default, None
        if parsed is _ABSENT:
            content_type = response.headers.get("content-type", "").split(";")[0] or "no type"
            return TransientError(
                method=method,
                path=shown,
                status=status,
                message=f"truncated or non-JSON body ({content_type}, "
                f"{len(response.content)} bytes)",
            ), None
        return None, parsed

    def _backoff(self, exc: Exception) -> bool | float:
        if isinstance(exc, ApiError) and exc.retryable:
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                return exc.retry_after
            return True
        return False

    async def _read(
        self,
        call: CompiledRequest,
        bindings: dict[str, Any],
        *,
        url: str | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> Reply:
        """A read: GETs retry with backoff and jitter; other methods are sent once."""
        if call.spec.method != "GET":
            return await self._send(call, bindings, url=url, extra_query=extra_query)
        connection = self.package.spec.connection
        async for attempt in stamina.retry_context(
            on=self._backoff,
            attempts=connection.read_attempts,
            timeout=None,
            wait_initial=connection.retry_wait_initial_seconds,
            wait_max=connection.retry_wait_max_seconds,
        ):
            with attempt:
                return await self._send(call, bindings, url=url, extra_query=extra_query)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    # -- listing ---------------------------------------------------------------------------

    def _records(self, call: CompiledRequest, body: Any, records_path: str) -> list[Any]:
        records = get_path(body, cached_path(records_path), default=_ABSENT)
        if not isinstance(records, list):
            raise UnexpectedResponseError(
                method=call.spec.method,
                path=call.where,
                status=200,
                message=f"expected a list at {records_path or 'the top'!r}",
            )
        return records

    def _pager(self, call: CompiledRequest) -> Pager:
        assert isinstance(call.spec, ImportCall)
        return Pager(call.spec.pagination, base_url=self.package.base_url, path=call.where)

    async def _page(
        self, call: CompiledRequest, bindings: dict[str, Any], records_path: str, state: PageState
    ) -> tuple[list[Any], PageState | None]:
        """One page of a listing call and the state of the next one (None: it was the last)."""
        pager = self._pager(call)
        url, query = pager.request(state)
        reply = await self._read(call, bindings, url=url, extra_query=query)
        records = self._records(call, reply.body, records_path)
        following = pager.advance(
            state, body=reply.body, records=records, links=reply.links, request_url=reply.url
        )
        return records, following

    async def _iterate(
        self, call: CompiledRequest, bindings: dict[str, Any], records_path: str
    ) -> AsyncIterator[list[Any]]:
        state: PageState | None = self._pager(call).first()
        while state is not None:
            records, state = await self._page(call, bindings, records_path, state)
            yield records

    async def _list(
        self, where: str, calls: Sequence[ImportCall], default_path: str, bindings: dict[str, Any]
    ) -> list[Any]:
        found: list[Any] = []
        for index, spec in enumerate(calls):
            call = self.package.loaded.request(f"{where}[{index}]")
            path = spec.records_path if spec.records_path is not None else default_path
            async for records in self._iterate(call, bindings, path):
                found.extend(records)
        return found

    # -- accounts --------------------------------------------------------------------------

    def _key(self, record: Any) -> str:
        value = get_path(record, cached_path(self.package.spec.import_.accounts.key_field))
        if value is None or value == "":
            raise UnexpectedResponseError(
                method="GET",
                path="import.accounts",
                status=200,
                message="an account record has no key "
                f"({self.package.spec.import_.accounts.key_field!r})",
            )
        return str(value).strip().lower()

    async def _account_records(self) -> dict[str, Any]:
        """Every account record, merged by key across calls (later calls add fields)."""
        accounts = self.package.spec.import_.accounts
        merged: dict[str, Any] = {}
        records = await self._list(
            "import.accounts.calls", accounts.calls, accounts.records_path, self._bindings()
        )
        for record in records:
            if not isinstance(record, dict):
                raise UnexpectedResponseError(
                    method="GET",
                    path="import.accounts",
                    status=200,
                    message=f"an account record is a {type(record).__name__}, not an object",
                )
            key = self._key(record)
            merged[key] = {**merged.get(key, {}), **record}
        return merged

    async def validate(self, caller: str | None) -> ConnectionReport:
        """Authenticate, read every account and every site; the caller must be among them."""
        accounts = (await self.accounts_page(None)).items
        by_email = {a.email: a for a in accounts}
        require_caller(by_email.keys(), caller, path="import.accounts")
        found = by_email.get(caller.strip().lower()) if caller is not None else None
        sites = 0
        cursor: str | None = None
        for _ in range(_MAX_VALIDATE_PAGES):
            page = await self.sites_page(cursor)
            sites += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        spec = self.package.spec
        return ConnectionReport(
            target=spec.name,
            display_name=spec.description or spec.name,
            caller=found.email if found is not None else None,
            caller_role=found.role if found is not None else None,
            sites_visible=sites,
            accounts_visible=len(accounts),
        )

    async def accounts_page(self, cursor: str | None) -> PageResult[AccountSnapshot]:
        """All accounts in one page: links may need the whole account set at once."""
        if cursor is not None:
            raise UnexpectedResponseError(
                method="GET",
                path="import.accounts",
                status=None,
                message="accounts are read in one page; no cursor expected",
            )
        records = await self._account_records()
        links = await self._links(records, all_accounts=True)
        accounts = [self._account(key, rec, links.get(key, {})) for key, rec in records.items()]
        return PageResult(accounts, None, [a.email for a in accounts])

    async def read_account(self, email: str, *, confirmed: bool = False) -> AccountSnapshot | None:
        """The package's read_account call, else (or when links need every account) the list."""
        wanted = email.strip().lower()
        accounts = self.package.spec.import_.accounts
        per_value = any(
            isinstance(x, PerEntitlementCallLink) for x in self.package.spec.import_.links
        )
        if accounts.read_account is None or per_value:
            page = await self.accounts_page(None)
            return next((a for a in page.items if a.email == wanted), None)
        call = self.package.loaded.request("import.accounts.read_account")
        account = {"email": wanted, "key": wanted, "id": wanted}
        try:
            reply = await self._read(call, self._bindings({"account": account, "id": wanted}))
        except NotFoundError:
            return None
        record = get_path(reply.body, cached_path(accounts.read_account.record_path))
        if not isinstance(record, dict):
            raise UnexpectedResponseError(
                method="GET",
                path=call.where,
                status=reply.status,
                message="expected an account object",
            )
        key = self._key(record)
        links = await self._links({key: record}, all_accounts=False)
        return self._account(key, record, links.get(key, {}))

    async def _links(
        self, records: Mapping[str, Any], *, all_accounts: bool
    ) -> dict[str, dict[str, set[str]]]:
        """Entitlement values per account key and type, from every configured link."""
        found: dict[str, dict[str, set[str]]] = {key: {} for key in records}

        def add(key: str, type_name: str, values: Iterable[Any]) -> None:
            bucket = found.setdefault(key, {}).setdefault(type_name, set())
            bucket.update(str(v) for v in values if v is not None and v != "")

        for index, link in enumerate(self.package.spec.import_.links):
            if isinstance(link, FromAccountFieldLink):
                if link.path is None:
                    continue  # from a mapped field (the role): handled with the fields
                for key, record in records.items():
                    add(
                        key, link.entitlement_type, self._listed(record, link.path, link.value_path)
                    )
            elif isinstance(link, PerAccountCallLink):
                call = self.package.loaded.request(f"import.links[{index}].call")
                for key, record in records.items():
                    account = {"key": key, "email": key, "record": record}
                    async for page in self._iterate(
                        call, self._bindings({"account": account}), link.records_path
                    ):
                        add(key, link.entitlement_type, self._listed(page, "", link.value_path))
            elif all_accounts:
                await self._members(index, link, found, add)
        return found

    async def _members(
        self,
        index: int,
        link: PerEntitlementCallLink,
        found: Mapping[str, Any],
        add: Callable[[str, str, Iterable[Any]], None],
    ) -> None:
        """One call per entitlement value; its member records name the accounts holding it."""
        call = self.package.loaded.request(f"import.links[{index}].call")
        for value in await self._values(link.entitlement_type):
            binding = {
                "entitlementValue": {
                    "value": value,
                    "id": value,
                    "entitlementID": value,
                    "type": link.entitlement_type,
                },
                "id": value,
                "entitlementID": value,
            }
            async for page in self._iterate(call, self._bindings(binding), link.records_path):
                for member in page:
                    member_key = get_path(member, cached_path(link.account_key_path))
                    if member_key is None:
                        continue
                    normalized = str(member_key).strip().lower()
                    # Members that are not accounts of this listing are not linked.
                    if normalized in found:
                        add(normalized, link.entitlement_type, [value])

    @staticmethod
    def _listed(source: Any, path: str, value_path: str | None) -> list[Any]:
        value = get_path(source, cached_path(path))
        items = value if isinstance(value, list) else ([] if value is None else [value])
        if value_path is None:
            return items
        return [get_path(item, cached_path(value_path)) for item in items]

    async def _values(self, type_name: str) -> list[str]:
        """Every value of an entitlement type (listing its calls, or its constant values)."""
        spec = self.package.spec.import_.entitlement_types[type_name]
        if spec.values:
            return list(spec.values)
        records = await self._list(
            f"import.entitlement_types.{type_name}.calls",
            spec.calls,
            spec.records_path,
            self._bindings(),
        )
        return [self._value(type_name, record)[0] for record in records]

    def _value(self, type_name: str, record: Any) -> tuple[str, str]:
        spec = self.package.spec.import_.entitlement_types[type_name]
        value = get_path(record, cached_path(spec.value_field or ""))
        if value is None or value == "":
            raise UnexpectedResponseError(
                method="GET",
                path=f"import.entitlement_types.{type_name}",
                status=200,
                message=f"a record has no value at {spec.value_field!r}",
            )
        display = (
            get_path(record, cached_path(spec.display_name_field))
            if spec.display_name_field
            else None
        )
        return str(value), "" if display is None else str(display)

    def _account(
        self, key: str, record: Mapping[str, Any], links: Mapping[str, set[str]]
    ) -> AccountSnapshot:
        spec = self.package.spec.import_
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for compiled in self.package.loaded.fields:
            try:
                value = self._field(compiled, record)
            except (ValueError, TypeError, EvaluationError) as exc:
                raise UnexpectedResponseError(
                    method="GET",
                    path="import.accounts",
                    status=200,
                    message=scrub(f"account {key}: {compiled.target}: {exc}", self._secrets),
                ) from None
            if value is None and compiled.spec.omit_if_null:
                continue
            if compiled.target.startswith("extra."):
                extra[compiled.target[6:]] = value
            else:
                values[compiled.target] = value
        email = str(values.get("email") or "").strip().lower()
        if not email:
            raise UnexpectedResponseError(
                method="GET",
                path="import.accounts",
                status=200,
                message=scrub(f"account {key}: no email", self._secrets),
            )
        role = values.get("role")
        role_type = spec.role_entitlement_type
        if "role" not in values and role_type is not None and links.get(role_type):
            linked = sorted(links[role_type])
            if len(linked) > 1:
                raise UnexpectedResponseError(
                    method="GET",
                    path="import.accounts",
                    status=200,
                    message=scrub(
                        f"account {key}: more than one {role_type}: {', '.join(linked)}",
                        self._secrets,
                    ),
                )
            role = linked[0]
        sites = links.get(spec.site_entitlement_type or "", set())
        return AccountSnapshot(
            email=email,
            name="" if values.get("name") is None else str(values["name"]),
            role="" if role is None else str(role),
            status=self._status(key, record, spec.accounts.status),
            mfa_enabled=bool(values.get("mfa_enabled") or False),
            created=values.get("created"),
            sites=frozenset(sites),
            extra=extra,
        )

    def _field(self, compiled: CompiledField, record: Mapping[str, Any]) -> Any:
        spec = compiled.spec
        if compiled.path is not None:
            value = get_path(record, compiled.path)
        elif compiled.expression is not None:
            expression = compiled.expression
            value = expression.evaluate({"record": record, "params": self.package.param_bindings})
            if tainted(value):
                # The repository and every report would show it: secrets are never imported.
                raise EvaluationError(
                    where=expression.where,
                    text=expression.source,
                    reason="the value is computed from a secret, and secrets are never imported",
                )
        else:
            value = spec.constant
        if value is None:
            value = spec.default
        if spec.value_map and isinstance(value, str | int) and not isinstance(value, bool):
            lowered = {str(k).lower(): v for k, v in spec.value_map.items()}
            value = lowered.get(str(value).strip().lower(), value)
        if value is None:
            return [] if spec.type == "list" else None
        return _convert(value, spec.type, spec.date_format)

    def _status(self, key: str, record: Mapping[str, Any], rule: StatusRule) -> str:
        value = get_path(record, cached_path(rule.path))

        def norm(item: Any) -> str:
            text = "" if item is None else str(item).strip()
            return text if rule.case_sensitive else text.lower()

        if norm(value) in {norm(v) for v in rule.active_values}:
            return "active"
        if rule.pending_values is None or norm(value) in {norm(v) for v in rule.pending_values}:
            return "pending"
        raise UnexpectedResponseError(
            method="GET",
            path="import.accounts",
            status=200,
            message=scrub(
                f"account {key}: status {value!r} is neither active nor pending", self._secrets
            ),
        )

    # -- sites -----------------------------------------------------------------------------

    async def sites_page(self, cursor: str | None) -> PageResult[SiteSnapshot]:
        """One upstream page of the site entitlement type; the cursor carries the paging state."""
        type_name = self.package.spec.import_.site_entitlement_type
        if type_name is None:
            return PageResult([], None, [])
        spec = self.package.spec.import_.entitlement_types[type_name]
        where = f"import.entitlement_types.{type_name}.calls"
        if cursor is None:
            index, state = 0, None
        else:
            data = json.loads(cursor)
            index, state = int(data["call"]), PageState.from_json(data["state"])
        call = self.package.loaded.request(f"{where}[{index}]")
        call_spec = spec.calls[index]
        path = call_spec.records_path if call_spec.records_path is not None else spec.records_path
        records, following = await self._page(
            call, self._bindings(), path, state or self._pager(call).first()
        )
        sites = [SiteSnapshot(*self._value(type_name, record)) for record in records]
        next_cursor: str | None = None
        if following is not None:
            next_cursor = json.dumps({"call": index, "state": following.to_json()})
        elif index + 1 < len(spec.calls):
            next_cursor = json.dumps(
                {
                    "call": index + 1,
                    "state": self._pager(self.package.loaded.request(f"{where}[{index + 1}]"))
                    .first()
                    .to_json(),
                }
            )
        return PageResult(sites, next_cursor, [s.name for s in sites])

    async def read_site(self, name: str) -> SiteSnapshot | None:
        type_name = self.package.spec.import_.site_entitlement_type
        if type_name is None:
            return None
        spec = self.package.spec.import_.entitlement_types[type_name]
        if spec.read is None:
            cursor: str | None = None
            while True:
                page = await self.sites_page(cursor)
                found = next((s for s in page.items if s.name == name), None)
                if found is not None or page.next_cursor is None:
                    return found
                cursor = page.next_cursor
        call = self.package.loaded.request(f"import.entitlement_types.{type_name}.read")
        value = {"value": name, "id": name, "entitlementID": name, "type": type_name}
        bindings = self._bindings({"entitlementValue": value, "id": name, "entitlementID": name})
        try:
            reply = await self._read(call, bindings)
        except NotFoundError:
            return None
        record = get_path(reply.body, cached_path(spec.read.record_path))
        return SiteSnapshot(*self._value(type_name, record))

    async def changes_since(self, since: datetime, *, site: str | None = None) -> ChangeBatch:
        raise NotSupportedError(
            method="GET",
            path="changes",
            status=None,
            message=f"package {self.package.name!r} describes no activity feed",
        )

    # -- provisioning ------------------------------------------------------------------------

    def _operations(self, step: Step) -> list[tuple[str, dict[str, Any]]]:
        """(JSON path of the operation, bindings) for each operation run the step needs."""
        spec = self.package.spec
        prov = spec.provisioning
        site_type = spec.import_.site_entitlement_type or ""
        role_type = spec.import_.role_entitlement_type or ""

        def account(email: str, **more: Any) -> dict[str, Any]:
            return {"email": email, "id": email, "accountID": email, "name": email, **more}

        def value(type_name: str, item: str) -> dict[str, Any]:
            entitlement = {"value": item, "id": item, "entitlementID": item, "type": type_name}
            return {"entitlementValue": entitlement, "entitlementID": item}

        match step:
            case Invite(email=email, role=role, sites=sites):
                who = account(email, role=role, sites=sorted(sites))
                return [("provisioning.create_account", {"account": who, "user": who})]
            case SetRole(email=email, role=role):
                who = account(email, role=role)
                binding = {"account": who, "user": who}
                if prov.update_account is not None:
                    return [("provisioning.update_account", binding)]
                return [
                    (f"provisioning.add_access.{role_type}", {**binding, **value(role_type, role)})
                ]
            case AddToSite(site=site, emails=emails):
                return [
                    (
                        f"provisioning.add_access.{site_type}",
                        {"account": account(e), "user": account(e), **value(site_type, site)},
                    )
                    for e in sorted(emails)
                ]
            case RemoveFromSite(site=site, email=email):
                who = account(email)
                return [
                    (
                        f"provisioning.remove_access.{site_type}",
                        {"account": who, "user": who, **value(site_type, site)},
                    )
                ]
            case DeleteAccount(email=email):
                who = account(email)
                return [("provisioning.remove_account", {"account": who, "user": who})]
        raise AssertionError(f"unknown step {step!r}")  # pragma: no cover

    def _operation_calls(self, where: str) -> list[CompiledRequest] | None:
        calls = []
        index = 0
        while f"{where}[{index}]" in self.package.loaded.requests:
            calls.append(self.package.loaded.request(f"{where}[{index}]"))
            index += 1
        return calls or None

    def describe_all(self, step: Step) -> tuple[PlannedCall, ...]:
        """Every call `execute(step)` would send, secrets masked (`***`).

        A value only an earlier call's response can give shows the call's template text instead,
        and a call whose `when` depends on such a response, or on a secret, is listed as if it
        will run.
        """
        planned: list[PlannedCall] = []
        for where, extra in self._operations(step):
            calls = self._operation_calls(where)
            if calls is None:
                planned.append(PlannedCall(_UNSUPPORTED, f"({where} is not in the package)"))
                continue
            bindings = self._bindings({**extra, "response": {}})
            for call in calls:
                if call.when is not None:
                    try:
                        decided = call.when.evaluate(bindings)
                        # Listing a call or not would tell whether a secret passes the condition.
                        if not tainted(decided) and not decided:
                            continue
                    except EvaluationError:
                        pass
                planned.append(self._describe_call(call, bindings))
        return tuple(planned)

    def describe(self, step: Step) -> PlannedCall:
        """The first call of the step (see `describe_all` for every call)."""
        calls = self.describe_all(step)
        return calls[0] if calls else PlannedCall(_UNSUPPORTED, "(nothing to send)")

    def _describe_call(self, call: CompiledRequest, bindings: dict[str, Any]) -> PlannedCall:
        # No token is fetched to describe a call; the mark makes whatever uses it read `***`.
        bindings = {**bindings, "access_token": Secret(MASK)}
        found: list[str] = []
        try:
            _, path = self._url(call, bindings, found)
            _, query = self._query(call, bindings, found)
            shown = self._shown(path, query, found)
        except (EvaluationError, InvalidInputError, ApiError):
            shown = scrub(call.spec.url, self._secrets)
        body: Any = None
        if call.body is not None:
            try:
                rendered = call.body.render(bindings)
                body = _mask(masked(rendered), [*self._secrets, *secret_texts(rendered)])
            except (EvaluationError, InvalidInputError):
                body = _mask(call.spec.body, self._secrets)
        return PlannedCall(call.spec.method, shown, body)

    async def execute(self, step: Step) -> None:
        """Run every operation the step needs, calls in order; the first failure raises."""
        for where, extra in self._operations(step):
            calls = self._operation_calls(where)
            if calls is None:
                raise BadRequestError(
                    method=_UNSUPPORTED,
                    path=where,
                    status=None,
                    message=f"package {self.package.name!r} has no {where}",
                )
            await self._run_operation(calls, extra)

    async def _run_operation(self, calls: Sequence[CompiledRequest], extra: dict[str, Any]) -> None:
        responses: dict[str, Any] = {}
        bindings = self._bindings({**extra, "response": responses})
        self.captured = {}
        for call in calls:
            spec = call.spec
            assert isinstance(spec, ProvisioningCall)
            if call.when is not None:
                try:
                    run = reveal(call.when.evaluate(bindings))
                except EvaluationError as exc:
                    raise self._render_error(call, exc) from None
                if not run:
                    continue
            reply = await self._send(call, bindings, rules=spec)
            captures = {
                name: get_path(reply.body, cached_path(path)) for name, path in spec.capture.items()
            }
            responses[spec.name] = {"status": reply.status, "body": reply.body, **captures}
            if captures:
                self.captured[spec.name] = captures


def _convert(value: Any, kind: str, date_format: str | None) -> Any:
    """Convert a source value to a field type; raises ValueError naming the problem."""
    if kind == "json":
        return value
    if kind == "list":
        return list(value) if isinstance(value, list) else [value]
    if isinstance(value, dict | list):
        raise TypeError(f"expected a {kind}, got a {type(value).__name__}")
    if kind == "string":
        return value if isinstance(value, str) else _query_text(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    return _datetime(value, date_format)


def _datetime(value: Any, date_format: str | None) -> datetime:
    if date_format in ("epoch", "epoch_ms"):
        seconds = float(value) / (1000 if date_format == "epoch_ms" else 1)
        return datetime.fromtimestamp(seconds, UTC)
    text = str(value).strip()
    parsed = (
        datetime.strptime(text, date_format)
        if date_format
        else datetime.fromisoformat(text.replace("Z", "+00:00"))
    )
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
