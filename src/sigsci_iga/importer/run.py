"""Import runs: read a corp through a connector, diff it against the repository, then apply, hold or refuse.

A run reads everything it needs first and validates it; a failed or suspicious read never reaches
the apply step, and the apply is one transaction. Incremental runs re-read only what the activity
feed names, and infer nothing from absence except a removal the feed reports and a re-read confirms.

Where a target writes site membership events is not known in advance: on the corp feed, on each
site's feed, or both. An endpoint learns it (`Checkpoint.membership_feed`): until the corp feed
has shown one, and for good once only a site feed has, incremental runs read every governed
site's feed too (see `_read_feeds` and docs/architecture.md for the cost in calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sigsci_iga.connectors.base import (
    AccountBatches,
    ChangeBatch,
    ChangeEvent,
    Connector,
    PageResult,
    require_caller,
)
from sigsci_iga.domain.diff import Diff, FullDiffStream, compute_diff, compute_partial_diff, join
from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.model import (
    AccountSnapshot,
    AccountStatus,
    CorpSnapshot,
    CurrentCounts,
    EntitlementStatus,
    EntitlementType,
    RepositoryView,
    SiteSnapshot,
)
from sigsci_iga.domain.thresholds import (
    Thresholds,
    Verdict,
    counts_needed,
    evaluate_summary,
    evaluate_thresholds,
)
from sigsci_iga.errors import ApiError, NotFoundError, SigsciIgaError, UnexpectedResponseError
from sigsci_iga.importer.screening import (
    CLOCK_SKEW,
    Screening,
    as_held,
    believable_events,
    known_roles,
    refuse_duplicate_emails,
    screen_account,
    screen_corp,
    screen_site,
    shown,
)
from sigsci_iga.importer.spool import DiffSpool
from sigsci_iga.store import Checkpoint, Repository, RunRecord
from sigsci_iga.store.identities import correlation_rule

ImportMode = Literal["auto", "full", "incremental"]
#: The activity feed keeps 30 days; a checkpoint older than this (with margin) cannot be trusted.
FEED_RETENTION = timedelta(days=30)
RETENTION_MARGIN = timedelta(hours=1)
#: Re-read this much before the checkpoint so events written while we read are not missed.
DEFAULT_OVERLAP = timedelta(minutes=5)
MAX_PAGES = 100_000
#: A membership event this much older than the corp feed's read, yet missing from it, shows the
#: corp feed does not carry them (younger ones may just have been written between the reads).
SITE_ONLY_EVIDENCE_AGE = timedelta(minutes=2)
#: Site feeds read at once (the client bounds requests in flight as well).
SITE_FEED_CONCURRENCY = 8
#: `Checkpoint.membership_feed` values.
CORP_FEED = "corp"
SITE_FEEDS = "sites"
#: An incremental run that touches more accounts than this loads the whole endpoint instead
#: (one scan is cheaper than that many lookups, and IN lists stay well within SQL limits).
PARTIAL_VIEW_LIMIT = 5_000

T = TypeVar("T")
#: `StreamingConnector.stream_accounts` of the connector at hand.
StreamAccounts = Callable[[AccountBatches], Awaitable[None]]
Progress = Callable[[str, int, int | None], None]


def _no_progress(_stage: str, _done: int, _total: int | None) -> None:
    return None


@dataclass(frozen=True)
class ImportOptions:
    mode: ImportMode = "auto"
    dry_run: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    overlap: timedelta = DEFAULT_OVERLAP
    correlation_rule: str = "email"
    #: The token owner must be in the users list; its absence means the list is not the corp's.
    required_account: str | None = None
    #: A run already recorded (`running`) for this import, so its id could be given out first.
    run_id: int | None = None


@dataclass(frozen=True)
class ImportResult:
    run: RunRecord
    mode: Literal["full", "incremental"]
    diff: Diff
    verdict: Verdict
    fallback_reason: str | None = None
    accounts_read: int = 0
    sites_read: int = 0
    events_read: int = 0
    #: Site activity feeds read besides the corp's (membership events may only be there).
    site_feeds_read: int = 0
    #: What was read but not believed (see `importer.screening`), one line each.
    warnings: tuple[str, ...] = ()


class IncompleteReadError(UnexpectedResponseError):
    """What the target returned cannot be the whole corp (for example an empty users list)."""


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector out of a full import's bulk work.

    Reading a corp allocates millions of objects that live until the run ends and hold no
    cycles; with the collector on, Python walks them again and again (seconds at 50,000 users).
    What existed before is frozen out of the collector's sight; both are undone afterwards, and
    a caller that had turned collection off keeps it off.
    """
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


async def _read_all(
    fetch: Callable[[str | None], Awaitable[PageResult[T]]],
    what: str,
    progress: Progress,
) -> list[T]:
    """Drive a connector's paging to the end, refusing pages that repeat earlier keys."""
    items: list[T] = []
    seen: set[str] = set()
    cursor: str | None = None
    for page_number in range(1, MAX_PAGES + 1):
        page = await fetch(cursor)
        repeated = seen.intersection(page.keys)
        if repeated:
            raise IncompleteReadError(
                method="GET",
                path=what,
                status=None,
                message=f"page {page_number} repeats {sorted(repeated)[0]!r}; paging would not end",
            )
        seen.update(page.keys)
        items.extend(page.items)
        progress(what, len(items), None)
        if page.next_cursor is None:
            return items
        if page.next_cursor == cursor:
            raise IncompleteReadError(
                method="GET", path=what, status=None, message="next page cursor did not move"
            )
        cursor = page.next_cursor
    raise IncompleteReadError(
        method="GET", path=what, status=None, message=f"more than {MAX_PAGES} pages"
    )


async def read_corp(
    connector: Connector, *, required_account: str | None, progress: Progress = _no_progress
) -> CorpSnapshot:
    """Read every account and site; raise rather than return anything partial or implausible."""
    accounts: list[AccountSnapshot] = await _read_all(connector.accounts_page, "accounts", progress)
    sites: list[SiteSnapshot] = await _read_all(connector.sites_page, "sites", progress)
    require_caller({a.email for a in accounts}, required_account, path="users")
    refuse_duplicate_emails(accounts, "accounts")
    return CorpSnapshot(accounts=tuple(accounts), sites=tuple(sites))


class Importer:
    """Runs imports for one endpoint of the repository through one connector."""

    def __init__(
        self,
        repository: Repository,
        endpoint: str,
        connector: Connector,
        *,
        clock: Callable[[], datetime] = _now,
        progress: Progress = _no_progress,
    ) -> None:
        self.repository = repository
        self.endpoint = endpoint
        self.connector = connector
        self.clock = clock
        self.progress = progress

    async def run(self, options: ImportOptions | None = None) -> ImportResult:
        """Run a full or incremental import; `auto` is incremental once a usable checkpoint exists."""
        options = options or ImportOptions()
        # An unknown rule must stop the run before anything is read or applied.
        correlation_rule(options.correlation_rule)
        mode, fallback = self.planned_mode(options.mode)
        if mode == "incremental":
            try:
                return await self._incremental(options)
            except _FeedUnavailableError as exc:
                fallback = f"activity feed unavailable ({exc.cause}); fell back to a full import"
        return await self._full(options, fallback)

    def planned_mode(self, mode: ImportMode) -> tuple[Literal["full", "incremental"], str | None]:
        return planned_mode(self.repository, self.endpoint, mode, self.clock())

    def _run_id(self, options: ImportOptions, mode: Literal["full", "incremental"]) -> int:
        if options.run_id is None:
            return self.repository.runs.start(self.endpoint, mode=mode, dry_run=options.dry_run)
        # The run was recorded before the mode was final (an incremental that fell back).
        self.repository.runs.set_mode(options.run_id, mode)
        return options.run_id

    async def _full(self, options: ImportOptions, fallback: str | None) -> ImportResult:
        run_id = self._run_id(options, "full")
        try:
            with _collector_paused():
                return await self._full_run(options, fallback, run_id)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise

    async def _full_run(
        self, options: ImportOptions, fallback: str | None, run_id: int
    ) -> ImportResult:
        # A connector that can hand its accounts over as they arrive (`StreamingConnector`).
        stream: StreamAccounts | None = getattr(self.connector, "stream_accounts", None)
        if stream is not None:
            return await self._streamed_full_run(stream, options, fallback, run_id)
        started = self.clock()
        snapshot = await read_corp(
            self.connector, required_account=options.required_account, progress=self.progress
        )
        view = self.repository.runs.load_view(self.endpoint)
        screening = Screening()
        accounts, sites = screen_corp(
            snapshot.accounts,
            snapshot.sites,
            view.accounts,
            known_roles(self.connector),
            screening,
        )
        # The screened corp replaces the one read, which is not kept alongside it.
        del snapshot
        snapshot = CorpSnapshot(accounts=tuple(accounts), sites=tuple(sites))
        del accounts, sites
        diff = compute_diff(view, snapshot, mode="full")
        accounts_read, sites_read = len(snapshot.accounts), len(snapshot.sites)
        # The diff holds what the apply needs; the corp as read (every account's sites) goes.
        del snapshot
        verdict = evaluate_thresholds(diff, view.counts(), options.thresholds)
        learned = self.repository.endpoints.get(self.endpoint).checkpoint.membership_feed
        checkpoint = Checkpoint(
            last_activity=started - options.overlap, event_ids=(), membership_feed=learned
        )
        run = self._conclude(run_id, diff, verdict, view.version, checkpoint, options)
        run = self._noted(run, screening)
        return ImportResult(
            warnings=tuple(screening.warnings),
            run=run,
            mode="full",
            diff=diff,
            verdict=verdict,
            fallback_reason=fallback,
            accounts_read=accounts_read,
            sites_read=sites_read,
        )

    async def _streamed_full_run(
        self,
        stream: StreamAccounts,
        options: ImportOptions,
        fallback: str | None,
        run_id: int,
    ) -> ImportResult:
        """A full run that diffs the accounts as they arrive and never holds the corp whole.

        The sites are read first (the accounts' memberships are screened against them); each
        batch of accounts is screened, diffed and written to a spool on disk; only when the read
        has ended, whole and believable, are the thresholds decided on the counts and the spool
        applied part by part in one transaction. A read that fails midway leaves only the spool,
        which goes with it.
        """
        started = self.clock()
        sites: list[SiteSnapshot] = await _read_all(
            self.connector.sites_page, "sites", self.progress
        )
        view = self.repository.runs.load_view(self.endpoint)
        read = _StreamedRead(
            view, sites, known_roles(self.connector), options.required_account, self.progress
        )
        try:
            await stream(read)
            head = read.finish()
            summary = read.spool.summary()
            for kind, counts in head.summary().items():
                for action, n in counts.items():
                    summary[kind][action] += n
            verdict = evaluate_summary(summary, view.counts(), options.thresholds)
            learned = self.repository.endpoints.get(self.endpoint).checkpoint.membership_feed
            checkpoint = Checkpoint(
                last_activity=started - options.overlap, event_ids=(), membership_feed=learned
            )
            if options.dry_run or verdict.held:
                # The plan is kept itemised, so the diff is joined whole for it (see
                # docs/architecture.md: a held or dry run of a whole corp costs its diff).
                diff = join((head, *read.spool))
                run = self._conclude(run_id, diff, verdict, view.version, checkpoint, options)
            else:
                self.progress("diff", 1, 1)
                self.progress("apply", 0, 1)
                run = self.repository.runs.apply_parts(
                    run_id,
                    head,
                    read.spool,
                    summary=summary,
                    base_version=view.version,
                    checkpoint=checkpoint,
                    correlation_rule=options.correlation_rule,
                )
                self.progress("apply", 1, 1)
                diff = _preview(head, read.spool, summary)
        finally:
            read.spool.close()
        run = self._noted(run, read.screening)
        return ImportResult(
            warnings=tuple(read.screening.warnings),
            run=run,
            mode="full",
            diff=diff,
            verdict=verdict,
            fallback_reason=fallback,
            accounts_read=read.accounts_read,
            sites_read=len(read.sites),
        )

    async def _incremental(self, options: ImportOptions) -> ImportResult:
        checkpoint = self.repository.endpoints.get(self.endpoint).checkpoint
        assert checkpoint.last_activity is not None
        since = checkpoint.last_activity - options.overlap
        try:
            feeds = await self._read_feeds(since, checkpoint.membership_feed)
        except ApiError as exc:
            raise _FeedUnavailableError(str(exc)) from exc
        run_id = self._run_id(options, "incremental")
        screening = Screening()
        roles = known_roles(self.connector)
        try:
            known = set(checkpoint.event_ids)
            events = [e for e in feeds.events if e.id not in known]
            self.progress("events", len(events), len(events))
            named = {e.email for e in events if e.email}
            # A membership event names a user and a site; re-reading the user (with its
            # memberships) covers it. Sites are re-read only for events about the site itself.
            sites = sorted({e.site for e in events if e.site and (not e.email or e.removes_site)})
            removed_emails = {e.email for e in events if e.removes_account and e.email}
            removed_sites = {e.site for e in events if e.removes_site and e.site}
            changed_sites = await self._reread_sites(sites, removed_sites, screening)
            emails = sorted(named | self._implied_rereads(changed_sites, removed_sites))
            # Only the accounts this run reads, and those holding a site confirmed deleted (its
            # links go with it), are loaded: the cost follows the changes, not the corp.
            deleted = [name for name, site in changed_sites.items() if site is None]
            loaded = set(emails) | self.repository.runs.account_emails(
                self.endpoint, sites=deleted, include_suspended=True
            )
            view = self.repository.runs.load_view(
                self.endpoint, None if len(loaded) > PARTIAL_VIEW_LIMIT else loaded
            )
            # A target that matches emails exactly knows a user by one spelling only: the one its
            # events write (the newest wins). It is taken as final unless the last import saw
            # another; accounts no event names are tried as last read, and checked if not found.
            spelled = {e.email: e.spelling for e in events if e.email and e.spelling}
            changed_accounts: dict[str, AccountSnapshot | None] = {}
            for done, email in enumerate(emails, 1):
                held = view.accounts.get(email)
                address = spelled.get(email) or (held.address if held is not None else email)
                confirmed = email in spelled and (held is None or held.address == address)
                account = await self.connector.read_account(address, confirmed=confirmed)
                if account is None:
                    if email in removed_emails:
                        changed_accounts[email] = None  # the feed says removed, a re-read agrees
                # One the screening skips (and reports) stays as the repository holds it.
                elif (screened := screen_account(account, roles, screening)) is not None:
                    changed_accounts[email] = screened
                self.progress("accounts", done, len(emails))
            diff = compute_partial_diff(view, changed_accounts, changed_sites)
            partial = len(loaded) <= PARTIAL_VIEW_LIMIT
            counts = self._counts(diff, options.thresholds) if partial else view.counts()
            verdict = evaluate_thresholds(diff, counts, options.thresholds)
            new_checkpoint = replace(
                _advance(
                    checkpoint,
                    believable_events(feeds.events, self.clock(), screening),
                    options.overlap,
                    self.clock(),
                ),
                membership_feed=feeds.membership_feed,
            )
            run = self._conclude(
                run_id,
                diff,
                verdict,
                view.version,
                new_checkpoint,
                options,
                correlate_only=changed_accounts if partial else None,
            )
            run = self._noted(run, screening)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        return ImportResult(
            warnings=tuple(screening.warnings),
            run=run,
            mode="incremental",
            diff=diff,
            verdict=verdict,
            accounts_read=len(changed_accounts),
            sites_read=len(changed_sites),
            events_read=len(events),
            site_feeds_read=feeds.site_feeds_read,
        )

    async def _reread_sites(
        self, sites: Sequence[str], removed_sites: set[str], screening: Screening
    ) -> dict[str, SiteSnapshot | None]:
        """The sites events name, as the target has them now; None: confirmed deleted."""
        changed_sites: dict[str, SiteSnapshot | None] = {}
        for done, name in enumerate(sites, 1):
            site = await self.connector.read_site(name)
            if site is None:
                if name in removed_sites:
                    changed_sites[name] = None
            # One the screening skips (and reports) stays as the repository holds it.
            elif (screened_site := screen_site(site, screening)) is not None:
                changed_sites[name] = screened_site
            self.progress("sites", done, len(sites))
        return changed_sites

    def _counts(self, diff: Diff, thresholds: Thresholds) -> CurrentCounts:
        """What the thresholds compare `diff` with, read only as far as they need."""
        cap = counts_needed(diff, thresholds)
        if cap == 0:
            return CurrentCounts(0, 0, 0)
        return self.repository.runs.counts(self.endpoint, cap=cap)

    def _implied_rereads(
        self, changed_sites: Mapping[str, SiteSnapshot | None], removed_sites: set[str]
    ) -> set[str]:
        """Accounts whose sites changed although no event names them.

        A site that exists now (new, or deleted and re-created) is implicitly held by the
        accounts whose role reaches every site (the connector's `all_sites_roles`, e.g. owners).
        A site deleted and re-created within the window lost every membership it had before the
        deletion; members added since are named by their own events. Suspended accounts are
        left alone.
        """
        present = {name for name, site in changed_sites.items() if site is not None}
        if not present:
            return set()
        all_sites_roles: frozenset[str] = getattr(self.connector, "all_sites_roles", frozenset())
        return self.repository.runs.account_emails(
            self.endpoint, roles=all_sites_roles, sites=present & removed_sites
        )

    async def _read_feeds(self, since: datetime, learned: str | None) -> _Feeds:
        """The corp feed, plus every governed site's feed unless the corp feed carries membership.

        Learned "corp" (the corp feed has shown a membership event): one feed. Otherwise, if this
        run's corp feed shows one, that settles it. Otherwise the feeds of the sites the
        repository holds active, minus those the corp feed says were deleted, plus those it says
        were created, are read too; a membership event found there but missing from the corp
        feed settles "sites" for good. Events seen on several feeds count once (by id).
        """
        started = self.clock()
        corp = await self.connector.changes_since(since)
        if learned == CORP_FEED or (learned is None and any(e.is_membership for e in corp.events)):
            return _Feeds(list(corp.events), CORP_FEED, 0)
        removed = {e.site for e in corp.events if e.site and e.removes_site}
        # Events about a site itself (newSite and the like): it may be new, or deleted and created
        # again within the window (the order of events in one instant is not known).
        named = {e.site for e in corp.events if e.site and not e.email and not e.removes_site}
        governed = {
            e.value
            for e in self.repository.inventory.entitlements(
                self.endpoint, type=EntitlementType.SITE.value, status=EntitlementStatus.ACTIVE
            )
        }
        names = sorted((governed - removed) | named)
        slots = asyncio.Semaphore(SITE_FEED_CONCURRENCY)

        async def site_feed(name: str) -> ChangeBatch:
            async with slots:
                try:
                    return await self.connector.changes_since(since, site=name)
                except NotFoundError:
                    if name not in removed:
                        raise
                    # Created and deleted within the window: its memberships went with it.
                    return ChangeBatch(events=())

        try:
            async with asyncio.TaskGroup() as group:
                reads = [group.create_task(site_feed(name)) for name in names]
        except ExceptionGroup as failed:
            # One feed that cannot be read fails them all (the others are cancelled): say why.
            raise failed.exceptions[0] from None
        self.progress("site feeds", len(names), len(names))
        corp_ids = {e.id for e in corp.events}
        corp_keys = {(e.kind, e.email, e.site) for e in corp.events}
        merged = {e.id: e for e in corp.events}
        only_on_sites = False
        for read in reads:
            for event in read.result().events:
                merged.setdefault(event.id, event)
                only_on_sites = only_on_sites or (
                    event.is_membership
                    and event.id not in corp_ids
                    and (event.kind, event.email, event.site) not in corp_keys
                    and event.created < started - SITE_ONLY_EVIDENCE_AGE
                )
        events = sorted(merged.values(), key=lambda e: (e.created, e.id))
        feed = SITE_FEEDS if learned == SITE_FEEDS or only_on_sites else None
        return _Feeds(events, feed, len(names))

    def _conclude(
        self,
        run_id: int,
        diff: Diff,
        verdict: Verdict,
        base_version: int,
        checkpoint: Checkpoint,
        options: ImportOptions,
        *,
        correlate_only: Collection[str] | None = None,
    ) -> RunRecord:
        self.progress("diff", 1, 1)
        if options.dry_run:
            counts = {**diff.summary(), "held": verdict.held, "reasons": verdict.reasons}
            return self.repository.runs.finish(
                run_id,
                status="succeeded",
                counts=counts,
                reason="dry run: nothing applied",
                diff=diff,
            )
        if verdict.held:
            return self.repository.runs.hold(
                run_id, diff=diff, base_version=base_version, reasons=verdict.reasons
            )
        self.progress("apply", 0, 1)
        run = self.repository.runs.apply(
            run_id,
            diff,
            base_version=base_version,
            checkpoint=checkpoint,
            correlation_rule=options.correlation_rule,
            correlate_only=correlate_only,
        )
        self.progress("apply", 1, 1)
        return run

    def _noted(self, run: RunRecord, screening: Screening) -> RunRecord:
        """The run with the screening's warnings kept in its counts (when there are any)."""
        if not screening.warnings:
            return run
        return self.repository.runs.add_warnings(run.id, screening.warnings)

    def _fail(self, run_id: int, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, SigsciIgaError) else f"{type(exc).__name__}: {exc}"
        # If the run already ended (e.g. held), the original error is what matters.
        with contextlib.suppress(SigsciIgaError):
            self.repository.runs.finish(
                run_id, status="failed", reason=reason or type(exc).__name__
            )


@dataclass(frozen=True)
class _Feeds:
    """The events of every feed read (oldest first, once each) and what they taught."""

    events: list[ChangeEvent]
    membership_feed: str | None
    site_feeds_read: int


def planned_mode(
    repository: Repository, endpoint: str, mode: ImportMode, now: datetime
) -> tuple[Literal["full", "incremental"], str | None]:
    """The mode a run of `mode` starts in, and why it is full when incremental was asked for.

    An incremental run still falls back to full if the feed cannot be read.
    """
    if mode == "full":
        return "full", None
    checkpoint = repository.endpoints.get(endpoint).checkpoint
    if checkpoint.last_activity is None:
        return "full", "no checkpoint yet; ran a full import"
    if checkpoint.last_activity > now + CLOCK_SKEW:
        return "full", "checkpoint dated in the future; ran a full import"
    if now - checkpoint.last_activity > FEED_RETENTION - RETENTION_MARGIN:
        return (
            "full",
            "checkpoint older than the activity feed's 30-day retention; ran a full import",
        )
    return "incremental", None


class _FeedUnavailableError(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _advance(
    checkpoint: Checkpoint, events: Sequence[ChangeEvent], overlap: timedelta, now: datetime
) -> Checkpoint:
    """Move the checkpoint to the newest event, remembering the ids the next overlap will re-read.

    Never past `now`: a checkpoint ahead of the clock would hide the events yet to come.
    """
    if not events:
        return checkpoint
    newest = max(e.created for e in events)
    if checkpoint.last_activity is not None:
        newest = max(newest, checkpoint.last_activity)
    newest = min(newest, now)
    window = newest - overlap
    # Every event the next read can return again was in this batch too (same feed, later start).
    keep = {e.id for e in events if e.created >= window}
    return Checkpoint(last_activity=newest, event_ids=tuple(sorted(keep)))


#: Items of each kind an applied streamed run keeps as its result's preview of the diff.
PREVIEW_ITEMS = 1_000
#: Accounts the repository holds but the read did not list, diffed and spooled per part.
ABSENT_BATCH = 2_000


class _StreamedRead:
    """A full read's accounts, screened and diffed batch by batch into a spool on disk.

    The same checks as `read_corp` and `screen_corp` make, one batch at a time: the caller must
    be listed, no email twice, accounts and memberships screened (a skipped account the
    repository holds stays as it was), memberships only of the sites read.
    """

    def __init__(
        self,
        view: RepositoryView,
        sites: Sequence[SiteSnapshot],
        roles: frozenset[str] | None,
        required_account: str | None,
        progress: Progress,
    ) -> None:
        self.view = view
        self.raw_sites = sites
        self.roles = roles
        self.required = email_key(required_account) if required_account else None
        self.progress = progress
        self.spool = DiffSpool()
        self.begin()

    def begin(self) -> None:
        self.spool.clear()
        self.screening = Screening()
        self.sites = [s for s in self.raw_sites if screen_site(s, self.screening) is not None]
        self.site_names = frozenset(s.name for s in self.sites)
        self.diff = FullDiffStream(self.view, self.sites)
        self.emails: set[str] = set()
        self.caller_listed = False
        self.accounts_read = 0

    def batch(self, accounts: list[AccountSnapshot]) -> None:
        kept: list[AccountSnapshot] = []
        held = self.view.accounts
        for account in accounts:
            key = account.email.lower()
            if key in self.emails:
                raise UnexpectedResponseError(
                    method="GET",
                    path="accounts",
                    status=None,
                    message=f"the accounts list names {shown(key)} twice; "
                    "the answer cannot be trusted",
                )
            self.emails.add(key)
            self.caller_listed = self.caller_listed or key == self.required
            screened = screen_account(account, self.roles, self.screening, self.site_names)
            if screened is None:
                previous = held.get(key)
                if previous is None or previous.status == AccountStatus.SUSPENDED:
                    continue
                screened = as_held(previous)
            if not screened.sites <= self.site_names:
                # A membership of a site that was skipped is no membership the repository holds.
                screened = replace(screened, sites=screened.sites & self.site_names)
            kept.append(screened)
        self.accounts_read += len(kept)
        self.spool.add(self.diff.accounts(kept))
        self.progress("accounts", self.accounts_read, None)

    def finish(self) -> Diff:
        """After the last batch: refuse a list that cannot be the corp's, spool the absent."""
        if not self.emails or (self.required is not None and not self.caller_listed):
            # The same refusal `require_caller` gives a listing held whole.
            require_caller(set(), self.required, path="users")
        for part in self.diff.absent(ABSENT_BATCH):
            self.spool.add(part)
        return self.diff.head()


def _preview(head: Diff, spool: DiffSpool, summary: Mapping[str, Mapping[str, int]]) -> Diff:
    """The first items of a spooled diff of each kind, with the whole diff's counts.

    Parts are read until about `PREVIEW_ITEMS` accounts' work is in, not to the end: at
    half a million accounts, reading the spool again only for a preview would cost seconds.
    """
    read: list[Diff] = [head]
    accounts = 0
    for part in spool:
        read.append(part)
        accounts += len(part.accounts_added) + len(part.accounts_changed)
        accounts += len(part.accounts_suspended) + len(part.accounts_reactivated)
        if accounts >= PREVIEW_ITEMS:
            break
    first = join(read)
    items: dict[str, Any] = {name: getattr(first, name)[:PREVIEW_ITEMS] for name in _ITEM_LISTS}
    return Diff(mode="full", counted=summary, **items)


_ITEM_LISTS = (
    "accounts_added",
    "accounts_changed",
    "accounts_suspended",
    "accounts_reactivated",
    "entitlements_added",
    "entitlements_changed",
    "entitlements_inactivated",
    "entitlements_reactivated",
    "links_added",
    "links_removed",
)
