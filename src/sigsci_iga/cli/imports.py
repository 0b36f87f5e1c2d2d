"""`sigsci-iga import`, `runs` and `db`: reading corps into the repository."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import (
    Col,
    Stages,
    change,
    fail,
    plain,
    print_json,
    say,
    show_table,
    styled,
)
from sigsci_iga.cli.plans import (
    DEFAULT_PLAN_ITEMS,
    PlanAll,
    PlanLimit,
    build_plan,
    plan_limit,
    render_plan,
)
from sigsci_iga.errors import Outcome

import_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Import the corp's accounts, sites and access into the repository.",
)
runs_app = typer.Typer(no_args_is_help=True, help="Import runs: list and show.")
db_app = typer.Typer(no_args_is_help=True, help="The repository database.")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint", help="Endpoint name (default: the corp name).")
]


@import_app.callback()
def import_command(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option("--full", help="Read everything (the default without a checkpoint).")
    ] = False,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Read only what the activity feed says changed.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Compute and print the plan; apply nothing (the run and its plan are kept "
            "for `runs show`). Exits 7 when there are changes.",
        ),
    ] = False,
    endpoint: EndpointOption = None,
    max_suspend: Annotated[
        int | None,
        typer.Option(
            help=f"Hold if more accounts would be suspended (default {app.DEFAULT_MAX_ITEMS}; "
            "-1: no limit)."
        ),
    ] = None,
    max_suspend_percent: Annotated[
        float | None,
        typer.Option(
            help="Hold above this share of accounts suspended "
            f"(default {app.DEFAULT_MAX_PERCENT:g}; -1: off)."
        ),
    ] = None,
    max_links_removed: Annotated[
        int | None, typer.Option(help="Hold if more links would be removed.")
    ] = None,
    max_links_removed_percent: Annotated[
        float | None, typer.Option(help="Hold above this share of links removed.")
    ] = None,
    max_sites_inactivated: Annotated[
        int | None, typer.Option(help="Hold if more sites would become inactive.")
    ] = None,
    max_sites_inactivated_percent: Annotated[
        float | None, typer.Option(help="Hold above this share of sites inactivated.")
    ] = None,
    limit: PlanLimit = DEFAULT_PLAN_ITEMS,
    every: PlanAll = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the run and its plan as JSON.")
    ] = False,
) -> None:
    """Run an import (incremental once a checkpoint exists, else full).

    A dry run or a held run prints its plan. Exits 7 when a run is held, or a dry run would
    change something.
    """
    if ctx.invoked_subcommand is not None:
        return
    if full and incremental:
        fail("choose one of --full and --incremental", code=2)
    shown = plan_limit(limit, every)
    thresholds = app.ThresholdSettings(
        max_suspend=max_suspend,
        max_suspend_percent=max_suspend_percent,
        max_links_removed=max_links_removed,
        max_links_removed_percent=max_links_removed_percent,
        max_sites_inactivated=max_sites_inactivated,
        max_sites_inactivated_percent=max_sites_inactivated_percent,
    )
    with context.session() as app_ctx:
        result = context.run(
            _run(
                app_ctx,
                endpoint,
                mode="full" if full else "incremental" if incremental else "auto",
                dry_run=dry_run,
                thresholds=thresholds,
                show_progress=not json_output,
            )
        )
    if json_output:
        print_json(
            {
                "run": result.run.to_json(),
                "mode": result.mode,
                "diff": result.diff.summary(),
                "held": result.verdict.held,
                "reasons": result.verdict.reasons,
                "fallback": result.fallback_reason,
                "warnings": list(result.warnings),
                "plan": build_plan(result.diff, shown),
            }
        )
    else:
        _print_result(result, shown)
    if result.run.status == "held" or (result.run.dry_run and not result.diff.is_empty):
        raise typer.Exit(Outcome.PENDING)


async def _run(
    ctx: app.AppContext,
    endpoint: str | None,
    *,
    mode: Literal["auto", "full", "incremental"],
    dry_run: bool,
    thresholds: app.ThresholdSettings,
    show_progress: bool,
) -> app.ImportResult:
    if not show_progress:
        return await app.run_import(
            ctx, endpoint, mode=mode, dry_run=dry_run, thresholds=thresholds
        )
    with Stages(_describe_stage) as stages:
        return await app.run_import(
            ctx,
            endpoint,
            mode=mode,
            dry_run=dry_run,
            thresholds=thresholds,
            progress=stages.report,
        )


def _describe_stage(stage: str, done: int, total: int | None) -> str:
    """One line for a finished stage of an import: read ..., diff, apply."""
    if stage in ("diff", "apply"):
        return f"import: {stage} done"
    count = f"{done} of {total}" if total is not None else str(done)
    return f"import: read {stage}: {count}"


def _print_result(result: app.ImportResult, shown: int | None) -> None:
    run = result.run
    if result.fallback_reason:
        say(f"note: {result.fallback_reason}")
    for warning in result.warnings:
        say(styled("warning:", "yellow"), " ", warning)
    say(
        f"run {run.id}: {result.mode} import of {run.endpoint} "
        f"{'(dry run) ' if run.dry_run else ''}-> {run.status}"
    )
    if result.mode == "full":
        say(f"read {result.accounts_read} accounts and {result.sites_read} sites")
    else:
        say(
            f"read {result.events_read} new events; re-read {result.accounts_read} accounts "
            f"and {result.sites_read} sites"
        )
    rows = []
    for kind, counts in result.diff.summary().items():
        removed = (
            counts.get("suspended", 0) + counts.get("inactivated", 0) + counts.get("removed", 0)
        )
        rows.append(
            (
                kind,
                counts.get("added", 0),
                counts.get("changed", 0),
                removed,
                counts.get("reactivated", 0),
            )
        )
    show_table(("object", "added", "changed", "removed", "reactivated"), rows, title="diff")
    if run.dry_run or run.status == "held":
        render_plan(build_plan(result.diff, shown))
    if result.verdict.held:
        say(styled("held:", "yellow"), " ", "; ".join(result.verdict.reasons))
        if run.status == "held":
            say(f"review, then apply with: sigsci-iga import approve {run.id}")
    else:
        say("thresholds: ok")


RunId = Annotated[int, typer.Argument(help="The held run's id (see `runs list`).")]
RunJson = Annotated[bool, typer.Option("--json", help="Print the run as JSON.")]


@import_app.command("approve")
def approve_command(run_id: RunId, json_output: RunJson = False) -> None:
    """Apply exactly the diff of a held run, if the repository has not changed since."""
    with context.session() as ctx:
        run = app.approve_run(ctx, run_id)
    if json_output:
        print_json(run.to_json())
    else:
        say(f"run {run.id} approved and applied")


@import_app.command("refuse")
def refuse_command(
    run_id: RunId,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept with the run.")] = None,
    json_output: RunJson = False,
) -> None:
    """Discard a held run."""
    with context.session() as ctx:
        run = app.refuse_run(ctx, run_id, reason)
    if json_output:
        print_json(run.to_json())
    else:
        say(f"run {run.id} refused")


def _run_row(run: app.RunRecord) -> list[str]:
    finished = run.finished_at.isoformat(timespec="seconds") if run.finished_at else ""
    counts = run.counts or {}
    accounts = counts.get("accounts", {}) if isinstance(counts, dict) else {}
    summary = ", ".join(f"{k} {v}" for k, v in accounts.items() if v) if accounts else ""
    return [
        str(run.id),
        run.endpoint,
        run.mode + (" dry" if run.dry_run else ""),
        run.status,
        run.started_at.isoformat(timespec="seconds"),
        finished,
        summary,
        run.reason or "",
    ]


@runs_app.command("list")
def runs_list(
    endpoint: EndpointOption = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """Import runs, newest first."""
    with context.session() as ctx:
        runs = app.list_runs(ctx, endpoint, limit=limit)
    if json_output:
        print_json([r.to_json() for r in runs])
        return
    show_table(
        (
            "id",
            "endpoint",
            "mode",
            "status",
            "started",
            Col("finished", drop=2),
            Col("accounts", drop=1),
            "reason",
        ),
        [_run_row(run) for run in runs],
    )


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="The run's id (see `runs list`).")],
    limit: PlanLimit = DEFAULT_PLAN_ITEMS,
    every: PlanAll = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the run, its plan and changes as JSON.")
    ] = False,
) -> None:
    """One run: counts, reason, the plan of a held or dry run, and its recorded changes."""
    shown = plan_limit(limit, every)
    with context.session() as ctx:
        detail = app.run_detail(ctx, run_id)
    run, changes, diff = detail.run, detail.changes, detail.diff
    plan = build_plan(diff, shown) if diff is not None else None
    if json_output:
        # The same document as the HTTP API's GET /api/v1/runs/{id}.
        print_json(
            {
                "run": run.to_json(),
                "plan": plan,
                "changes": [c.to_json() for c in changes],
            }
        )
        return
    for label, value in zip(
        ("id", "endpoint", "mode", "status", "started", "finished", "accounts", "reason"),
        _run_row(run),
        strict=True,
    ):
        say(f"{label:<9} ", value)
    # One kind a line, so that the counts read (and fit a terminal) as a small table does.
    label = "counts"
    for kind, value in (run.counts or {}).items():
        text = (
            ", ".join(f"{name} {plain(n)}" for name, n in value.items())
            if isinstance(value, dict)
            else plain(value)
        )
        say(f"{label:<9} {kind}: {text}")
        label = ""
    if plan is not None:
        render_plan(plan)
        if run.status == "held":
            say(f"review, then apply with: sigsci-iga import approve {run.id}")
    if changes:
        show_table(
            ("object", Col("key", whole=True), "field", "change"),
            [
                (
                    c.object_type,
                    c.object_key,
                    c.field or "",
                    change(c.old_value, c.new_value),
                )
                for c in changes
            ],
            title="changes (newest first)",
        )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the repository to the newest schema (first use does this automatically)."""
    with context.session() as ctx:
        app.upgrade_database(ctx)
    say("repository is at the newest schema")
