"""Provisioning use cases: requests become tasks; the queue is worked, previewed and managed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigsci_iga.app.context import AppContext
from sigsci_iga.app.endpoints import (
    endpoint_name,
    forget_new_endpoint,
    resolve_endpoint,
    resolve_first_use,
)
from sigsci_iga.app.inputs import check_count, check_id, check_seconds
from sigsci_iga.connectors.http.segments import check_segment
from sigsci_iga.domain.emails import normalize_email
from sigsci_iga.domain.model import corp_role
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.domain.text import check_name
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import PlannedTask, RunSummary, Worker, WorkerOptions
from sigsci_iga.store import TaskRecord

#: Bounds of `QueueOptions`: a week of waiting, a day's lease, and batches and per-run limits
#: far beyond what one worker run can take on.
MAX_WAIT_SECONDS = 7 * 86400.0
MAX_LEASE_SECONDS = 86400.0
MAX_BATCH_SIZE = 10_000
MAX_TASKS_PER_RUN = 1_000_000


@dataclass(frozen=True)
class AccessRequest:
    """One person's request: an operation on one account, with who asks and why.

    `sites` may name several sites: create-account grants them all in one task, add-access and
    remove-access make one task per site. `role` is the corp role (create-account,
    update-role, or add-access of a CorpRole).
    """

    operation: Operation
    email: str
    role: str | None = None
    sites: tuple[str, ...] = ()
    allow_no_sites: bool = False
    requester: str | None = None
    justification: str | None = None
    #: Ties the tasks to what asked for them (an API request's id); a new one by default.
    request_id: str | None = None


@dataclass(frozen=True)
class RequestOutcome:
    """The tasks a request became, as they stand now (after the instant attempt, if any)."""

    request_id: str
    tasks: list[TaskRecord]
    executed: bool


@dataclass(frozen=True)
class QueueOptions:
    """How one run of the queue (the retry job) behaves; None takes the setting or default."""

    until_done: bool = False
    max_wait_seconds: float = 60.0
    max_remove_account: int | None = None
    max_per_operation: int | None = None
    batch_size: int | None = None
    lease_seconds: float | None = None
    task_ids: Sequence[int] | None = field(default=None)
    #: Asked before each batch: a service that is stopping claims no more (see `Worker.run`).
    stop: Callable[[], bool] | None = None
    #: Told the running totals after each batch (a progress display).
    on_batch: Callable[[RunSummary], None] | None = None

    def check(self) -> None:
        """Refuse values that mean nothing: NaN, infinite, zero or negative, or absurdly large."""
        check_seconds(self.max_wait_seconds, "--max-wait", maximum=MAX_WAIT_SECONDS)
        if self.lease_seconds is not None:
            check_seconds(
                self.lease_seconds, "--lease-seconds", minimum=1.0, maximum=MAX_LEASE_SECONDS
            )
        if self.batch_size is not None:
            check_count(self.batch_size, "--batch-size", maximum=MAX_BATCH_SIZE)
        # Zero is a limit that means something: no task of that kind in this run.
        for value, what in (
            (self.max_remove_account, "--max-remove-account"),
            (self.max_per_operation, "--max-per-operation"),
        ):
            if value is not None:
                check_count(value, what, minimum=0, maximum=MAX_TASKS_PER_RUN)
        for task_id in self.task_ids or ():
            check_id(task_id, "task id")


def _task_params(ctx: AppContext, endpoint: str, request: AccessRequest) -> list[dict[str, Any]]:
    """Validated parameters of every task the request makes; raises before anything is stored."""
    repo = ctx.repository
    op = request.operation
    label = op.label
    if op is Operation.CREATE_ACCOUNT:
        return [build_params(repo, endpoint, op, role=request.role, sites=request.sites)]
    if op is Operation.UPDATE_ACCOUNT:
        if request.sites:
            raise InvalidInputError("update-role changes the corp role only; sites are not used")
        return [build_params(repo, endpoint, op, role=request.role)]
    if op in (Operation.ADD_ACCESS, Operation.REMOVE_ACCESS):
        if request.role is not None and request.sites:
            raise InvalidInputError(f"{label} takes a site or a corp role, not both")
        if request.role is not None or not request.sites:
            return [build_params(repo, endpoint, op, role=request.role)]
        return [
            build_params(repo, endpoint, op, site=site, allow_no_sites=request.allow_no_sites)
            for site in dict.fromkeys(request.sites)
        ]
    if request.role is not None or request.sites:
        raise InvalidInputError("remove-account takes no role or sites")
    return [build_params(repo, endpoint, op)]


#: Bounds on the free text a request carries.
MAX_JUSTIFICATION = 4000
MAX_REQUESTER = 320


def _text(value: str | None, what: str, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate reaches no database or server intact: refuse it here, whole.
        raise InvalidInputError(f"{what} is not valid Unicode text") from None


def _check_request(request: AccessRequest) -> str:
    """What can be checked without the repository, before anything is registered; the email."""
    _text(request.email, "email", MAX_REQUESTER)
    for site in request.sites:
        _text(site, "site", MAX_REQUESTER)
    _text(request.role, "role", 64)
    _text(request.requester, "requester", MAX_REQUESTER)
    _text(request.justification, "justification", MAX_JUSTIFICATION)
    email = normalize_email(request.email)
    for site in request.sites:
        check_segment(check_name(site, "site name"), "site name")
    if request.role is not None:
        corp_role(request.role)
    return email


def submit_request(ctx: AppContext, endpoint: str | None, request: AccessRequest) -> RequestOutcome:
    """Validate the request and record its tasks (state `new`); nothing is sent to the target."""
    email = _check_request(request)
    info = resolve_endpoint(ctx, endpoint)
    every = _task_params(ctx, info.name, request)
    request_id = request.request_id or uuid.uuid4().hex
    tasks = [
        ctx.repository.tasks.create(
            info.name,
            request.operation,
            email,
            params,
            request_id=request_id,
            requester=request.requester,
            justification=request.justification,
            max_attempts=ctx.settings.task_max_attempts,
        )
        for params in every
    ]
    return RequestOutcome(request_id, tasks, executed=False)


async def request_access(
    ctx: AppContext,
    endpoint: str | None,
    request: AccessRequest,
    *,
    instant: bool | None = None,
) -> RequestOutcome:
    """Submit a request and, with instant provisioning (the setting, unless `instant` says),
    run its tasks at once; what fails for a transient reason stays queued for the retry job.

    A request that registers the endpoint (first use) first proves the connection, so a
    mistyped corp leaves neither an endpoint nor a task behind.
    """
    _check_request(request)
    info, created = resolve_first_use(ctx, endpoint)
    if created:
        try:
            async with ctx.connectors.open(info, quick=True) as connector:
                await connector.validate(info.email)
        except BaseException as exc:
            forget_new_endpoint(ctx, info.name, exc)
            raise
    submitted = submit_request(ctx, info.name, request)
    if not (ctx.settings.instant_provisioning if instant is None else instant):
        return submitted
    ids = [task.id for task in submitted.tasks]
    name = submitted.tasks[0].endpoint
    await run_queue(ctx, name, QueueOptions(task_ids=ids))
    tasks = [ctx.repository.tasks.get(task_id) for task_id in ids]
    return RequestOutcome(submitted.request_id, tasks, executed=True)


async def preview_request(
    ctx: AppContext, endpoint: str | None, request: AccessRequest
) -> list[PlannedTask]:
    """What a request would send now, after the same checks; no task or journal line is stored.

    The tasks it would create are planned against the target's current state (reads only).
    """
    email = _check_request(request)
    info, created = resolve_first_use(ctx, endpoint)
    every = _task_params(ctx, info.name, request)
    now = ctx.clock()
    tasks = [
        TaskRecord(
            id=number,
            endpoint=info.name,
            operation=request.operation,
            email=email,
            params=params,
            state=TaskState.NEW,
            attempts=0,
            max_attempts=ctx.settings.task_max_attempts,
            next_attempt_at=None,
            last_error=None,
            request_id="dry-run",
            requester=request.requester,
            justification=request.justification,
            created_at=now,
            updated_at=now,
            finished_at=None,
            lease_owner=None,
            lease_until=None,
            write_sent=False,
        )
        for number, params in enumerate(every, start=1)
    ]
    try:
        async with ctx.connectors.open(info) as connector:
            worker = Worker(
                ctx.repository,
                info.name,
                connector,
                options=_worker_options(ctx, QueueOptions()),
                clock=ctx.clock,
            )
            return await worker.plan_tasks(tasks)
    except BaseException as exc:
        if created:
            forget_new_endpoint(ctx, info.name, exc)
        raise


async def restore_account(
    ctx: AppContext,
    endpoint: str | None,
    email: str,
    *,
    requester: str | None = None,
    justification: str | None = None,
    instant: bool | None = None,
) -> RequestOutcome:
    """Re-invite a removed account with the role and sites journaled when it was removed."""
    name = endpoint_name(ctx, endpoint)
    key = normalize_email(email)
    access = ctx.repository.tasks.last_removed_access(name, key)
    if access is None:
        raise InvalidInputError(f"no removal of {key} is in the journal of endpoint {name!r}")
    request = AccessRequest(
        Operation.CREATE_ACCOUNT,
        key,
        role=str(access["role"]),
        sites=tuple(access.get("sites") or ()),
        requester=requester,
        justification=justification or f"restore of {key}",
    )
    return await request_access(ctx, name, request, instant=instant)


def _worker_options(ctx: AppContext, options: QueueOptions) -> WorkerOptions:
    limits: dict[str, int] = {}
    if options.max_per_operation is not None:
        limits = dict.fromkeys((op.value for op in Operation), options.max_per_operation)
    if options.max_remove_account is not None:
        limits[Operation.REMOVE_ACCOUNT.value] = options.max_remove_account
    values: dict[str, Any] = {
        "retry_base_seconds": ctx.settings.retry_base_seconds,
        "concurrency": ctx.settings.max_concurrency,
        "per_operation_limits": limits,
    }
    if options.batch_size is not None:
        values["batch_size"] = options.batch_size
    if options.lease_seconds is not None:
        values["lease_seconds"] = options.lease_seconds
    return WorkerOptions(**values)


async def run_queue(
    ctx: AppContext, endpoint: str | None, options: QueueOptions | None = None
) -> RunSummary:
    """Work the due tasks: re-read, send what is missing, retry with backoff."""
    options = options or QueueOptions()
    options.check()
    info = resolve_endpoint(ctx, endpoint)
    async with ctx.connectors.open(info) as connector:
        worker = Worker(
            ctx.repository,
            info.name,
            connector,
            options=_worker_options(ctx, options),
            clock=ctx.clock,
        )
        return await worker.run(
            task_ids=options.task_ids,
            until_done=options.until_done,
            max_wait_seconds=options.max_wait_seconds,
            should_stop=options.stop,
            on_batch=options.on_batch,
        )


async def preview_queue(
    ctx: AppContext, endpoint: str | None, options: QueueOptions | None = None
) -> list[PlannedTask]:
    """What a run would send now (reads only; nothing is claimed or changed)."""
    options = options or QueueOptions()
    options.check()
    info = resolve_endpoint(ctx, endpoint)
    async with ctx.connectors.open(info) as connector:
        worker = Worker(
            ctx.repository,
            info.name,
            connector,
            options=_worker_options(ctx, options),
            clock=ctx.clock,
        )
        return await worker.plan_due()


def due_endpoints(ctx: AppContext) -> list[str]:
    """The endpoints with a task a worker could claim now (for a service's worker loop)."""
    return ctx.repository.tasks.due_endpoints(ctx.clock())


def retry_task(ctx: AppContext, task_id: int) -> TaskRecord:
    """Queue a failed or discontinued task again, with a fresh attempt budget."""
    check_id(task_id, "task id")
    return ctx.repository.tasks.retry(task_id, now=ctx.clock())


def discontinue_task(ctx: AppContext, task_id: int, reason: str | None = None) -> TaskRecord:
    """Stop a task that should not run."""
    check_id(task_id, "task id")
    return ctx.repository.tasks.discontinue(task_id, reason=reason, now=ctx.clock())
