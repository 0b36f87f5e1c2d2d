"""The HTTP API under /api/v1: every route parses, calls one use case, and answers."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic_core import to_json

from sigsci_iga import app
from sigsci_iga.app.access import Permission
from sigsci_iga.domain.plan import plan_json
from sigsci_iga.domain.tasks import TaskState
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.service import schemas
from sigsci_iga.service.metrics import CONTENT_TYPE
from sigsci_iga.service.problems import Problem
from sigsci_iga.service.runtime import ServiceRuntime, runtime_of

#: Pages of accounts are at most this long; the default is smaller.
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Plan items returned with a run; the counts always cover all of them.
PLAN_ITEMS = 1000

#: Shown in the OpenAPI document; the token itself is checked by `app.authenticate`.
_BEARER = HTTPBearer(auto_error=False, description="A service token: sigsci-iga tokens create")
#: Every API route may answer with these, as RFC 9457 problem details.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for status, text in (
        (400, "The request could not be read."),
        (401, "No valid service token."),
        (403, "The token's role does not allow this."),
        (404, "Not found."),
        (409, "The state does not allow this now."),
        (422, "The request is not valid."),
        (429, "The target throttled the call; retry after Retry-After seconds."),
        (500, "An internal error."),
        (502, "The governed target failed or cannot be trusted."),
        (503, "The database or the target is unavailable; retry after Retry-After seconds."),
        (507, "The database has no space left."),
    )
}


def allowed(permission: Permission) -> Any:
    """A route dependency: authenticate the caller, then require `permission` of its role."""

    def check(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> app.Principal:
        # The raw header: `authenticate` parses it itself, the same way for every interface.
        principal = app.authenticate(runtime_of(request).ctx, request.headers.get("authorization"))
        app.authorize(principal, permission)
        request.state.principal = principal
        return principal

    return Depends(check)


READ = [allowed(Permission.READ)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Send the same key again to get the first answer again, without a second "
        "effect; the same key with another body is 422, while the first is running 409.",
    ),
]
M = TypeVar("M", bound=BaseModel)


def _idempotent(
    request: Request, key: str | None, body: BaseModel | None, status: int, produce: Callable[[], M]
) -> M | JSONResponse:
    """Run `produce` once per idempotency key; a replay gets the first answer."""
    if key is None:
        return produce()
    ctx = runtime_of(request).ctx
    principal: app.Principal = request.state.principal
    scope = f"{principal.name} {request.method} {request.url.path}"
    raw = body.model_dump_json().encode("utf-8") if body is not None else b""
    replay = app.claim_key(ctx, scope, key, raw)
    if replay is not None:
        return JSONResponse(
            replay.response, status_code=replay.status, headers={"Idempotent-Replayed": "true"}
        )
    try:
        result = produce()
    except BaseException:
        app.forget_key(ctx, scope, key)
        raise
    app.complete_key(ctx, scope, key, status, result.model_dump(mode="json"))
    return result


EndpointQuery = Annotated[
    str | None,
    Query(max_length=100, description="Endpoint name (default: the configured corp)."),
]


def _endpoint(info: app.EndpointInfo) -> schemas.Endpoint:
    return schemas.Endpoint(
        name=info.name,
        connector=info.connector,
        api_url=info.api_url,
        corp=info.corp,
        email=info.email,
        credentials=info.credentials,
        checkpoint_at=info.checkpoint.last_activity,
        version=info.version,
        created_at=info.created_at,
    )


def _cursor(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode("utf-8")).decode("ascii").rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInputError("cursor is not one this API returned") from None


def build_router() -> APIRouter:
    """Every /api/v1 route; each answers errors as problem details (`ERRORS`)."""
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    for add in (_inventory, _imports, _provisioning, _journal, _schedules, _tokens):
        add(router)
    return router


def _inventory(router: APIRouter) -> None:

    @router.get(
        "/endpoints", response_model=list[schemas.Endpoint], tags=["inventory"], dependencies=READ
    )
    def list_endpoints(request: Request) -> list[schemas.Endpoint]:
        ctx = runtime_of(request).ctx
        return [_endpoint(e) for e in app.list_endpoints(ctx)]

    @router.get(
        "/endpoints/{name}", response_model=schemas.Endpoint, tags=["inventory"], dependencies=READ
    )
    def get_endpoint(request: Request, name: str) -> schemas.Endpoint:
        return _endpoint(app.get_endpoint(runtime_of(request).ctx, name))

    @router.get(
        "/accounts", response_model=schemas.AccountPage, tags=["inventory"], dependencies=READ
    )
    def list_accounts(
        request: Request,
        endpoint: EndpointQuery = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
        site: Annotated[str | None, Query(max_length=254)] = None,
        role: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        records = app.list_accounts(
            runtime_of(request).ctx,
            endpoint,
            email=email,
            site=site,
            role=role,
            status=status,
            after=_after(cursor),
            limit=limit + 1,
        )
        page = records[:limit]
        more = len(records) > limit
        # Encoded here, in one pass of pydantic-core's encoder, rather than by validating a
        # model per account and serializing it again: the schema is `AccountPage`'s, as the
        # response model documents, and datetimes come out as pydantic writes them.
        body = {
            "items": [{**r.to_json(), "created": r.created} for r in page],
            "next_cursor": _cursor(page[-1].email) if more and page else None,
        }
        return Response(to_json(body), media_type="application/json")

    @router.get(
        "/accounts/{endpoint}/{email}",
        response_model=schemas.AccountDetail,
        tags=["inventory"],
        dependencies=READ,
    )
    def get_account(request: Request, endpoint: str, email: str) -> schemas.AccountDetail:
        detail = app.account_detail(runtime_of(request).ctx, endpoint, email)
        return schemas.AccountDetail(
            account=schemas.Account.model_validate(detail.account),
            history=[schemas.Change.model_validate(c) for c in detail.history],
        )

    @router.get(
        "/entitlements",
        response_model=list[schemas.Entitlement],
        tags=["inventory"],
        dependencies=READ,
    )
    def list_entitlements(
        request: Request,
        endpoint: EndpointQuery = None,
        type: Annotated[str | None, Query(max_length=32)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
    ) -> list[schemas.Entitlement]:
        records = app.list_entitlements(runtime_of(request).ctx, endpoint, type=type, status=status)
        return [schemas.Entitlement.model_validate(r) for r in records]

    @router.get(
        "/identities", response_model=list[schemas.Identity], tags=["inventory"], dependencies=READ
    )
    def list_identities(request: Request) -> list[schemas.Identity]:
        return [
            schemas.Identity.model_validate(r) for r in app.list_identities(runtime_of(request).ctx)
        ]


def _imports(router: APIRouter) -> None:

    @router.post(
        "/imports",
        status_code=202,
        response_model=schemas.ImportAccepted,
        tags=["imports"],
        dependencies=[allowed(Permission.RUN_IMPORT)],
    )
    def start_import(
        request: Request, body: schemas.ImportStart, idempotency_key: IdempotencyKey = None
    ) -> schemas.ImportAccepted | JSONResponse:
        def produce() -> schemas.ImportAccepted:
            runtime = runtime_of(request)
            started = runtime.start_import(body.endpoint, mode=body.mode, dry_run=body.dry_run)
            return schemas.ImportAccepted(
                run_id=started.run_id, endpoint=started.endpoint, mode=started.mode
            )

        return _idempotent(request, idempotency_key, body, 202, produce)

    @router.get("/runs", response_model=list[schemas.Run], tags=["imports"], dependencies=READ)
    def list_runs(
        request: Request,
        endpoint: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> list[schemas.Run]:
        runs = app.list_runs(runtime_of(request).ctx, endpoint, limit=limit)
        return [schemas.Run.model_validate(r) for r in runs]

    @router.get(
        "/runs/{run_id}", response_model=schemas.RunDetail, tags=["imports"], dependencies=READ
    )
    def get_run(request: Request, run_id: int) -> schemas.RunDetail:
        detail = app.run_detail(runtime_of(request).ctx, _id(run_id))
        plan = (
            schemas.Plan.model_validate(plan_json(detail.diff, limit=PLAN_ITEMS))
            if detail.diff is not None
            else None
        )
        return schemas.RunDetail(
            run=schemas.Run.model_validate(detail.run),
            plan=plan,
            changes=[schemas.Change.model_validate(c) for c in detail.changes],
        )

    @router.post(
        "/runs/{run_id}/approve",
        response_model=schemas.Run,
        tags=["imports"],
        dependencies=[allowed(Permission.APPROVE_RUN)],
    )
    def approve_run(request: Request, run_id: int) -> schemas.Run:
        return schemas.Run.model_validate(app.approve_run(runtime_of(request).ctx, _id(run_id)))

    @router.post(
        "/runs/{run_id}/refuse",
        response_model=schemas.Run,
        tags=["imports"],
        dependencies=[allowed(Permission.APPROVE_RUN)],
    )
    def refuse_run(
        request: Request, run_id: int, body: schemas.RefuseRun | None = None
    ) -> schemas.Run:
        reason = body.reason if body is not None else None
        run = app.refuse_run(runtime_of(request).ctx, _id(run_id), reason)
        return schemas.Run.model_validate(run)


def _provisioning(router: APIRouter) -> None:

    @router.post(
        "/requests",
        status_code=202,
        response_model=schemas.RequestAccepted,
        tags=["provisioning"],
        dependencies=[allowed(Permission.REQUEST)],
    )
    def create_request(
        request: Request, body: schemas.AccessRequestIn, idempotency_key: IdempotencyKey = None
    ) -> schemas.RequestAccepted | JSONResponse:
        def produce() -> schemas.RequestAccepted:
            runtime = runtime_of(request)
            outcome = app.submit_request(
                runtime.ctx,
                body.endpoint,
                app.AccessRequest(
                    body.operation,
                    body.email,
                    role=body.role,
                    sites=tuple(body.sites),
                    allow_no_sites=body.allow_no_sites,
                    requester=runtime.requester(request),
                    justification=body.justification,
                    request_id=runtime.request_id(request),
                ),
            )
            runtime.wake_worker()
            return schemas.RequestAccepted(
                request_id=outcome.request_id, task_ids=[t.id for t in outcome.tasks]
            )

        return _idempotent(request, idempotency_key, body, 202, produce)

    @router.get(
        "/tasks", response_model=list[schemas.Task], tags=["provisioning"], dependencies=READ
    )
    def list_tasks(
        request: Request,
        endpoint: Annotated[str | None, Query(max_length=100)] = None,
        state: TaskState | None = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
    ) -> list[schemas.Task]:
        tasks = app.list_tasks(runtime_of(request).ctx, endpoint=endpoint, state=state, email=email)
        return [schemas.Task.model_validate(t) for t in tasks]

    @router.get(
        "/tasks/{task_id}",
        response_model=schemas.TaskDetail,
        tags=["provisioning"],
        dependencies=READ,
    )
    def get_task(request: Request, task_id: int) -> schemas.TaskDetail:
        detail = app.task_detail(runtime_of(request).ctx, _id(task_id))
        return schemas.TaskDetail(
            task=schemas.Task.model_validate(detail.task),
            journal=[schemas.JournalLine.model_validate(j) for j in detail.journal],
        )

    @router.post(
        "/tasks/{task_id}/retry",
        response_model=schemas.Task,
        tags=["provisioning"],
        dependencies=[allowed(Permission.MANAGE_TASKS)],
    )
    def retry_task(request: Request, task_id: int) -> schemas.Task:
        runtime = runtime_of(request)
        task = app.retry_task(runtime.ctx, _id(task_id))
        runtime.wake_worker()
        return schemas.Task.model_validate(task)

    @router.post(
        "/tasks/{task_id}/discontinue",
        response_model=schemas.Task,
        tags=["provisioning"],
        dependencies=[allowed(Permission.MANAGE_TASKS)],
    )
    def discontinue_task(
        request: Request, task_id: int, body: schemas.DiscontinueTask | None = None
    ) -> schemas.Task:
        reason = body.reason if body is not None else None
        task = app.discontinue_task(runtime_of(request).ctx, _id(task_id), reason)
        return schemas.Task.model_validate(task)


def _journal(router: APIRouter) -> None:

    @router.get(
        "/journal", response_model=list[schemas.JournalLine], tags=["journal"], dependencies=READ
    )
    def list_journal(
        request: Request,
        endpoint: Annotated[str | None, Query(max_length=100)] = None,
        task: int | None = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
        last: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> list[schemas.JournalLine]:
        lines = app.list_journal(
            runtime_of(request).ctx,
            endpoint=endpoint,
            task_id=_id(task) if task is not None else None,
            email=email,
            last=last,
        )
        return [schemas.JournalLine.model_validate(j) for j in lines]

    @router.get(
        "/journal/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The whole journal, oldest first.",
                "content": {"application/json": {}, "text/csv": {}},
            }
        },
        tags=["journal"],
        dependencies=READ,
    )
    def export_journal(
        request: Request,
        format: Literal["json", "csv"] = "json",
        endpoint: Annotated[str | None, Query(max_length=100)] = None,
    ) -> StreamingResponse:
        lines = app.list_journal(runtime_of(request).ctx, endpoint=endpoint)
        if format == "csv":
            return StreamingResponse(_csv(lines), media_type="text/csv")
        return StreamingResponse(_json_array(lines), media_type="application/json")


def _schedules(router: APIRouter) -> None:

    manage_schedules = [allowed(Permission.MANAGE_SCHEDULES)]

    @router.get(
        "/schedules", response_model=list[schemas.Schedule], tags=["schedules"], dependencies=READ
    )
    def list_schedules(request: Request) -> list[schemas.Schedule]:
        views = app.list_schedules(runtime_of(request).ctx)
        return [schemas.Schedule.model_validate(v.to_json()) for v in views]

    @router.get(
        "/schedules/{schedule_id}",
        response_model=schemas.ScheduleDetail,
        tags=["schedules"],
        dependencies=READ,
    )
    def get_schedule(request: Request, schedule_id: int) -> schemas.ScheduleDetail:
        detail = app.get_schedule(runtime_of(request).ctx, _id(schedule_id))
        return schemas.ScheduleDetail.model_validate(detail.to_json())

    @router.post(
        "/schedules",
        status_code=201,
        response_model=schemas.Schedule,
        tags=["schedules"],
        dependencies=manage_schedules,
    )
    def add_schedule(
        request: Request, body: schemas.ScheduleIn, idempotency_key: IdempotencyKey = None
    ) -> schemas.Schedule | JSONResponse:
        def produce() -> schemas.Schedule:
            runtime = runtime_of(request)
            view = app.add_schedule(
                runtime.ctx,
                body.name,
                job=body.job,
                every=body.every,
                cron=body.cron,
                endpoint=body.endpoint,
                timezone=body.timezone,
                missed=body.missed,
                enabled=body.enabled,
            )
            runtime.wake_scheduler()
            return schemas.Schedule.model_validate(view.to_json())

        return _idempotent(request, idempotency_key, body, 201, produce)

    @router.patch(
        "/schedules/{schedule_id}",
        response_model=schemas.Schedule,
        tags=["schedules"],
        dependencies=manage_schedules,
    )
    def update_schedule(
        request: Request, schedule_id: int, body: schemas.SchedulePatchIn
    ) -> schemas.Schedule:
        runtime = runtime_of(request)
        given = body.model_dump(exclude_unset=True)
        patch = app.SchedulePatch(**given)
        view = app.update_schedule(runtime.ctx, _id(schedule_id), patch)
        runtime.wake_scheduler()
        return schemas.Schedule.model_validate(view.to_json())

    @router.delete(
        "/schedules/{schedule_id}",
        status_code=204,
        response_class=Response,
        tags=["schedules"],
        dependencies=manage_schedules,
    )
    def remove_schedule(request: Request, schedule_id: int) -> Response:
        app.remove_schedule(runtime_of(request).ctx, _id(schedule_id))
        return Response(status_code=204)

    @router.post(
        "/schedules/{schedule_id}/run",
        status_code=202,
        response_model=schemas.Fire,
        tags=["schedules"],
        dependencies=manage_schedules,
    )
    def run_schedule(
        request: Request, schedule_id: int, idempotency_key: IdempotencyKey = None
    ) -> schemas.Fire | JSONResponse:
        def produce() -> schemas.Fire:
            runtime = runtime_of(request)
            fire = app.queue_schedule_run(runtime.ctx, _id(schedule_id))
            runtime.wake_scheduler()
            return schemas.Fire.model_validate(fire.to_json())

        return _idempotent(request, idempotency_key, None, 202, produce)


def _tokens(router: APIRouter) -> None:

    manage_tokens = [allowed(Permission.MANAGE_TOKENS)]

    @router.get(
        "/tokens", response_model=list[schemas.Token], tags=["tokens"], dependencies=manage_tokens
    )
    def list_tokens(request: Request) -> list[schemas.Token]:
        ctx = runtime_of(request).ctx
        now = ctx.clock()
        return [
            schemas.Token.model_validate(app.token_summary(t, now)) for t in app.list_tokens(ctx)
        ]

    @router.post(
        "/tokens",
        status_code=201,
        response_model=schemas.IssuedToken,
        tags=["tokens"],
        dependencies=manage_tokens,
    )
    def create_token(request: Request, body: schemas.TokenIn) -> schemas.IssuedToken:
        runtime = runtime_of(request)
        lifetime = app.parse_lifetime(body.expires) if body.expires else app.DEFAULT_LIFETIME
        issued = app.create_token(
            runtime.ctx,
            body.name,
            body.role,
            expires_in=lifetime,
            created_by=ServiceRuntime.requester(request),
        )
        return schemas.IssuedToken.model_validate(issued.to_json(runtime.ctx.clock()))

    @router.delete(
        "/tokens/{name}", response_model=schemas.Token, tags=["tokens"], dependencies=manage_tokens
    )
    def revoke_token(request: Request, name: str) -> schemas.Token:
        ctx = runtime_of(request).ctx
        record = app.revoke_token(ctx, name, revoked_by=ServiceRuntime.requester(request))
        return schemas.Token.model_validate(app.token_summary(record, ctx.clock()))


def build_metrics_route() -> APIRouter:
    """`GET /metrics` (Prometheus text), outside /api/v1 as scrapers expect; it needs a token."""
    router = APIRouter(responses={401: ERRORS[401], 403: ERRORS[403]})

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus metrics."}},
        tags=["health"],
        dependencies=[allowed(Permission.READ_METRICS)],
    )
    def metrics(request: Request) -> Response:
        return Response(runtime_of(request).metrics.render(), media_type=CONTENT_TYPE)

    return router


#: Database ids are 64-bit; anything larger names nothing and must not reach the database.
_MAX_ID = 2**63 - 1


def _id(value: int) -> int:
    if not 0 < value <= _MAX_ID:
        raise InvalidInputError(f"id {value} is out of range")
    return value


def _json_array(lines: list[app.JournalRecord]) -> Iterator[str]:
    yield "["
    for index, line in enumerate(lines):
        yield ("," if index else "") + json.dumps(line.to_json(), sort_keys=True)
    yield "]\n"


JOURNAL_COLUMNS = (
    "id",
    "at",
    "endpoint",
    "task_id",
    "request_id",
    "operation",
    "target",
    "attempt",
    "kind",
    "state_before",
    "state_after",
    "method",
    "path",
    "status",
    "error",
    "detail",
)


def _csv(lines: list[app.JournalRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=JOURNAL_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for line in lines:
        row: dict[str, Any] = line.to_json()
        row["detail"] = json.dumps(row["detail"], sort_keys=True) if row.get("detail") else ""
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


__all__ = ["ServiceRuntime", "build_router"]
