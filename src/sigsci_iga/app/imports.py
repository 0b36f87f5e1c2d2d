"""Import use cases: run an import, approve or refuse a held run, migrate the repository."""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from sigsci_iga.app.context import AppContext
from sigsci_iga.app.endpoints import (
    adopt_caller,
    forget_new_endpoint,
    get_endpoint,
    resolve_first_use,
)
from sigsci_iga.app.inputs import MAX_ID, check_id
from sigsci_iga.domain.thresholds import DEFAULT_MAX_ITEMS, DEFAULT_MAX_PERCENT, Limit, Thresholds
from sigsci_iga.errors import InvalidInputError, SigsciIgaError
from sigsci_iga.importer.run import (
    Importer,
    ImportMode,
    ImportOptions,
    ImportResult,
    planned_mode,
)
from sigsci_iga.store import RunRecord
from sigsci_iga.store.identities import correlation_rule

#: The limit value that turns a threshold off.
OFF = -1

Progress = Callable[[str, int, int | None], None]
#: No import takes this long: a run still `running` after it, whose process cannot be checked
#: (it ran on another host), was abandoned.
MAX_RUN_AGE = timedelta(hours=12)


@dataclass(frozen=True)
class ThresholdSettings:
    """Hold limits per kind of removal; None means the default, -1 means off."""

    max_suspend: int | None = None
    max_suspend_percent: float | None = None
    max_links_removed: int | None = None
    max_links_removed_percent: float | None = None
    max_sites_inactivated: int | None = None
    max_sites_inactivated_percent: float | None = None

    def check(self) -> None:
        """Refuse limits that mean nothing: below -1, NaN, infinite, or a share above 100 %."""
        for name in ("max_suspend", "max_links_removed", "max_sites_inactivated"):
            items = getattr(self, name)
            if items is not None and not (items == OFF or 0 <= items <= MAX_ID):
                raise InvalidInputError(
                    f"{_option(name)} must be a whole number from 0 to {MAX_ID}, or -1 (off)"
                )
        for name in (
            "max_suspend_percent",
            "max_links_removed_percent",
            "max_sites_inactivated_percent",
        ):
            percent = getattr(self, name)
            if percent is not None and not (
                math.isfinite(percent) and (percent == OFF or 0 <= percent <= 100)
            ):
                raise InvalidInputError(
                    f"{_option(name)} must be a percentage from 0 to 100, or -1 (off)"
                )

    def thresholds(self) -> Thresholds:
        self.check()
        return Thresholds(
            accounts_suspended=_limit(self.max_suspend, self.max_suspend_percent),
            links_removed=_limit(self.max_links_removed, self.max_links_removed_percent),
            sites_inactivated=_limit(
                self.max_sites_inactivated, self.max_sites_inactivated_percent
            ),
        )


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _limit(items: int | None, percent: float | None) -> Limit:
    items = DEFAULT_MAX_ITEMS if items is None else items
    percent = DEFAULT_MAX_PERCENT if percent is None else percent
    return Limit(absolute=items if items >= 0 else None, percent=percent if percent >= 0 else None)


@dataclass(frozen=True)
class PreparedImport:
    """An import whose run is already recorded (`running`), so its id can be given out first."""

    run_id: int
    endpoint: str
    mode: str
    options: ImportOptions
    #: This import registered the endpoint (first use): if it fails, the endpoint goes too.
    new_endpoint: bool = False


def prepare_import(
    ctx: AppContext,
    endpoint: str | None,
    *,
    mode: ImportMode = "auto",
    dry_run: bool = False,
    thresholds: ThresholdSettings | None = None,
) -> PreparedImport:
    """Check the request and record its run; nothing is read from the target yet."""
    limits = thresholds or ThresholdSettings()
    limits.check()
    # An unknown rule must stop the import before an endpoint or a run is recorded.
    correlation_rule(ctx.settings.correlation_rule)
    info, created = resolve_first_use(ctx, endpoint)
    abandon_stale_runs(ctx)
    planned, _ = planned_mode(ctx.repository, info.name, mode, ctx.clock())
    run_id = ctx.repository.runs.start(info.name, mode=planned, dry_run=dry_run)
    options = ImportOptions(
        mode=mode,
        dry_run=dry_run,
        thresholds=limits.thresholds(),
        required_account=info.email,
        correlation_rule=ctx.settings.correlation_rule,
        run_id=run_id,
    )
    return PreparedImport(run_id, info.name, planned, options, new_endpoint=created)


async def execute_import(
    ctx: AppContext, prepared: PreparedImport, *, progress: Progress | None = None
) -> ImportResult:
    """Run a prepared import to its end; whatever stops it, its run does not stay `running`."""
    caller = prepared.options.required_account
    try:
        info = get_endpoint(ctx, prepared.endpoint)
        if caller and info.email != caller and not info.credentials and info.connector != "rest":
            # The settings' caller, not yet stored (see `resolve_endpoint`), makes the calls.
            info = replace(info, email=caller)
        async with ctx.connectors.open(info) as connector:
            extra = {"progress": progress} if progress is not None else {}
            importer = Importer(ctx.repository, info.name, connector, clock=ctx.clock, **extra)
            result = await importer.run(prepared.options)
    except BaseException as exc:
        _fail_if_running(ctx, prepared.run_id, exc)
        if prepared.new_endpoint:
            forget_new_endpoint(ctx, prepared.endpoint, exc)
        raise
    adopt_caller(ctx, prepared.endpoint, caller)
    return result


def _fail_if_running(ctx: AppContext, run_id: int, exc: BaseException) -> None:
    reason = str(exc) if isinstance(exc, SigsciIgaError) else type(exc).__name__
    with contextlib.suppress(SigsciIgaError):
        if ctx.repository.runs.get(run_id).status == "running":
            ctx.repository.runs.finish(run_id, status="failed", reason=reason or "failed")


async def run_import(
    ctx: AppContext,
    endpoint: str | None,
    *,
    mode: ImportMode = "auto",
    dry_run: bool = False,
    thresholds: ThresholdSettings | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Read the endpoint's target, diff it against the repository, then apply, hold or refuse.

    `auto` is incremental once a usable checkpoint exists. A held run changes nothing until
    `approve_run`.
    """
    prepared = prepare_import(ctx, endpoint, mode=mode, dry_run=dry_run, thresholds=thresholds)
    return await execute_import(ctx, prepared, progress=progress)


def abandon_stale_runs(ctx: AppContext) -> list[int]:
    """Close the runs left `running` by an importing process that died; returns their ids."""
    return ctx.repository.runs.abandon_stale(
        now=ctx.clock(), is_alive=_process_alive, max_age=MAX_RUN_AGE
    )


def _process_alive(owner: str) -> bool | None:
    """Whether `host:pid` still runs: None when it is another host's (it cannot be checked)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process: it exists.
        return True
    except OverflowError:
        return False
    return True


def approve_run(ctx: AppContext, run_id: int) -> RunRecord:
    """Apply exactly the held diff, and correlate as an import does; refused if the repo moved."""
    check_id(run_id, "run id")
    correlation_rule(ctx.settings.correlation_rule)
    return ctx.repository.runs.approve(run_id, correlation_rule=ctx.settings.correlation_rule)


def refuse_run(ctx: AppContext, run_id: int, reason: str | None = None) -> RunRecord:
    """Discard a held run (its diff is kept for the record)."""
    check_id(run_id, "run id")
    return ctx.repository.runs.refuse(run_id, reason)


def upgrade_database(ctx: AppContext) -> None:
    """Migrate the repository to the newest schema.

    Opening the repository migrates it, with a database that cannot be reached or opened
    reported as one clear error rather than the driver's exception.
    """
    _ = ctx.repository
