"""`sigsci-iga import`, `runs` and `db`: reading corps into the repository."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sigsci_iga.cli import context
from sigsci_iga.cli.output import fail, print_json, stderr, stdout
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.errors import SigsciIgaError
from sigsci_iga.importer.run import Importer, ImportMode, ImportOptions, ImportResult
from sigsci_iga.settings import Settings
from sigsci_iga.store import EndpointInfo, Repository, RunRecord, upgrade

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


def _limit(absolute: int, percent: float) -> Limit:
    return Limit(
        absolute=absolute if absolute >= 0 else None, percent=percent if percent >= 0 else None
    )


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
        bool, typer.Option("--dry-run", help="Compute and print the diff; apply nothing.")
    ] = False,
    endpoint: EndpointOption = None,
    max_suspend: Annotated[
        int, typer.Option(help="Hold if more accounts would be suspended (-1: no limit).")
    ] = 10,
    max_suspend_percent: Annotated[
        float, typer.Option(help="Hold above this share of accounts suspended (-1: off).")
    ] = 10.0,
    max_links_removed: Annotated[
        int, typer.Option(help="Hold if more links would be removed.")
    ] = 10,
    max_links_removed_percent: Annotated[
        float, typer.Option(help="Hold above this share of links removed.")
    ] = 10.0,
    max_sites_inactivated: Annotated[
        int, typer.Option(help="Hold if more sites would become inactive.")
    ] = 10,
    max_sites_inactivated_percent: Annotated[
        float, typer.Option(help="Hold above this share of sites inactivated.")
    ] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run an import (incremental once a checkpoint exists, else full)."""
    if ctx.invoked_subcommand is not None:
        return
    if full and incremental:
        fail("choose one of --full and --incremental", code=2)
    mode: ImportMode = "full" if full else "incremental" if incremental else "auto"
    thresholds = Thresholds(
        accounts_suspended=_limit(max_suspend, max_suspend_percent),
        links_removed=_limit(max_links_removed, max_links_removed_percent),
        sites_inactivated=_limit(max_sites_inactivated, max_sites_inactivated_percent),
    )
    current = context.settings()
    name = context.endpoint_name(current, endpoint)
    with context.repository(current) as repo:
        try:
            info = context.ensure_endpoint(repo, current, name)
            options = ImportOptions(
                mode=mode,
                dry_run=dry_run,
                thresholds=thresholds,
                required_account=info.email,
                correlation_rule=current.correlation_rule,
            )
            result = asyncio.run(_run(repo, info, current, options, show_progress=not json_output))
        except SigsciIgaError as exc:
            fail(exc)
    if json_output:
        print_json(
            {
                "run": result.run.to_json(),
                "mode": result.mode,
                "diff": result.diff.summary(),
                "held": result.verdict.held,
                "reasons": result.verdict.reasons,
                "fallback": result.fallback_reason,
            }
        )
    else:
        _print_result(result)
    if result.run.status == "held":
        raise typer.Exit(7)


async def _run(
    repo: Repository,
    info: EndpointInfo,
    current: Settings,
    options: ImportOptions,
    *,
    show_progress: bool,
) -> ImportResult:
    async with context.open_connector(current, info) as connector:
        name = info.name
        if not show_progress:
            return await Importer(repo, name, connector).run(options)
        with Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr(),
            transient=True,
        ) as progress:
            tasks: dict[str, TaskID] = {}

            def report(stage: str, done: int, total: int | None) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            return await Importer(repo, name, connector, progress=report).run(options)


def _print_result(result: ImportResult) -> None:
    out = stdout()
    run = result.run
    if result.fallback_reason:
        out.print(f"note: {result.fallback_reason}")
    out.print(
        f"run {run.id}: {result.mode} import of {run.endpoint} "
        f"{'(dry run) ' if run.dry_run else ''}-> {run.status}"
    )
    if result.mode == "full":
        out.print(f"read {result.accounts_read} accounts and {result.sites_read} sites")
    else:
        out.print(
            f"read {result.events_read} new events; re-read {result.accounts_read} accounts "
            f"and {result.sites_read} sites"
        )
    table = Table("object", "added", "changed", "removed", "reactivated", title="diff")
    for kind, counts in result.diff.summary().items():
        removed = (
            counts.get("suspended", 0) + counts.get("inactivated", 0) + counts.get("removed", 0)
        )
        table.add_row(
            kind,
            str(counts.get("added", 0)),
            str(counts.get("changed", 0)),
            str(removed),
            str(counts.get("reactivated", 0)),
        )
    out.print(table)
    if result.verdict.held:
        out.print(f"[yellow]held:[/] {'; '.join(result.verdict.reasons)}")
        if run.status == "held":
            out.print(f"review, then apply with: sigsci-iga import approve {run.id}")
    else:
        out.print("thresholds: ok")


@import_app.command("approve")
def approve_command(run_id: int) -> None:
    """Apply exactly the diff of a held run, if the repository has not changed since."""
    with context.repository() as repo:
        try:
            run = repo.approve_run(run_id)
        except SigsciIgaError as exc:
            fail(exc)
    stdout().print(f"run {run.id} approved and applied")


@import_app.command("refuse")
def refuse_command(run_id: int, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Discard a held run."""
    with context.repository() as repo:
        try:
            run = repo.refuse_run(run_id, reason)
        except SigsciIgaError as exc:
            fail(exc)
    stdout().print(f"run {run.id} refused")


def _run_row(run: RunRecord) -> list[str]:
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
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import runs, newest first."""
    with context.repository() as repo:
        runs = repo.list_runs(endpoint, limit=limit)
    if json_output:
        print_json([r.to_json() for r in runs])
        return
    table = Table("id", "endpoint", "mode", "status", "started", "finished", "accounts", "reason")
    for run in runs:
        table.add_row(*_run_row(run))
    stdout().print(table)


@runs_app.command("show")
def runs_show(run_id: int, json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One run: counts, reason, and its recorded changes."""
    with context.repository() as repo:
        try:
            run = repo.get_run(run_id)
        except SigsciIgaError as exc:
            fail(exc)
        changes = repo.list_history(run_id=run_id, limit=200)
        diff = repo.get_run_diff(run_id) if run.has_diff else None
    if json_output:
        print_json(
            {
                "run": run.to_json(),
                "changes": [c.to_json() for c in changes],
                "held_diff": diff.to_json() if diff else None,
            }
        )
        return
    out = stdout()
    for label, value in zip(
        ("id", "endpoint", "mode", "status", "started", "finished", "accounts", "reason"),
        _run_row(run),
        strict=True,
    ):
        out.print(f"{label:<9} {value}")
    if run.counts:
        out.print(f"counts    {run.counts}")
    if changes:
        table = Table("object", "key", "field", "old", "new", title="changes (newest first)")
        for c in changes:
            table.add_row(
                c.object_type, c.object_key, c.field or "", _short(c.old_value), _short(c.new_value)
            )
        out.print(table)


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the repository to the newest schema (first use does this automatically)."""
    current = context.settings()
    try:
        upgrade(current.database_url)
    except SigsciIgaError as exc:
        fail(exc)
    stdout().print("repository is at the newest schema")
