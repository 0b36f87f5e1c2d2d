"""The provisioning worker: claims due tasks, re-reads the target, sends only what is missing.

Exactly once, even under SIGKILL: before a write is sent its intent is committed (the task is
marked `write_sent`); a task abandoned mid-write is reclaimed when its lease expires, and its
re-read decides: change in place → completed, not in place → send again. Invites are only ever
sent when the re-read shows no such user, so a crash can never produce a second invite.

Calls are coalesced where the API allows it: one users read checks a whole batch, and add-access
tasks for the same site share one bulk members call. Each task still ends in its own state with
its own journal entries. A batch holds one task per account, except that an account's queued
site grants on different sites come together (they commute: `runs_alongside`); so the only
writes of one account in flight at once are member adds to different sites. The batch's site
calls and single-task steps run side by side, `concurrency` at a time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from sigsci_iga.connectors.base import (
    AddToSite,
    PlannedCall,
    ProvisioningConnector,
    Step,
    require_caller,
)
from sigsci_iga.connectors.http.calls import CallRecord, capture_calls
from sigsci_iga.domain.model import AccountSnapshot, address_of
from sigsci_iga.domain.tasks import TaskState, runs_alongside
from sigsci_iga.errors import ApiError, ProcessingError, Recovery, SigsciIgaError, StoreError
from sigsci_iga.provisioning.planner import Plan, plan_task
from sigsci_iga.store import JournalEntry, LeaseLostError, Repository, TaskFinish, TaskRecord

log = logging.getLogger(__name__)

#: deadlock_detected and serialization_failure: the transaction was aborted and may be rerun.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_FINISH_ATTEMPTS = 5


def _now() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 200
    lease_seconds: float = 300.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    #: At most this many tasks of an operation per run (e.g. {"remove_account": 20}).
    per_operation_limits: Mapping[str, int] = field(default_factory=dict)
    #: From this many tasks in a batch on, one users-list read replaces per-user reads.
    bulk_read_from: int = 3
    #: Throttled writes were not applied; they are retried in place this many times.
    throttle_retries: int = 8
    throttle_wait_seconds: float = 1.0
    concurrency: int = 4


@dataclass
class RunSummary:
    claimed: int = 0
    completed: int = 0
    no_action_required: int = 0
    failed: int = 0
    rescheduled: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, state: TaskState | str) -> None:
        if state == TaskState.COMPLETED:
            self.completed += 1
        elif state == TaskState.NO_ACTION_REQUIRED:
            self.no_action_required += 1
        elif state == TaskState.FAILED:
            self.failed += 1
        else:
            self.rescheduled += 1


_Done = tuple[TaskRecord, Plan, list[JournalEntry]]


@dataclass(frozen=True)
class PlannedTask:
    """A task, its plan and the calls it would send (for dry runs)."""

    task: TaskRecord
    plan: Plan
    calls: tuple[PlannedCall, ...]
    shared_with: tuple[int, ...] = ()


class Worker:
    """Works the due tasks of one endpoint through a connector."""

    def __init__(
        self,
        repository: Repository,
        endpoint: str,
        connector: ProvisioningConnector,
        *,
        options: WorkerOptions | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = _now,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repository
        self.endpoint = endpoint
        self.connector = connector
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not security)
        #: Account key -> the email as the target itself spelled it in one of this run's reads.
        self._spellings: dict[str, str] = {}

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        *,
        task_ids: Sequence[int] | None = None,
        until_done: bool = False,
        max_wait_seconds: float = 60.0,
        should_stop: Callable[[], bool] | None = None,
        on_batch: Callable[[RunSummary], None] | None = None,
    ) -> RunSummary:
        """Work due tasks until none is due; with `until_done`, also wait for rescheduled ones.

        `should_stop` is asked before each batch: a service stopping lets the batch in hand
        finish and claims no more. Cancelled mid-batch, the run releases its tasks.
        `on_batch` is told the running totals after each batch (for progress).
        """
        try:
            return await self._run(task_ids, until_done, max_wait_seconds, should_stop, on_batch)
        except asyncio.CancelledError:
            # Stopped mid-batch (a service shutting down): hand the tasks back now rather
            # than leaving them leased until the lease runs out.
            released = self.repo.tasks.release(self.worker_id, now=self.clock())
            log.info("worker %s stopped; released tasks %s", self.worker_id, released)
            raise

    async def _run(
        self,
        task_ids: Sequence[int] | None,
        until_done: bool,
        max_wait_seconds: float,
        should_stop: Callable[[], bool] | None,
        on_batch: Callable[[RunSummary], None] | None = None,
    ) -> RunSummary:
        summary = RunSummary()
        taken: dict[str, int] = defaultdict(int)
        deadline = self.clock() + timedelta(seconds=max_wait_seconds)
        while True:
            if should_stop is not None and should_stop():
                return summary
            limits = {
                op: max(0, limit - taken[op])
                for op, limit in self.options.per_operation_limits.items()
            }
            tasks = self.repo.tasks.claim(
                self.endpoint,
                worker=self.worker_id,
                now=self.clock(),
                lease_seconds=self.options.lease_seconds,
                limit=self.options.batch_size,
                per_operation_limits=limits or None,
                task_ids=task_ids,
            )
            if not tasks:
                wait = self._next_due_in(task_ids, limits) if until_done else None
                if wait is None or self.clock() + timedelta(seconds=wait) > deadline:
                    return summary
                await asyncio.sleep(max(0.05, wait))
                continue
            for task in tasks:
                taken[task.operation] += 1
            summary.claimed += len(tasks)
            summary.batches += 1
            await self._process(tasks, summary)
            if on_batch is not None:
                on_batch(summary)

    def _next_due_in(
        self, task_ids: Sequence[int] | None, limits: Mapping[str, int]
    ) -> float | None:
        """Seconds until the next queued task is due, or None when nothing is left to wait for.

        A task another worker left in progress becomes due when its lease runs out (that worker
        may have died), so it counts too.
        """
        pending = [
            t
            for t in self.repo.tasks.list(endpoint=self.endpoint, state=("new", "in_progress"))
            if (task_ids is None or t.id in task_ids) and limits.get(t.operation, 1) > 0
        ]
        if not pending:
            return None
        now = self.clock()
        soonest = min(
            (t.next_attempt_at if t.state == "new" else t.lease_until) or now for t in pending
        )
        return max(0.0, (soonest - now).total_seconds())

    # -- one batch -------------------------------------------------------------------------

    async def _process(self, tasks: Sequence[TaskRecord], summary: RunSummary) -> None:
        reads, current = await self._read_targets(tasks, summary)
        if current is None:
            return
        work = self._decide(tasks, reads, current, summary)
        by_site: dict[str, list[tuple[TaskRecord, Plan]]] = defaultdict(list)
        single: list[tuple[TaskRecord, Plan]] = []
        for task, plan in work:
            if len(plan.steps) == 1 and isinstance(plan.steps[0], AddToSite):
                by_site[plan.steps[0].site].append((task, plan))
            else:
                single.append((task, plan))
        sends: list[tuple[list[tuple[TaskRecord, Plan]], tuple[Step, ...]]] = [
            (group, (_coalesced(name, group),)) for name, group in sorted(by_site.items())
        ]
        sends.extend(([(task, plan)], tuple(plan.steps)) for task, plan in single)
        # The intents of every first write of the batch, in one transaction before any is sent:
        # a write that then never goes out only costs its task a re-read, which it gets anyway.
        lines: dict[int, list[JournalEntry]] = {}
        recorded: list[bool] = []
        for group, steps in sends:
            try:
                lines.update(self._intent_lines(group, steps[0]))
            except Exception:  # noqa: BLE001  # `_guarded` finds and fails the task behind it
                recorded.append(False)
            else:
                recorded.append(True)
        try:
            self.repo.tasks.record_intents(lines, worker=self.worker_id)
        except LeaseLostError as exc:
            summary.errors.append(str(exc))
            return
        slots = asyncio.Semaphore(self.options.concurrency)

        async def send(
            group: list[tuple[TaskRecord, Plan]], steps: tuple[Step, ...], first_recorded: bool
        ) -> list[_Done]:
            async with slots:
                return await self._guarded(group, steps, summary, first_recorded=first_recorded)

        results = await asyncio.gather(
            *(send(g, s, r) for (g, s), r in zip(sends, recorded, strict=True)),
            return_exceptions=True,
        )
        succeeded: list[_Done] = []
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                succeeded.extend(result)
        if succeeded:
            await self._complete(succeeded, summary)
        if failure is not None:
            raise failure

    def _decide(
        self,
        tasks: Sequence[TaskRecord],
        reads: Sequence[CallRecord],
        current: Mapping[str, AccountSnapshot | None],
        summary: RunSummary,
    ) -> list[tuple[TaskRecord, Plan]]:
        """Plan every task of the batch; end those with nothing to send; return the others.

        The batch's bookkeeping goes into two transactions, not a few per task.
        """
        work: list[tuple[TaskRecord, Plan]] = []
        acting: list[JournalEntry] = []
        decided: list[TaskFinish] = []
        for task in tasks:
            journal = [self._call_entry(task, r, shared=len(tasks) > 1) for r in reads]
            try:
                plan = plan_task(task.operation, task.email, task.params, current.get(task.email))
            except Exception as exc:  # noqa: BLE001  # a poisoned task fails alone
                self._poisoned([task], summary, exc, "planning", journal)
                continue
            if plan.outcome == "act":
                acting.extend(journal)
                work.append((task, plan))
                continue
            if plan.outcome == "no_action":
                # An earlier attempt's write evidently landed before that worker stopped.
                state = TaskState.COMPLETED if task.write_sent else TaskState.NO_ACTION_REQUIRED
            else:
                state = TaskState.FAILED
            note = self._entry(task, "note", detail={"reason": plan.reason})
            decided.append(
                TaskFinish(
                    task_id=task.id,
                    state=state,
                    error=plan.reason if state == TaskState.FAILED else None,
                    journal=[*journal, note],
                    account_changes={task.email: current.get(task.email)},
                )
            )
        self.repo.journal.append(acting)
        self._finish(decided, summary)
        return work

    async def _complete(self, succeeded: Sequence[_Done], summary: RunSummary) -> None:
        """Read back what the writes did and end the tasks that sent them, in one transaction."""
        with capture_calls() as reads:
            verified = await self._verify([task for task, _, _ in succeeded])
        expected = _expected_together([(task, plan) for task, plan, _ in succeeded])
        finishes = []
        for task, _, journal in succeeded:
            checks = [self._call_entry(task, r, shared=len(succeeded) > 1) for r in reads]
            finishes.append(
                TaskFinish(
                    task_id=task.id,
                    state=TaskState.COMPLETED,
                    journal=[*journal, *checks],
                    account_changes={
                        task.email: verified.get(task.email, expected.get(task.email))
                    },
                )
            )
        self._finish(finishes, summary)

    async def _read_targets(
        self, tasks: Sequence[TaskRecord], summary: RunSummary
    ) -> tuple[list[CallRecord], dict[str, AccountSnapshot | None] | None]:
        """Re-read every task's account: one users-list read for a batch, else one GET each."""
        with capture_calls() as reads:
            try:
                current = await self._accounts_of(tasks)
            except ApiError as exc:
                for task in tasks:
                    journal = [self._call_entry(task, r, shared=len(tasks) > 1) for r in reads]
                    self._reschedule(task, summary, f"re-read failed: {exc}", journal)
                if exc.recovery is Recovery.FIX_CONFIGURATION:
                    raise
                return reads, None
        return reads, current

    async def _guarded(
        self,
        group: Sequence[tuple[TaskRecord, Plan]],
        steps: Sequence[Step],
        summary: RunSummary,
        *,
        first_recorded: bool = False,
    ) -> list[_Done]:
        """`_run_steps`, where an unexpected exception fails the group's tasks, not the run.

        Errors a person must act on (credentials, the database) still end the run.
        """
        try:
            return await self._run_steps(group, steps, summary, first_recorded=first_recorded)
        except DBAPIError:
            raise
        except SigsciIgaError as exc:
            if exc.recovery is Recovery.FIX_CONFIGURATION or isinstance(exc, StoreError):
                raise
            return await self._poison_group(group, summary, exc)
        except Exception as exc:  # noqa: BLE001  # one poisoned task must not stop the others
            return await self._poison_group(group, summary, exc)

    async def _poison_group(
        self, group: Sequence[tuple[TaskRecord, Plan]], summary: RunSummary, exc: Exception
    ) -> list[_Done]:
        if len(group) > 1:
            # A shared call failed: find the task that poisons it by running each alone.
            done: list[_Done] = []
            for task, plan in group:
                done.extend(await self._guarded([(task, plan)], plan.steps, summary))
            return done
        self._poisoned([task for task, _ in group], summary, exc, "sending", [])
        return []

    def _poisoned(
        self,
        tasks: Sequence[TaskRecord],
        summary: RunSummary,
        exc: Exception,
        stage: str,
        journal: Sequence[JournalEntry],
    ) -> None:
        # The type and a short message only: the text may hold anything the data held.
        reason = f"the task could not be processed ({stage}): {type(exc).__name__}: {exc}"
        error = str(ProcessingError(reason[:300]))
        self._finish(
            [
                TaskFinish(
                    task_id=task.id,
                    state=TaskState.FAILED,
                    error=error,
                    journal=[*journal, self._entry(task, "note", detail={"reason": error})],
                )
                for task in tasks
            ],
            summary,
        )

    def _intent_lines(
        self, group: Sequence[tuple[TaskRecord, Plan]], step: Step
    ) -> dict[int, list[JournalEntry]]:
        """What each task of the group journals before `step` goes out: snapshot and intents."""
        planned_calls = self.connector.describe_all(step)
        lines: dict[int, list[JournalEntry]] = {}
        for task, plan in group:
            lines[task.id] = (
                [self._entry(task, "snapshot", detail=dict(plan.snapshot))]
                if plan.snapshot is not None
                else []
            )
            lines[task.id].extend(
                self._entry(
                    task,
                    "intent",
                    method=planned.method,
                    path=planned.path,
                    detail={"body": planned.body} if planned.body is not None else None,
                )
                for planned in planned_calls
            )
        return lines

    async def _run_steps(
        self,
        group: Sequence[tuple[TaskRecord, Plan]],
        steps: Sequence[Step],
        summary: RunSummary,
        *,
        first_recorded: bool = False,
    ) -> list[_Done]:
        """Send `steps` in order for a group of tasks; returns the tasks whose steps all succeeded.

        Each step's intents are committed before it is sent (the first step's already were,
        with `first_recorded`). Tasks that fail are rescheduled or failed here, each in its own
        state.
        """
        journals: dict[int, list[JournalEntry]] = {task.id: [] for task, _ in group}
        for index, step in enumerate(steps):
            if index > 0 or not first_recorded:
                try:
                    # One transaction for the group, committed before the write goes out.
                    self.repo.tasks.record_intents(
                        self._intent_lines(group, step), worker=self.worker_id
                    )
                except LeaseLostError as exc:
                    summary.errors.append(str(exc))
                    return []
            error, calls = await self._send(step)
            for task, _ in group:
                journals[task.id].extend(
                    self._call_entry(task, r, shared=len(group) > 1) for r in calls
                )
            if error is None:
                continue
            recovery = error.recovery
            if recovery is Recovery.PERMANENT and len(group) > 1:
                # One bad member fails a bulk call for all: retry each on its own to isolate it.
                done: list[_Done] = []
                for task, plan in group:
                    self.repo.journal.append(journals[task.id])
                    done.extend(await self._run_steps([(task, plan)], plan.steps, summary))
                return done
            if recovery is Recovery.PERMANENT:
                self._finish(
                    [
                        TaskFinish(
                            task_id=task.id,
                            state=TaskState.FAILED,
                            error=str(error),
                            journal=journals[task.id],
                        )
                        for task, _ in group
                    ],
                    summary,
                )
            for task, _ in group:
                if recovery is not Recovery.PERMANENT:
                    # The next attempt re-reads the account before it decides anything; after
                    # a conflict or an untrustworthy answer that re-read is due at once.
                    now = recovery is Recovery.REREAD_THEN_DECIDE
                    self._reschedule(task, summary, str(error), journals[task.id], now=now)
            if recovery is Recovery.FIX_CONFIGURATION:
                # Every other task would fail the same way: stop the run, keep the tasks.
                raise error
            return []
        return [(task, plan, journals[task.id]) for task, plan in group]

    async def _send(self, step: Step) -> tuple[ApiError | None, list[CallRecord]]:
        """Send one step; throttled answers (not applied) are retried in place, not reported."""
        with capture_calls() as calls:
            for attempt in range(self.options.throttle_retries + 1):
                try:
                    await self.connector.execute(step)
                except ApiError as exc:
                    if exc.recovery is not Recovery.RETRY_IN_PLACE:
                        return exc, calls
                    if attempt == self.options.throttle_retries:
                        return exc, calls
                    wait = (
                        exc.retry_after
                        if exc.retry_after is not None
                        else (
                            self.options.throttle_wait_seconds
                            * (2**attempt)
                            * self.rng.uniform(0.5, 1.5)
                        )
                    )
                    await asyncio.sleep(min(wait, 60.0))
                else:
                    return None, calls
        raise AssertionError("unreachable")  # pragma: no cover

    async def _accounts_of(self, tasks: Sequence[TaskRecord]) -> dict[str, AccountSnapshot | None]:
        """The tasks' accounts as the target holds them: one list read for a batch, else GETs.

        A list read that lacks the endpoint's caller is not the corp's list (an empty or partial
        glitch) and raises, rather than making every task's account look absent.
        """
        emails = list(dict.fromkeys(task.email for task in tasks))
        if len(emails) < self.options.bulk_read_from:
            found: dict[str, AccountSnapshot | None] = {}
            for email in emails:
                address, confirmed = self._address(email)
                found[email] = await self.connector.read_account(address, confirmed=confirmed)
        else:
            page = await self.connector.accounts_page(None)
            everyone = {a.email: a for a in page.items}
            require_caller(everyone.keys(), self._caller, path="accounts")
            found = {email: everyone.get(email) for email in emails}
        self._spellings.update((e, a.address) for e, a in found.items() if a is not None)
        return found

    def _address(self, email: str) -> tuple[str, bool]:
        """How to name an account in a GET, and whether the target itself gave that spelling.

        A spelling from this run's reads is the target's own; one the repository recorded at
        the last import is a good first guess, but the user may have been re-created since, so
        a "not found" for it (or for the plain key) is checked before anything is concluded.
        """
        if email in self._spellings:
            return self._spellings[email], True
        held = self.repo.inventory.find_account(self.endpoint, email)
        return (address_of(held.email, held.extra) if held else email), False

    @functools.cached_property
    def _caller(self) -> str | None:
        """The account every list of the endpoint must include (read once, on first need)."""
        email = self.repo.endpoints.get(self.endpoint).email
        return email.lower() if email else None

    async def _verify(self, tasks: Sequence[TaskRecord]) -> dict[str, AccountSnapshot | None]:
        """Read back what the writes did, so the repository holds the target's own view."""
        try:
            return await self._accounts_of(tasks)
        except ApiError:
            # The writes succeeded; the planned result is a sound stand-in until the next import.
            return {}

    # -- bookkeeping -----------------------------------------------------------------------

    def _finish(self, finishes: Sequence[TaskFinish], summary: RunSummary) -> None:
        """End these tasks in one transaction; a task whose lease was lost is only noted."""
        if not finishes:
            return
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                result = self.repo.tasks.finish_many(
                    finishes, worker=self.worker_id, now=self.clock()
                )
            except DBAPIError as exc:
                # Two workers finishing at once on PostgreSQL can deadlock on the endpoint row;
                # the server rolled this transaction back whole, so running it again is safe.
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate not in _RETRYABLE_SQLSTATES or attempt == _FINISH_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * 2**attempt * self.rng.uniform(0.5, 1.5))
                continue
            summary.errors.extend(result.lost)
            for record in result.finished:
                summary.count(record.state)
                log.info(
                    "task finished",
                    extra={
                        "task_id": record.id,
                        "request_id": record.request_id,
                        "state": str(record.state),
                    },
                )
            return

    def _reschedule(
        self,
        task: TaskRecord,
        summary: RunSummary,
        error: str,
        journal: Sequence[JournalEntry],
        *,
        now: bool = False,
    ) -> None:
        delay = 0.0
        if not now:
            delay = min(
                self.options.retry_max_seconds,
                self.options.retry_base_seconds * (2 ** max(0, task.attempts - 1)),
            ) * self.rng.uniform(0.5, 1.5)
        try:
            record = self.repo.tasks.reschedule(
                task.id,
                worker=self.worker_id,
                error=error,
                next_attempt_at=self.clock() + timedelta(seconds=delay),
                journal=journal,
                now=self.clock(),
            )
        except LeaseLostError as exc:
            summary.errors.append(str(exc))
            return
        summary.count(record.state)

    def _entry(
        self,
        task: TaskRecord,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        return JournalEntry(
            endpoint=self.endpoint,
            task_id=task.id,
            request_id=task.request_id,
            operation=task.operation,
            target=task.email,
            attempt=task.attempts,
            kind=kind,
            method=method,
            path=path,
            status=status,
            error=error,
            detail=dict(detail) if detail else None,
        )

    def _call_entry(self, task: TaskRecord, record: CallRecord, *, shared: bool) -> JournalEntry:
        return self._entry(
            task,
            "call",
            method=record.method,
            path=record.path,
            status=record.status,
            error=record.error,
            detail={"shared": True, "seconds": round(record.seconds, 3)}
            if shared
            else {"seconds": round(record.seconds, 3)},
        )

    # -- dry run ---------------------------------------------------------------------------

    async def plan_due(self) -> list[PlannedTask]:
        """What a run would send now, without claiming or changing anything (reads only)."""
        now = self.clock()
        due: list[TaskRecord] = []
        # As the claim does: each account's head, then the site grants on other sites that
        # follow it unbroken (email -> their sites); an account stops at its first task that
        # cannot go.
        running: dict[str, set[str]] = {}
        stopped: set[str] = set()
        taken: dict[str, int] = defaultdict(int)
        open_tasks = [
            t
            for t in self.repo.tasks.list(endpoint=self.endpoint)
            if t.state in ("new", "in_progress")
        ]
        for task in open_tasks:
            if task.email in stopped:
                continue
            limit = self.options.per_operation_limits.get(task.operation)
            queued = task.state == "new" and not (
                task.next_attempt_at and task.next_attempt_at > now
            )
            # A run also reclaims a task whose worker died (its lease ran out).
            abandoned = task.state == "in_progress" and (
                task.lease_until is not None and task.lease_until < now
            )
            alongside = runs_alongside(task.operation, task.params)
            site = str(task.params.get("value"))
            sites = running.get(task.email)
            may_go = (queued or abandoned) and (sites is None or (alongside and site not in sites))
            if not may_go or (limit is not None and taken[task.operation] >= limit):
                stopped.add(task.email)
                continue
            taken[task.operation] += 1
            due.append(task)
            if alongside:
                running.setdefault(task.email, set()).add(site)
            else:
                stopped.add(task.email)
            if len(due) >= self.options.batch_size:
                break
        return await self.plan_tasks(due)

    async def plan_tasks(self, due: Sequence[TaskRecord]) -> list[PlannedTask]:
        """What a run would send for these tasks, as they stand now (reads only).

        The tasks need not be stored: a request's dry run plans the tasks it would create.
        """
        if not due:
            return []
        current = await self._accounts_of(due)
        plans = [(t, plan_task(t.operation, t.email, t.params, current[t.email])) for t in due]
        site_groups: dict[str, list[int]] = defaultdict(list)
        site_emails: dict[str, list[str]] = defaultdict(list)
        for task, plan in plans:
            if (
                plan.outcome == "act"
                and len(plan.steps) == 1
                and isinstance(plan.steps[0], AddToSite)
            ):
                site_groups[plan.steps[0].site].append(task.id)
                site_emails[plan.steps[0].site].extend(plan.steps[0].emails)
        result: list[PlannedTask] = []
        for task, plan in plans:
            if plan.outcome != "act":
                result.append(PlannedTask(task, plan, ()))
                continue
            step = plan.steps[0]
            if len(plan.steps) == 1 and isinstance(step, AddToSite):
                coalesced = AddToSite(step.site, tuple(sorted(site_emails[step.site])))
                result.append(
                    PlannedTask(
                        task,
                        plan,
                        self.connector.describe_all(coalesced),
                        tuple(i for i in site_groups[step.site] if i != task.id),
                    )
                )
            else:
                result.append(
                    PlannedTask(
                        task,
                        plan,
                        tuple(c for s in plan.steps for c in self.connector.describe_all(s)),
                    )
                )
        return result


def _expected_together(
    done: Sequence[tuple[TaskRecord, Plan]],
) -> dict[str, AccountSnapshot | None]:
    """Each account as the plans of its tasks that succeeded leave it, all of them together.

    Several tasks of one account in a batch are site grants (`runs_alongside`), each planned
    against the same read: together they add the union of their sites.
    """
    expected: dict[str, AccountSnapshot | None] = {}
    for task, plan in done:
        before = expected.get(task.email)
        after = plan.expected
        if before is not None and after is not None:
            after = replace(after, sites=before.sites | after.sites)
        expected[task.email] = after
    return expected


def _coalesced(site: str, group: Sequence[tuple[TaskRecord, Plan]]) -> AddToSite:
    """One bulk members call for every task of the group that adds someone to `site`."""
    return AddToSite(site, tuple(sorted(e for _, p in group for e in _site_step(p).emails)))


def _site_step(plan: Plan) -> AddToSite:
    step = plan.steps[0]
    assert isinstance(step, AddToSite)  # grouped by site only when it is the plan's one step
    return step
