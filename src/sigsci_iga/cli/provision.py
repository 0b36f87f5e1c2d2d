"""`sigsci-iga request`, `provision`, `tasks`, `journal` and `restore`: changing the corp."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated
from urllib.parse import unquote

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import Col, Stages, fail, print_csv, print_json, say, show_table
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.errors import InvalidInputError, Outcome

#: `journal verify` found a chain that does not hold.
JOURNAL_BROKEN_EXIT = Outcome.JOURNAL_BROKEN

request_app = typer.Typer(no_args_is_help=True, help="Request a change; it becomes a task.")
provision_app = typer.Typer(no_args_is_help=True, help="Work the task queue (the retry job).")
tasks_app = typer.Typer(no_args_is_help=True, help="Provisioning tasks.")
journal_app = typer.Typer(no_args_is_help=True, help="The append-only provisioning journal.")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint", help="Endpoint name (default: the corp name).")
]
Email = Annotated[str, typer.Option("--email", help="The account's email.")]
TaskId = Annotated[int, typer.Argument(help="The task's id (see `tasks list`).")]
Justification = Annotated[
    str | None, typer.Option("--justification", help="Business justification, kept with the task.")
]
Requester = Annotated[
    str | None, typer.Option("--requester", help="Who asks (default: $USER).", envvar="USER")
]


DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check the request and print the calls it would send now; store nothing. "
        "Exits 7 when there are calls to send.",
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print the tasks (or, with --dry-run, the calls) as JSON.")
]


def _request(
    endpoint: str | None, request: app.AccessRequest, *, dry_run: bool, json_output: bool
) -> None:
    with context.session() as ctx:
        if dry_run:
            planned = context.run(app.preview_request(ctx, endpoint, request))
        else:
            outcome = context.run(app.request_access(ctx, endpoint, request))
    if dry_run:
        _print_dry_run(planned, json_output=json_output, stored=False)
        return
    _print_outcomes(outcome, instant=outcome.executed, json_output=json_output)


def _print_outcomes(outcome: app.RequestOutcome, *, instant: bool, json_output: bool) -> None:
    failed = any(task.state is TaskState.FAILED for task in outcome.tasks)
    if json_output:
        print_json(
            {
                "request_id": outcome.request_id,
                "task_ids": [task.id for task in outcome.tasks],
                "executed": instant,
                "tasks": [task.to_json() for task in outcome.tasks],
            }
        )
    else:
        for task in outcome.tasks:
            say(f"task {task.id} ({task.operation.value} {task.email}) requested")
        if not instant:
            say("queued for the retry job (instant provisioning is off)")
        for task in outcome.tasks if instant else ():
            _print_outcome(task)
    if failed:
        raise typer.Exit(Outcome.TASKS_FAILED)


def _print_outcome(task: app.TaskRecord) -> None:
    if task.state is TaskState.NEW and task.attempts == 0:
        say(f"task {task.id} waits behind an earlier open task for {task.email}")
    elif task.state is TaskState.NEW:
        when = (
            task.next_attempt_at.isoformat(timespec="seconds") if task.next_attempt_at else "soon"
        )
        say(f"task {task.id} queued for the retry job (next attempt {when}): {task.last_error}")
    elif task.state is TaskState.FAILED:
        say(f"task {task.id} failed: {task.last_error}")
    else:
        say(f"task {task.id} {task.state.value}")


@request_app.command("create-account")
def request_create(
    email: Email,
    role: Annotated[str, typer.Option("--role", help="owner, admin, user or observer.")],
    site: Annotated[
        list[str] | None, typer.Option("--site", help="A site to grant (repeat).")
    ] = None,
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Invite a new user with a role and sites."""
    _request(
        endpoint,
        app.AccessRequest(
            Operation.CREATE_ACCOUNT,
            email,
            role=role,
            sites=tuple(site or ()),
            requester=requester,
            justification=justification,
        ),
        dry_run=dry_run,
        json_output=json_output,
    )


@request_app.command("update-role")
def request_update_role(
    email: Email,
    role: Annotated[str, typer.Option("--role", help="The new corp role.")],
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Change a user's corp role (and nothing else)."""
    _request(
        endpoint,
        app.AccessRequest(
            Operation.UPDATE_ACCOUNT,
            email,
            role=role,
            requester=requester,
            justification=justification,
        ),
        dry_run=dry_run,
        json_output=json_output,
    )


@request_app.command("add-access")
def request_add_access(
    email: Email,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Site to grant (repeat: one task each).")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="Or a CorpRole to grant.")] = None,
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Grant a site (bulk-add, never a memberships PATCH) or a corp role."""
    _request(
        endpoint,
        app.AccessRequest(
            Operation.ADD_ACCESS,
            email,
            role=role,
            sites=tuple(site or ()),
            requester=requester,
            justification=justification,
        ),
        dry_run=dry_run,
        json_output=json_output,
    )


@request_app.command("remove-access")
def request_remove_access(
    email: Email,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Site to take away (repeat: one task each)."),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="Refused: a corp role is changed (update-role), not removed."),
    ] = None,
    allow_no_sites: Annotated[
        bool, typer.Option("--allow-no-sites", help="Allow leaving a non-owner with no site.")
    ] = False,
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Take a site away from a user."""
    _request(
        endpoint,
        app.AccessRequest(
            Operation.REMOVE_ACCESS,
            email,
            role=role,
            sites=tuple(site or ()),
            allow_no_sites=allow_no_sites,
            requester=requester,
            justification=justification,
        ),
        dry_run=dry_run,
        json_output=json_output,
    )


@request_app.command("remove-account")
def request_remove_account(
    email: Email,
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Remove a user from the corp (its role and sites are journaled first, for restore)."""
    _request(
        endpoint,
        app.AccessRequest(
            Operation.REMOVE_ACCOUNT, email, requester=requester, justification=justification
        ),
        dry_run=dry_run,
        json_output=json_output,
    )


@provision_app.command("run")
def provision_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact calls; change nothing.")
    ] = False,
    until_done: Annotated[
        bool,
        typer.Option("--until-done", help="Keep going until no task is queued (or --max-wait)."),
    ] = False,
    max_wait: Annotated[
        float, typer.Option(help="Seconds --until-done may wait for retries.")
    ] = 60.0,
    max_remove_account: Annotated[
        int | None, typer.Option(help="At most this many remove-account tasks per run.")
    ] = None,
    max_per_operation: Annotated[
        int | None, typer.Option(help="At most this many tasks of any one operation per run.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Tasks claimed at once.")] = None,
    lease_seconds: Annotated[
        float | None,
        typer.Option(
            help="How long a claimed task stays leased; a worker that died leaves it to be "
            "reclaimed once the lease runs out (default 300).",
        ),
    ] = None,
    endpoint: EndpointOption = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the run's counts (or, with --dry-run, the calls) as JSON."
        ),
    ] = False,
) -> None:
    """Work the due tasks: re-read, send what is missing, retry with backoff.

    Exits 11 when tasks failed; with --dry-run, 7 when there are calls to send.
    """
    if dry_run and until_done:
        # A dry run sends nothing, so nothing would ever be done: refuse rather than ignore.
        fail(InvalidInputError("--until-done cannot be used with --dry-run"))
    options = app.QueueOptions(
        until_done=until_done,
        max_wait_seconds=max_wait,
        max_remove_account=max_remove_account,
        max_per_operation=max_per_operation,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
    )
    with context.session() as ctx:
        if dry_run:
            planned = context.run(app.preview_queue(ctx, endpoint, options))
        elif not until_done:
            summary = context.run(app.run_queue(ctx, endpoint, options))
        else:
            # The tasks open now are the total; a task queued for retry is not done yet.
            total = sum(
                len(app.list_tasks(ctx, endpoint=endpoint, state=state))
                for state in ("new", "in_progress")
            )
            with Stages(_describe_tasks) as stages:

                def on_batch(running: app.RunSummary) -> None:
                    finished = running.completed + running.no_action_required + running.failed
                    # One line a batch off a terminal: a long queue shows it is moving.
                    stages.report(f"batch {running.batches}", min(finished, total), total)

                options = replace(options, on_batch=on_batch)
                summary = context.run(app.run_queue(ctx, endpoint, options))
    if dry_run:
        _print_dry_run(planned, json_output=json_output, stored=True)
        return
    if json_output:
        # The names of a provision schedule's fire summary.
        print_json(
            {
                "claimed": summary.claimed,
                "completed": summary.completed,
                "no_action_required": summary.no_action_required,
                "failed": summary.failed,
                "rescheduled": summary.rescheduled,
                "batches": summary.batches,
                "errors": summary.errors,
            }
        )
    else:
        say(
            f"claimed {summary.claimed} tasks in {summary.batches} batches: "
            f"{summary.completed} completed, {summary.no_action_required} no_action_required, "
            f"{summary.failed} failed, {summary.rescheduled} queued for retry"
        )
        for error in summary.errors:
            say(f"note: {error}")
    if summary.failed:
        raise typer.Exit(Outcome.TASKS_FAILED)


def _describe_tasks(_stage: str, done: int, total: int | None) -> str:
    return f"provision: {done} of {total} tasks done"


def _planned_json(item: app.PlannedTask, *, stored: bool) -> dict[str, object]:
    task = item.task
    return {
        "task_id": task.id if stored else None,
        "operation": task.operation.value,
        "email": task.email,
        "params": task.params,
        "outcome": item.plan.outcome,
        "reason": item.plan.reason or None,
        "calls": [{"method": c.method, "path": c.path, "body": c.body} for c in item.calls],
        "shared_with": list(item.shared_with) if stored else [],
    }


def _print_dry_run(planned: Sequence[app.PlannedTask], *, json_output: bool, stored: bool) -> None:
    """The calls a run (stored tasks) or a request (tasks not stored) would send now."""
    calls = {
        (c.method, c.path, json.dumps(c.body, sort_keys=True)) for p in planned for c in p.calls
    }
    if json_output:
        print_json(
            {
                "dry_run": True,
                "tasks": [_planned_json(p, stored=stored) for p in planned],
                "calls": len(calls),
            }
        )
    elif not planned:
        say("no task is due")
    else:
        for item in planned:
            task = item.task
            head = f"{task.operation.value} {task.email}"
            head = f"task {task.id} {head}" if stored else head
            if item.plan.outcome != "act":
                say(f"{head}: {item.plan.outcome} — {item.plan.reason}")
                continue
            for call in item.calls:
                body = json.dumps(call.body, sort_keys=True) if call.body is not None else ""
                shared = (
                    f" (one call with tasks {', '.join(map(str, item.shared_with))})"
                    if stored and item.shared_with
                    else ""
                )
                say(f"{head}: {call.method} {call.path} {body}{shared}".rstrip())
        say(f"{len(calls)} write calls would be sent; nothing was changed")
    if calls:
        raise typer.Exit(Outcome.PENDING)


@tasks_app.command("list")
def tasks_list(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="new, in_progress, completed, failed, discontinued, no_action_required.",
        ),
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Only this account's tasks.")] = None,
    endpoint: EndpointOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")] = False,
) -> None:
    """Tasks, oldest first."""
    with context.session() as ctx:
        tasks = app.list_tasks(ctx, endpoint=endpoint, state=status, email=email)
    if json_output:
        print_json([t.to_json() for t in tasks])
        return
    show_table(
        (
            "id",
            "operation",
            Col("email", whole=True),
            Col("detail", drop=2),
            "state",
            Col("attempts", drop=3),
            Col("next attempt", drop=4),
            Col("last error", drop=1),
        ),
        [
            (
                t.id,
                t.operation,
                t.email,
                _detail(t),
                t.state,
                t.attempts,
                t.next_attempt_at.isoformat(timespec="seconds")
                if t.state is TaskState.NEW and t.next_attempt_at
                else "",
                (t.last_error or "")[:60],
            )
            for t in tasks
        ],
    )


def _detail(task: app.TaskRecord) -> str:
    p = task.params
    if "value" in p:
        return f"{p.get('entitlement_type')}={p['value']}"
    if "sites" in p:
        return f"role={p.get('role')} sites={','.join(p['sites'])}"
    if "role" in p:
        return f"role={p['role']}"
    return ""


@tasks_app.command("show")
def tasks_show(
    task_id: TaskId,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the task and its journal as JSON.")
    ] = False,
) -> None:
    """One task and its journal."""
    with context.session() as ctx:
        detail = app.task_detail(ctx, task_id)
    task, entries = detail.task, detail.journal
    if json_output:
        print_json({"task": task.to_json(), "journal": [e.to_json() for e in entries]})
        return
    for key, value in task.to_json().items():
        say(f"{key:<15} ", value)
    _journal_table(entries, title=f"journal of task {task_id}")


TaskJson = Annotated[bool, typer.Option("--json", help="Print the task as JSON.")]


@tasks_app.command("retry")
def tasks_retry(task_id: TaskId, json_output: TaskJson = False) -> None:
    """Queue a failed or discontinued task again (attempts start over)."""
    with context.session() as ctx:
        task = app.retry_task(ctx, task_id)
    if json_output:
        print_json(task.to_json())
    else:
        say(f"task {task.id} queued again")


@tasks_app.command("discontinue")
def tasks_discontinue(
    task_id: TaskId,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why it should not run, kept with the task.")
    ] = None,
    json_output: TaskJson = False,
) -> None:
    """Stop a task that should not run."""
    with context.session() as ctx:
        task = app.discontinue_task(ctx, task_id, reason)
    if json_output:
        print_json(task.to_json())
    else:
        say(f"task {task.id} discontinued")


def _short_path(path: str | None) -> str:
    """Drop the constant `/api/v0/corps/<corp>` prefix so the interesting part shows."""
    if not path:
        return ""
    parts = path.split("/", 5)
    return "…/" + parts[5] if len(parts) > 5 and parts[3] == "corps" else path


def _what(entry: app.JournalRecord) -> str:
    """What one journal line records, in a few words: the call, the state change, the error."""
    parts = []
    if entry.method:
        # The target has its own column: its segment and the query string only repeat it.
        path = _short_path(entry.path).partition("?")[0]
        target = (entry.target or "").lower()
        segments = ["…" if unquote(seg).lower() == target else seg for seg in path.split("/")]
        parts.append(f"{entry.method} {'/'.join(segments)} {entry.status or ''}".rstrip())
    if entry.state_after:
        parts.append(f"{entry.state_before or '-'} → {entry.state_after}")
    if entry.error:
        parts.append(entry.error)
    return "; ".join(parts) or entry.operation or ""


def _journal_table(entries: Sequence[app.JournalRecord], title: str, *, wide: bool = False) -> None:
    if not wide:
        show_table(
            (
                "id",
                "time",
                Col("task", drop=1),
                "kind",
                Col("target", whole=True),
                "what",
            ),
            [
                (e.id, e.at.strftime("%H:%M:%S"), e.task_id or "", e.kind, e.target, _what(e))
                for e in entries
            ],
            title=title,
        )
        return
    rows = []
    for e in entries:
        call = f"{e.method} {_short_path(e.path)}" if e.method else ""
        state = f"{e.state_before or ''}→{e.state_after}" if e.state_after else ""
        rows.append(
            (
                e.id,
                e.at.strftime("%H:%M:%S"),
                e.task_id or "",
                e.attempt or "",
                e.kind,
                e.operation,
                e.target,
                call,
                e.status or "",
                state,
                (e.error or "")[:40],
            )
        )
    show_table(
        (
            "id",
            "time",
            "task",
            "try",
            "kind",
            "operation",
            "target",
            "call",
            "status",
            "state",
            "error",
        ),
        rows,
        title=title,
    )


@journal_app.command("list")
def journal_list(
    task: Annotated[int | None, typer.Option("--task", help="Only this task's entries.")] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Only this account's (its email).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the newest N entries.")] = None,
    endpoint: EndpointOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", help="Every column: attempt, operation, call, status, state and error."
        ),
    ] = False,
) -> None:
    """Journal entries, oldest first."""
    with context.session() as ctx:
        entries = app.list_journal(ctx, endpoint=endpoint, task_id=task, email=email, last=limit)
    if json_output:
        print_json([e.to_json() for e in entries])
        return
    _journal_table(entries, title="journal", wide=wide)


@journal_app.command("verify")
def journal_verify(
    endpoint: EndpointOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Check the journal's hash chains; name the first line that was edited, deleted or added.

    Exits 9 when a chain is broken. Record the heads it prints somewhere else: a chain can only
    prove that nothing changed since a head you kept.
    """
    with context.session() as ctx:
        reports = app.verify_journal(ctx, endpoint)
    if json_output:
        print_json(
            [
                {
                    "endpoint": r.endpoint,
                    "intact": r.intact,
                    "lines": r.lines,
                    "head_seq": r.head_seq,
                    "head_hash": r.head_hash,
                    "problem": r.problem,
                    "line_id": r.line_id,
                }
                for r in reports
            ]
        )
    else:
        for r in reports:
            if r.intact:
                say(f"{r.endpoint}: intact, {r.lines} lines, head {r.head_seq} {r.head_hash}")
            else:
                say(f"{r.endpoint}: BROKEN: {r.problem}")
    if any(not r.intact for r in reports):
        raise typer.Exit(JOURNAL_BROKEN_EXIT)


@journal_app.command("export")
def journal_export(
    format_: Annotated[str, typer.Option("--format", help="csv or json.")] = "json",
    endpoint: EndpointOption = None,
) -> None:
    """The whole journal to standard output, as CSV or JSON."""
    if format_ not in ("csv", "json"):
        fail(InvalidInputError(f"--format must be csv or json, not {format_!r}"))
    with context.session() as ctx:
        entries = [e.to_json() for e in app.list_journal(ctx, endpoint=endpoint)]
    if format_ == "json":
        print_json(entries)
        return
    columns = (
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
    for entry in entries:
        entry["detail"] = json.dumps(entry["detail"], sort_keys=True) if entry.get("detail") else ""
    print_csv(columns, [[entry.get(c) for c in columns] for entry in entries])


def restore_command(
    email: Annotated[str, typer.Argument(help="The removed account's email.")],
    justification: Justification = None,
    requester: Requester = None,
    endpoint: EndpointOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")] = False,
) -> None:
    """Re-invite a removed account with the role and sites journaled when it was removed."""
    with context.session() as ctx:
        outcome = context.run(
            app.restore_account(
                ctx, endpoint, email, requester=requester, justification=justification
            )
        )
    _print_outcomes(outcome, instant=outcome.executed, json_output=json_output)
