"""The simulated Signal Sciences API v0 as a FastAPI app, plus the loopback-only `/_sim` admin API.

Choices where the reference is uncertain (each one a config switch where it matters):

* Unknown corp in the path: 404 `{"message": "Corp not found"}` (checked after authentication).
* Unknown user or site member: 400 `{"message": "ID not found"}`; `not_found_status=404` switches.
  Unknown site: always 400 `{"message": "Site not found"}` (the one case a staff script keys on).
* Emails are stored as given; a path's email must match that spelling exactly unless
  `email_matching="insensitive"`. Two users never differ only in case.
* Pending invitees carry `status: config.pending_status` ("pending" by default; "invited" possible).
* Invite of an existing email: 400 `User already exists`. A non-owner invited with no sites is
  accepted: only the UI is known to require one, and the connector should not depend on a refusal.
  Invites ignore `apiUser` unless `invite_api_user`.
* PATCH and PUT on a user behave alike; `memberships.data`, when present, replaces the site set;
  `name` is ignored unless `update_renames`.
* Sites list: `{"data": [...]}` only, unless `sites_total_count` / `sites_next_links`; default
  limit 10; at most `site_page_max_limit` items a page, silently.
* Removing an owner from one site: 400 `Owners are members of every site`; removing a non-member:
  400 `User is not a member of this site`. The last owner cannot be demoted or deleted.
* Permissions: owners may do everything; admins may manage users on their own sites and cannot
  grant `owner`; users and observers get 403 `{"message": "Forbidden"}` on writes. Non-owners see
  only their sites and the users who share one (plus owners and themselves).
* Activity: the corp feed holds every event except membership events, which land on the corp
  feed, the site's feed or both (`membership_events`, default both); other site events are on both.
  Default sort is `desc`; default limit 100, larger limits are clamped to 1000.
* API tokens expire `token_expiry_seconds` after their creation (sim start for the demo tokens);
  an expired token gets the same 401 as a wrong one.
* A 524 fault answers JSON `{"message": "A timeout occurred"}` like every other error here.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sigsci_iga.sim.config import API_PREFIX, SimConfig, apply_switches, switch_values
from sigsci_iga.sim.faults import FaultController, FaultRule
from sigsci_iga.sim.middleware import SimMiddleware
from sigsci_iga.sim.records import UserRecord, rfc3339
from sigsci_iga.sim.runtime import RouteTemplate, SimRuntime
from sigsci_iga.sim.state import NOT_FOUND_MESSAGE, SimError, SimState

JSON_MEDIA_TYPE = "application/json; charset=utf-8"
UNAUTHORIZED = "Unauthorized: You must be logged in to call this API"


def json_response(payload: Any, status: int = 200) -> Response:
    """A compact JSON response with the API's content type."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":"))
    return Response(content=body, status_code=status, media_type=JSON_MEDIA_TYPE)


def _runtime(request: Request) -> SimRuntime:
    runtime: SimRuntime = request.app.state.sim
    return runtime


def _state(request: Request) -> SimState:
    return _runtime(request).state


def _caller(request: Request, corp: str | None = None) -> UserRecord:
    """The authenticated user (access token or bearer session); checks the corp name too."""
    state = _state(request)
    headers = request.headers
    user: UserRecord | None = None
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        user = state.authenticate_session(authorization[7:].strip())
    else:
        email = headers.get("x-api-user")
        token = headers.get("x-api-token")
        if email and token:
            user = state.authenticate_token(email, token)
    if user is None:
        raise SimError(401, UNAUTHORIZED)
    if corp is not None and corp != state.config.corp:
        raise SimError(404, "Corp not found")
    return user


def _require_manager(caller: UserRecord, sites: set[str], role: str | None = None) -> None:
    """Owners manage everything; admins manage their own sites but cannot grant ownership."""
    if caller.role == "owner":
        return
    if caller.role == "admin" and sites <= caller.sites and role != "owner":
        return
    raise SimError(403, "Forbidden")


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object body; an empty body reads as {}."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise SimError(400, "Invalid JSON body") from exc
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    return body


def _membership_sites(value: Any) -> list[str]:
    """Site names from `{"data": [{"site": {"name": ...}}]}`, also tolerating bare lists/strings."""
    if value is None:
        return []
    items = value.get("data", []) if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise SimError(400, "Invalid memberships")
    names: list[str] = []
    for item in items:
        site = item.get("site") if isinstance(item, dict) else item
        name = site.get("name") if isinstance(site, dict) else site
        if not isinstance(name, str) or not name:
            raise SimError(400, "Invalid memberships: each item needs site.name")
        names.append(name)
    return names


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SimError(400, f"Invalid {name}: {raw}") from exc


def _paging(request: Request, default_limit: int, max_limit: int) -> tuple[int, int]:
    limit = _int_param(request, "limit", default_limit) or default_limit
    page = _int_param(request, "page", 1) or 1
    if limit < 1 or page < 1:
        raise SimError(400, "limit and page must be positive")
    return min(limit, max_limit), page


def _next_uri(request: Request, page: int, limit: int, has_more: bool) -> str:
    if not has_more:
        return ""
    params = dict(request.query_params)
    params.update(limit=str(limit), page=str(page + 1))
    return f"{request.url.path}?{urlencode(params)}"


def _expand_memberships(request: Request) -> bool:
    values = request.query_params.getlist("expand")
    return any("memberships" in v.split(",") for v in values)


def _visible_user(request: Request, caller: UserRecord, email: str) -> UserRecord:
    state = _state(request)
    user = state.lookup(email)
    visible = state.visible_emails(caller)
    if user is None or (visible is not None and user.email not in visible):
        raise SimError(state.config.not_found_status, NOT_FOUND_MESSAGE)
    return user


def _visible_site(request: Request, caller: UserRecord, site: str) -> str:
    state = _state(request)
    if site not in state.sites or not state.can_see_site(caller, site):
        raise SimError(400, "Site not found")
    return site


def _flat_member(user: UserRecord) -> dict[str, str]:
    return {"email": user.email, "role": user.role, "status": user.status}


def _api_router() -> APIRouter:  # noqa: PLR0915  # one flat list of endpoints reads best
    router = APIRouter(prefix=API_PREFIX)

    @router.post("/auth")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        email = (form.get("email") or [""])[0]
        password = (form.get("password") or [""])[0]
        # A login that fails for any reason is a 401, as the reference records for a bad password.
        token = _state(request).login(email, password) if email and password else None
        if token is None:
            raise SimError(401, "Login failed")
        return json_response({"token": token})

    @router.get("/auth/logout")
    async def logout(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            _state(request).logout(authorization[7:].strip())
        return Response(status_code=302, headers={"location": "/login"})

    @router.get("/corps")
    async def list_corps(request: Request) -> Response:
        _caller(request)
        return json_response({"data": [_state(request).corp_payload()]})

    @router.get("/corps/{corp}")
    async def get_corp(request: Request, corp: str) -> Response:
        _caller(request, corp)
        return json_response(_state(request).corp_payload())

    @router.get("/corps/{corp}/users")
    async def list_users(request: Request, corp: str) -> Response:
        caller = _caller(request, corp)
        body = _state(request).users_list_bytes(expand=_expand_memberships(request), caller=caller)
        return json_response(body)

    @router.get("/corps/{corp}/users/{email}")
    async def get_user(request: Request, corp: str, email: str) -> Response:
        caller = _caller(request, corp)
        user = _visible_user(request, caller, email)
        payload = _state(request).user_payload(user, expand=_expand_memberships(request))
        return json_response(payload)

    @router.get("/corps/{corp}/users/{email}/memberships")
    async def get_memberships(request: Request, corp: str, email: str) -> Response:
        caller = _caller(request, corp)
        user = _visible_user(request, caller, email)
        return json_response({"data": _state(request).membership_payloads(user)})

    @router.post("/corps/{corp}/users/{email}/invite")
    async def invite_user(request: Request, corp: str, email: str) -> Response:
        caller = _caller(request, corp)
        body = await _json_body(request)
        if "role" not in body:
            raise SimError(400, "role is required")
        sites = _membership_sites(body.get("memberships"))
        _require_manager(caller, set(sites), str(body["role"]).lower())
        state = _state(request)
        api_user = state.config.invite_api_user and body.get("apiUser") is True
        user = state.invite_user(email, body["role"], sites, actor=caller.email, api_user=api_user)
        return json_response(state.user_payload(user, expand=False))

    @router.api_route("/corps/{corp}/users/{email}", methods=["PATCH", "PUT"])
    async def update_user(request: Request, corp: str, email: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        user = _visible_user(request, caller, email)
        body = await _json_body(request)
        sites = _membership_sites(body["memberships"]) if "memberships" in body else None
        touched = set(user.sites) | set(sites or ())
        role = body.get("role")
        _require_manager(caller, touched, str(role).lower() if role is not None else None)
        api_user = body.get("apiUser")
        name = body.get("name") if state.config.update_renames else None
        updated = state.update_user(
            user.email,
            role=role,
            sites=sites,
            api_user=api_user if isinstance(api_user, bool) else None,
            name=name if isinstance(name, str) and name else None,
            actor=caller.email,
        )
        return json_response(state.user_payload(updated, expand=False))

    @router.delete("/corps/{corp}/users/{email}")
    async def delete_user(request: Request, corp: str, email: str) -> Response:
        caller = _caller(request, corp)
        user = _visible_user(request, caller, email)
        _require_manager(caller, set(user.sites), user.role)
        _state(request).remove_user(user.email, actor=caller.email)
        return Response(status_code=204)

    @router.get("/corps/{corp}/sites")
    async def list_sites(request: Request, corp: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        config = state.config
        limit, page = _paging(request, config.site_page_default_limit, config.site_page_max_limit)
        with state.lock:
            names = [n for n in state.sites if state.can_see_site(caller, n)]
            start = (page - 1) * limit
            data = [state.site_payload(state.sites[n]) for n in names[start : start + limit]]
        payload: dict[str, Any] = {"data": data}
        if config.sites_total_count:
            payload["totalCount"] = len(names)
        if config.sites_next_links:
            payload["next"] = {"uri": _next_uri(request, page, limit, start + limit < len(names))}
        return json_response(payload)

    @router.post("/corps/{corp}/sites")
    async def create_site(request: Request, corp: str) -> Response:
        caller = _caller(request, corp)
        if caller.role != "owner":
            raise SimError(403, "Forbidden")
        body = await _json_body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise SimError(400, "name is required")
        state = _state(request)
        site = state.add_site(
            name,
            body.get("displayName") or None,
            agent_level=str(body.get("agentLevel") or "log"),
            actor=caller.email,
        )
        return json_response(state.site_payload(site))

    @router.get("/corps/{corp}/sites/{site}")
    async def get_site(request: Request, corp: str, site: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        return json_response(state.site_payload(state.sites[name]))

    @router.delete("/corps/{corp}/sites/{site}")
    async def delete_site(request: Request, corp: str, site: str) -> Response:
        caller = _caller(request, corp)
        name = _visible_site(request, caller, site)
        if caller.role != "owner":
            raise SimError(403, "Forbidden")
        _state(request).remove_site(name, actor=caller.email)
        return Response(status_code=204)

    @router.get("/corps/{corp}/sites/{site}/members")
    async def list_members(request: Request, corp: str, site: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        with state.lock:
            data = [state.member_payload(state.users[e]) for e in state.site_member_emails(name)]
        return json_response({"data": data})

    @router.post("/corps/{corp}/sites/{site}/members")
    async def add_members(request: Request, corp: str, site: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        _require_manager(caller, {name})
        body = await _json_body(request)
        emails = body.get("members")
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise SimError(400, "members must be a list of emails")
        with state.lock:
            users = []
            for email in emails:
                user = state.lookup(email)
                if user is None:
                    raise SimError(400, f"{NOT_FOUND_MESSAGE}: {email}")
                users.append(user)
            for user in users:
                state.add_membership(user.email, name, actor=caller.email)
            return json_response({"data": [state.member_payload(u) for u in users]})

    @router.get("/corps/{corp}/sites/{site}/members/{email}")
    async def get_member(request: Request, corp: str, site: str, email: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        user = state.lookup(email)
        if user is None or (user.role != "owner" and name not in user.sites):
            raise SimError(state.config.not_found_status, NOT_FOUND_MESSAGE)
        return json_response(state.member_payload(user))

    @router.patch("/corps/{corp}/sites/{site}/members/{email}")
    async def add_member(request: Request, corp: str, site: str, email: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        body = await _json_body(request)
        if "role" in body:
            raise SimError(
                400,
                "Site member roles can no longer be updated; update the corp user's role",
            )
        _require_manager(caller, {name})
        user = state.lookup(email)
        if user is None:
            raise SimError(state.config.not_found_status, NOT_FOUND_MESSAGE)
        state.add_membership(user.email, name, actor=caller.email)
        return json_response(_flat_member(user))

    @router.delete("/corps/{corp}/sites/{site}/members/{email}")
    async def remove_member(request: Request, corp: str, site: str, email: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        _require_manager(caller, {name})
        user = state.lookup(email)
        if user is None:
            raise SimError(state.config.not_found_status, NOT_FOUND_MESSAGE)
        state.remove_membership(user.email, name, actor=caller.email)
        return Response(status_code=204)

    @router.post("/corps/{corp}/sites/{site}/members/{email}/invite")
    async def invite_member(request: Request, corp: str, site: str, email: str) -> Response:
        caller = _caller(request, corp)
        state = _state(request)
        name = _visible_site(request, caller, site)
        body = await _json_body(request)
        role = body.get("role", "user")
        _require_manager(caller, {name}, str(role).lower())
        user = state.invite_user(email, role, [name], actor=caller.email)
        return json_response(_flat_member(user))

    def _activity(request: Request, site: str | None) -> Response:
        state = _state(request)
        config = state.config
        limit, page = _paging(
            request, config.activity_page_default_limit, config.activity_page_max_limit
        )
        sort = request.query_params.get("sort", "desc").lower()
        if sort not in ("asc", "desc"):
            raise SimError(400, f"Invalid sort: {sort}")
        total, events = state.activity(
            site=site,
            since=_int_param(request, "from", None),
            until=_int_param(request, "until", None),
            descending=sort == "desc",
            limit=limit,
            page=page,
        )
        return json_response(
            {
                "totalCount": total,
                "next": {"uri": _next_uri(request, page, limit, page * limit < total)},
                "data": [e.to_dict() for e in events],
            }
        )

    @router.get("/corps/{corp}/activity")
    async def corp_activity(request: Request, corp: str) -> Response:
        _caller(request, corp)
        return _activity(request, None)

    @router.get("/corps/{corp}/sites/{site}/activity")
    async def site_activity(request: Request, corp: str, site: str) -> Response:
        caller = _caller(request, corp)
        return _activity(request, _visible_site(request, caller, site))

    return router


def _admin_router() -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.get("/health")
    async def health(request: Request) -> Response:
        state = _state(request)
        with state.lock:
            return json_response(
                {
                    "status": "ok",
                    "corp": state.config.corp,
                    "users": len(state.users),
                    "sites": len(state.sites),
                    "memberships": state.membership_count(),
                    "events": len(state.events),
                    "version": state.version,
                    "now": rfc3339(state.now()),
                }
            )

    @router.get("/faults")
    async def get_faults(request: Request) -> Response:
        return json_response(_runtime(request).faults.snapshot())

    @router.put("/faults")
    async def put_faults(request: Request) -> Response:
        try:
            raw = json.loads(await request.body() or b"[]")
        except ValueError as exc:
            raise SimError(400, "Invalid JSON body") from exc
        items = raw.get("faults", []) if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise SimError(400, "expected a list of fault rules")
        _runtime(request).faults.replace([_rule(item) for item in items])
        return json_response(_runtime(request).faults.snapshot())

    @router.post("/faults")
    async def add_fault(request: Request) -> Response:
        _runtime(request).faults.add(_rule(await _json_body(request)))
        return json_response(_runtime(request).faults.snapshot())

    @router.delete("/faults")
    async def clear_faults(request: Request) -> Response:
        _runtime(request).faults.clear()
        return json_response(_runtime(request).faults.snapshot())

    @router.get("/calls")
    async def get_calls(request: Request) -> Response:
        calls = _runtime(request).calls
        return json_response({"calls": calls.snapshot(), "total": calls.total()})

    @router.delete("/calls")
    async def reset_calls(request: Request) -> Response:
        _runtime(request).calls.reset()
        return json_response({"calls": {}, "total": 0})

    @router.get("/users/{email}")
    async def raw_user(request: Request, email: str) -> Response:
        user = _state(request).get_user(email)
        if user is None:
            raise SimError(404, "User not found")
        return json_response(user.to_dict())

    @router.post("/users/{email}/register")
    async def register_user(request: Request, email: str) -> Response:
        user = _state(request).register(email)
        return json_response(user.to_dict())

    @router.get("/settings")
    async def get_settings(request: Request) -> Response:
        return json_response(switch_values(_state(request).config))

    @router.patch("/settings")
    async def change_settings(request: Request) -> Response:
        runtime = _runtime(request)
        try:
            apply_switches(runtime.config, await _json_body(request))
        except ValueError as exc:
            raise SimError(400, f"Invalid settings: {exc}") from exc
        assert runtime.limiter is not None  # set in SimRuntime.__post_init__
        runtime.limiter.per_minute = runtime.config.rate_limit_per_minute
        return json_response(switch_values(runtime.config))

    @router.get("/clock")
    async def get_clock(request: Request) -> Response:
        return json_response({"now": rfc3339(_state(request).now())})

    @router.put("/clock")
    async def shift_clock(request: Request) -> Response:
        body = await _json_body(request)
        seconds = body.get("advance", 0)
        if not isinstance(seconds, int | float):
            raise SimError(400, "advance must be a number of seconds")
        return json_response({"now": rfc3339(_state(request).advance_clock(seconds))})

    return router


def _rule(item: Any) -> FaultRule:
    try:
        return FaultRule.from_dict(item)
    except ValueError as exc:
        raise SimError(400, f"Invalid fault rule: {exc}") from exc


async def _sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)  # registered for SimError only
    return json_response({"message": exc.message}, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # registered for HTTPException only
    if exc.status_code == 204:
        return Response(status_code=204)
    return json_response({"message": str(exc.detail)}, exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> Response:
    return json_response({"message": f"Invalid request: {exc}"}, 400)


def create_app(config: SimConfig | None = None, state: SimState | None = None) -> FastAPI:
    """A fresh simulator app; `app.state.sim` is its SimRuntime (state, faults, calls)."""
    if state is None:
        state = SimState(config)
    elif config is not None and config != state.config:
        raise ValueError("pass either a config or a state built from that same config")
    config = state.config
    runtime = SimRuntime(
        config=config,
        state=state,
        faults=FaultController([_copy(r) for r in config.faults], seed=config.seed),
    )
    app = FastAPI(
        title="Signal Sciences API simulator",
        openapi_url="/_sim/openapi.json",
        docs_url="/_sim/docs",
        redoc_url=None,
    )
    app.state.sim = runtime
    api = _api_router()
    app.include_router(api)
    app.include_router(_admin_router())
    app.add_exception_handler(SimError, _sim_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(SimMiddleware, runtime=runtime)
    runtime.routes = [
        RouteTemplate(
            pattern=route.path_regex,
            methods=frozenset(route.methods or ()),
            template=route.path.removeprefix(API_PREFIX),
        )
        # The router's own routes carry full paths; the app may wrap included routers lazily.
        for route in api.routes
        if isinstance(route, APIRoute)
    ]
    return app


def _copy(rule: FaultRule) -> FaultRule:
    # Rules count down their uses, so each app gets its own copies of the configured ones.
    return FaultRule.from_dict(rule.to_dict())
