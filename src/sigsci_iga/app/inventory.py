"""What the repository knows: accounts, entitlements, identities, runs, tasks and the journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sigsci_iga.app.context import AppContext
from sigsci_iga.app.endpoints import endpoint_name
from sigsci_iga.app.inputs import check_choice, check_count, check_id
from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.emails import normalize_email
from sigsci_iga.domain.model import AccountStatus, CorpRole, EntitlementStatus, EntitlementType
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

    `after` (an email) and `limit` page through them. A filter value the endpoint cannot have
    (a status, role or site it does not know) is refused with the values it does know, rather
    than answered with an empty list.
    """
    name = _checked_filters(ctx, endpoint, site=site, role=role, status=status, limit=limit)
    return ctx.repository.inventory.accounts(
        name, site=site, role=role, status=status, email=email, after=after, limit=limit
    )


def iter_accounts(
    ctx: AppContext,
    endpoint: str | None,
    *,
    site: str | None = None,
    role: str | None = None,
    status: str | None = None,
) -> Iterator[AccountRecord]:
    """`list_accounts` as a stream, for listings of a whole corp; filters are checked first."""
    name = _checked_filters(ctx, endpoint, site=site, role=role, status=status)
    return ctx.repository.inventory.iter_accounts(name, site=site, role=role, status=status)


def _checked_filters(
    ctx: AppContext,
    endpoint: str | None,
    *,
    site: str | None,
    role: str | None,
    status: str | None,
    limit: int | None = None,
) -> str:
    """The endpoint's name, once every filter value is one the endpoint can have."""
    if status is not None:
        check_choice(status, (s.value for s in AccountStatus), "status")
    if limit is not None:
        check_count(limit, "limit")
    name = endpoint_name(ctx, endpoint)
    inventory = ctx.repository.inventory
    if role is not None and role not in {r.value for r in CorpRole}:
        # Packages may name roles of their own: those the endpoint's accounts hold count too.
        held = set(inventory.roles(name))
        check_choice(role, {r.value for r in CorpRole} | held, "role")
    # One indexed lookup per page; the endpoint's sites (with holder counts) only for the error.
    if site is not None and not inventory.has_value(name, EntitlementType.SITE.value, site):
        sites = {e.value for e in inventory.entitlements(name, type=EntitlementType.SITE.value)}
        check_choice(site, sites, f"site (of endpoint {name!r})")
    return name


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
    """Entitlement values; an unknown type or status is refused with the known ones."""
    if status is not None:
        check_choice(status, (s.value for s in EntitlementStatus), "status")
    name = endpoint_name(ctx, endpoint)
    inventory = ctx.repository.inventory
    if type is not None and type not in {t.value for t in EntitlementType}:
        # A package's own entitlement types are known once they were imported.
        imported = {e.type for e in inventory.entitlements(name)}
        check_choice(type, {t.value for t in EntitlementType} | imported, "type")
    return inventory.entitlements(name, type=type, status=status)


def list_identities(ctx: AppContext) -> list[IdentityRecord]:
    return ctx.repository.identities.list()


def list_runs(ctx: AppContext, endpoint: str | None = None, *, limit: int = 50) -> list[RunRecord]:
    """Import runs, newest first (of every endpoint unless one is named)."""
    check_count(limit, "limit")
    if endpoint is not None:
        ctx.repository.endpoints.get(endpoint)
    return ctx.repository.runs.list(endpoint, limit=limit)


@dataclass(frozen=True)
class RunDetail:
    run: RunRecord
    changes: list[HistoryRecord]
    #: The diff stored with a held (or since approved or refused) run, or with a dry run.
    diff: Diff | None


def run_detail(ctx: AppContext, run_id: int, *, change_limit: int = 200) -> RunDetail:
    check_id(run_id, "run id")
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
    """Tasks, oldest first; an unknown state, a malformed email or endpoint is refused."""
    if state is not None:
        check_choice(str(state), (s.value for s in TaskState), "task state")
    key = normalize_email(email) if email is not None else None
    if endpoint is not None:
        ctx.repository.endpoints.get(endpoint)
    return ctx.repository.tasks.list(endpoint=endpoint, state=state, email=key)


@dataclass(frozen=True)
class TaskDetail:
    task: TaskRecord
    journal: list[JournalRecord]


def task_detail(ctx: AppContext, task_id: int) -> TaskDetail:
    check_id(task_id, "task id")
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
    if task_id is not None:
        check_id(task_id, "task id")
    if last is not None:
        check_count(last, "limit")
    target = normalize_email(email) if email is not None else None
    if endpoint is not None:
        ctx.repository.endpoints.get(endpoint)
    entries = ctx.repository.journal.list(endpoint=endpoint, task_id=task_id, target=target)
    return entries if last is None else entries[max(0, len(entries) - last) :]


def verify_journal(ctx: AppContext, endpoint: str | None = None) -> list[ChainReport]:
    """Check the journal's hash chains; each report names the first line that breaks one."""
    return ctx.repository.journal.verify(endpoint)
