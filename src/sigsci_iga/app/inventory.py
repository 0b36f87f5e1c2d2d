"""What the repository knows: accounts, entitlements, identities, runs, tasks and the journal."""

from __future__ import annotations

from dataclasses import dataclass

from sigsci_iga.app.context import AppContext
from sigsci_iga.app.endpoints import endpoint_name
from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.tasks import TaskState
from sigsci_iga.store import (
    AccountRecord,
    EntitlementRecord,
    HistoryRecord,
    IdentityRecord,
    JournalRecord,
    RunRecord,
    TaskRecord,
)
from sigsci_iga.store.journal import ChainReport


def list_accounts(
    ctx: AppContext,
    endpoint: str | None,
    *,
    site: str | None = None,
    role: str | None = None,
    status: str | None = None,
    email: str | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[AccountRecord]:
    """Accounts sorted by email, each with its sorted active sites and identity.

    `after` (an email) and `limit` page through them.
    """
    name = endpoint_name(ctx, endpoint)
    return ctx.repository.inventory.accounts(
        name, site=site, role=role, status=status, email=email, after=after, limit=limit
    )


@dataclass(frozen=True)
class AccountDetail:
    account: AccountRecord
    history: list[HistoryRecord]


def account_detail(
    ctx: AppContext, endpoint: str | None, email: str, *, history_limit: int = 50
) -> AccountDetail:
    """One account (by email, any case) and its recorded changes, newest first."""
    name = endpoint_name(ctx, endpoint)
    record = ctx.repository.inventory.account(name, email)
    changes = ctx.repository.inventory.history(
        endpoint=name, object_key=record.email, limit=history_limit
    )
    return AccountDetail(record, changes)


def list_entitlements(
    ctx: AppContext, endpoint: str | None, *, type: str | None = None, status: str | None = None
) -> list[EntitlementRecord]:
    return ctx.repository.inventory.entitlements(
        endpoint_name(ctx, endpoint), type=type, status=status
    )


def list_identities(ctx: AppContext) -> list[IdentityRecord]:
    return ctx.repository.identities.list()


def list_runs(ctx: AppContext, endpoint: str | None = None, *, limit: int = 50) -> list[RunRecord]:
    """Import runs, newest first (of every endpoint unless one is named)."""
    return ctx.repository.runs.list(endpoint, limit=limit)


@dataclass(frozen=True)
class RunDetail:
    run: RunRecord
    changes: list[HistoryRecord]
    #: The diff stored with a held (or since approved or refused) run.
    held_diff: Diff | None


def run_detail(ctx: AppContext, run_id: int, *, change_limit: int = 200) -> RunDetail:
    repo = ctx.repository
    run = repo.runs.get(run_id)
    changes = repo.inventory.history(run_id=run_id, limit=change_limit)
    return RunDetail(run, changes, repo.runs.diff(run_id) if run.has_diff else None)


def list_tasks(
    ctx: AppContext,
    *,
    endpoint: str | None = None,
    state: TaskState | str | None = None,
    email: str | None = None,
) -> list[TaskRecord]:
    """Tasks, oldest first."""
    return ctx.repository.tasks.list(
        endpoint=endpoint, state=state, email=email_key(email) if email else None
    )


@dataclass(frozen=True)
class TaskDetail:
    task: TaskRecord
    journal: list[JournalRecord]


def task_detail(ctx: AppContext, task_id: int) -> TaskDetail:
    task = ctx.repository.tasks.get(task_id)
    return TaskDetail(task, ctx.repository.journal.list(task_id=task_id))


def list_journal(
    ctx: AppContext,
    *,
    endpoint: str | None = None,
    task_id: int | None = None,
    email: str | None = None,
    last: int | None = None,
) -> list[JournalRecord]:
    """Journal lines oldest first; `last` keeps only the newest that many."""
    entries = ctx.repository.journal.list(
        endpoint=endpoint, task_id=task_id, target=email_key(email) if email else None
    )
    return entries if last is None else entries[max(0, len(entries) - last) :]


def verify_journal(ctx: AppContext, endpoint: str | None = None) -> list[ChainReport]:
    """Check the journal's hash chains; each report names the first line that breaks one."""
    return ctx.repository.journal.verify(endpoint)
