"""Import runs: start, hold, apply, approve or refuse, and the view a diff is computed against."""

from __future__ import annotations

import builtins
import os
import socket
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.model import CurrentCounts, RepositoryView
from sigsci_iga.errors import RecordNotFoundError, RunStateError
from sigsci_iga.store import identities as identity_store
from sigsci_iga.store.apply import apply_diff, apply_diff_parts
from sigsci_iga.store.db import Database
from sigsci_iga.store.endpoints import find_endpoint_id, write_checkpoint
from sigsci_iga.store.records import (
    Checkpoint,
    RunRecord,
)
from sigsci_iga.store.tables import (
    endpoints,
    import_runs,
)
from sigsci_iga.store.view import account_emails, load_counts, load_view

RunMode = Literal["full", "incremental"]


def _now() -> datetime:
    return datetime.now(UTC)


def process_owner() -> str:
    """This process, as recorded with the runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Runs:
    """Import runs of every endpoint; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load_view(self, endpoint: str, emails: Collection[str] | None = None) -> RepositoryView:
        """The endpoint's current state for `compute_diff`, read as one consistent snapshot.

        With `emails`, only those accounts (see `store.view.load_view`).
        """
        with self._db.read(snapshot=True) as conn:
            return load_view(conn, find_endpoint_id(conn, endpoint), emails)

    def account_emails(
        self,
        endpoint: str,
        *,
        roles: Collection[str] = (),
        sites: Collection[str] = (),
        include_suspended: bool = False,
    ) -> set[str]:
        """Accounts with one of `roles` or holding one of `sites` (suspended ones if asked)."""
        with self._db.read() as conn:
            return account_emails(
                conn,
                find_endpoint_id(conn, endpoint),
                roles=roles,
                sites=sites,
                include_suspended=include_suspended,
            )

    def counts(self, endpoint: str, *, cap: int | None = None) -> CurrentCounts:
        """What thresholds compare removals with, each count stopping at `cap`."""
        with self._db.read(snapshot=True) as conn:
            return load_counts(conn, find_endpoint_id(conn, endpoint), cap)

    def start(
        self,
        endpoint: str,
        *,
        mode: RunMode = "full",
        dry_run: bool = False,
        owner: str | None = None,
    ) -> int:
        """Record a run as `running`, owned by this process unless `owner` says; returns its id."""
        with self._db.write() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            run_id = conn.execute(
                import_runs.insert().returning(import_runs.c.id),
                {
                    "endpoint_id": endpoint_id,
                    "mode": mode,
                    "dry_run": dry_run,
                    "status": "running",
                    "started_at": _now(),
                    "owner": owner or process_owner(),
                },
            ).scalar_one()
        return int(run_id)

    def set_mode(self, run_id: int, mode: RunMode) -> None:
        """Say which mode a running run ended up in (an incremental that fell back to full)."""
        with self._db.write() as conn:
            self._running(conn, run_id)
            conn.execute(import_runs.update().where(import_runs.c.id == run_id).values(mode=mode))

    def abandon_stale(
        self,
        *,
        now: datetime,
        is_alive: Callable[[str], bool | None],
        max_age: timedelta,
    ) -> builtins.list[int]:
        """Mark `failed` the runs still `running` whose process is gone; returns their ids.

        `is_alive(owner)` says True, False, or None when it cannot tell (another host); a run
        it cannot tell about is abandoned only once it is older than `max_age`.
        """
        with self._db.write() as conn:
            rows = conn.execute(
                sa.select(import_runs.c.id, import_runs.c.owner, import_runs.c.started_at).where(
                    import_runs.c.status == "running"
                )
            ).all()
            stale: builtins.list[tuple[int, str]] = []
            for run_id, owner, started in rows:
                alive = is_alive(owner) if owner else None
                if alive is False:
                    stale.append((run_id, f"abandoned: its process ({owner}) is gone"))
                elif alive is None and now - started > max_age:
                    stale.append((run_id, f"abandoned: still running after {max_age}"))
            for run_id, reason in stale:
                conn.execute(
                    import_runs.update()
                    .where(import_runs.c.id == run_id, import_runs.c.status == "running")
                    .values(status="failed", finished_at=now, reason=reason)
                )
        return [run_id for run_id, _ in stale]

    def finish(
        self,
        run_id: int,
        *,
        status: Literal["succeeded", "failed"],
        counts: Mapping[str, Any] | None = None,
        reason: str | None = None,
        diff: Diff | None = None,
    ) -> RunRecord:
        """End a running run without applying anything (a dry run, or a failure).

        A dry run keeps its `diff`, so its plan can be shown again later; it is never applied.
        """
        values: dict[str, Any] = {
            "status": status,
            "finished_at": _now(),
            "counts": _counts(counts),
            "reason": reason,
        }
        if diff is not None:
            values["diff"] = diff.to_json()
        with self._db.write() as conn:
            self._running(conn, run_id)
            conn.execute(import_runs.update().where(import_runs.c.id == run_id).values(values))
        return self.get(run_id)

    def hold(
        self, run_id: int, *, diff: Diff, base_version: int, reasons: builtins.list[str]
    ) -> RunRecord:
        """Store the diff of a run that exceeded thresholds; `approve_run` may apply it later."""
        with self._db.write() as conn:
            self._running(conn, run_id)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(
                    status="held",
                    finished_at=_now(),
                    counts=diff.summary(),
                    reason="; ".join(reasons),
                    diff=diff.to_json(),
                    base_version=base_version,
                )
            )
        return self.get(run_id)

    def apply(
        self,
        run_id: int,
        diff: Diff,
        *,
        base_version: int,
        checkpoint: Checkpoint | None = None,
        correlation_rule: str | None = None,
        correlate_only: Collection[str] | None = None,
    ) -> RunRecord:
        """Apply `diff` and mark the run succeeded, atomically; the checkpoint moves with it.

        With a `correlation_rule`, the endpoint's accounts (or only those `correlate_only`
        names) are correlated in the same transaction. Raises `RepositoryChangedError` if the
        endpoint is no longer at `base_version`.
        """
        rule = identity_store.correlation_rule(correlation_rule) if correlation_rule else None
        with self._db.write() as conn:
            endpoint_id = self._running(conn, run_id)
            now = _now()
            version = apply_diff(
                conn, endpoint_id, diff, run_id=run_id, expected_version=base_version, now=now
            )
            if checkpoint is not None:
                write_checkpoint(conn, endpoint_id, checkpoint)
            if rule is not None:
                identity_store.correlate(conn, endpoint_id, rule, emails=correlate_only)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(
                    status="succeeded",
                    finished_at=now,
                    counts=diff.summary(),
                    base_version=base_version,
                    applied_version=version,
                )
            )
        return self.get(run_id)

    def apply_parts(
        self,
        run_id: int,
        head: Diff,
        parts: Iterable[Diff],
        *,
        summary: Mapping[str, Mapping[str, int]],
        base_version: int,
        checkpoint: Checkpoint | None = None,
        correlation_rule: str | None = None,
    ) -> RunRecord:
        """`apply` for a diff given in parts (see `store.apply.apply_diff_parts`), atomically.

        `summary` is the whole diff's counts, recorded with the run; every part is applied in
        the one transaction, and the endpoint's accounts are all correlated.
        """
        rule = identity_store.correlation_rule(correlation_rule) if correlation_rule else None
        with self._db.write() as conn:
            endpoint_id = self._running(conn, run_id)
            now = _now()
            version = apply_diff_parts(
                conn,
                endpoint_id,
                head,
                parts,
                links_added=summary["links"]["added"],
                run_id=run_id,
                expected_version=base_version,
                now=now,
            )
            if checkpoint is not None:
                write_checkpoint(conn, endpoint_id, checkpoint)
            if rule is not None:
                identity_store.correlate(conn, endpoint_id, rule)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(
                    status="succeeded",
                    finished_at=now,
                    counts=_counts(summary),
                    base_version=base_version,
                    applied_version=version,
                )
            )
        return self.get(run_id)

    def approve(self, run_id: int, *, correlation_rule: str | None = None) -> RunRecord:
        """Apply exactly the held diff, if the repository is still at the version it was diffed on.

        Accounts are correlated as `apply_run` does. Raises `RepositoryChangedError` otherwise
        (the run stays held; import again instead).
        """
        rule = identity_store.correlation_rule(correlation_rule) if correlation_rule else None
        with self._db.write() as conn:
            row = self._run_row(conn, run_id)
            if row.status != "held" or row.diff is None or row.base_version is None:
                raise RunStateError(f"run {run_id} is {row.status}, only held runs can be approved")
            diff = Diff.from_json(row.diff)
            now = _now()
            version = apply_diff(
                conn,
                row.endpoint_id,
                diff,
                run_id=run_id,
                expected_version=row.base_version,
                now=now,
            )
            if rule is not None:
                identity_store.correlate(conn, row.endpoint_id, rule)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(status="approved", finished_at=now, applied_version=version)
            )
        return self.get(run_id)

    def refuse(self, run_id: int, reason: str | None = None) -> RunRecord:
        """Discard a held run; its diff is kept for the record but can no longer be applied."""
        with self._db.write() as conn:
            row = self._run_row(conn, run_id)
            if row.status != "held":
                raise RunStateError(f"run {run_id} is {row.status}, only held runs can be refused")
            values: dict[str, Any] = {"status": "refused", "finished_at": _now()}
            if reason:
                values["reason"] = f"{row.reason}; refused: {reason}" if row.reason else reason
            conn.execute(import_runs.update().where(import_runs.c.id == run_id).values(values))
        return self.get(run_id)

    def add_warnings(self, run_id: int, warnings: Sequence[str]) -> RunRecord:
        """Keep what an ended run read but did not believe, under its counts' `warnings`."""
        with self._db.write() as conn:
            row = self._run_row(conn, run_id)
            counts = {**(row.counts or {}), "warnings": list(warnings)}
            conn.execute(
                import_runs.update().where(import_runs.c.id == run_id).values(counts=counts)
            )
        return self.get(run_id)

    def get(self, run_id: int) -> RunRecord:
        with self._db.read() as conn:
            rows = conn.execute(_runs_query().where(import_runs.c.id == run_id)).all()
        if not rows:
            raise RecordNotFoundError(f"import run {run_id} does not exist")
        return _run_record(rows[0])

    def diff(self, run_id: int) -> Diff | None:
        """The diff stored with a held (or since approved/refused) run, or with a dry run."""
        with self._db.read() as conn:
            row = self._run_row(conn, run_id)
        return Diff.from_json(row.diff) if row.diff is not None else None

    def list(self, endpoint: str | None = None, *, limit: int = 50) -> builtins.list[RunRecord]:
        """Newest first."""
        query = _runs_query().order_by(import_runs.c.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        with self._db.read() as conn:
            return [_run_record(row) for row in conn.execute(query)]

    def latest_finished(self) -> builtins.list[RunRecord]:
        """The newest finished run of every endpoint and mode (for statistics)."""
        newest = (
            sa.select(sa.func.max(import_runs.c.id))
            .where(import_runs.c.finished_at.is_not(None))
            .group_by(import_runs.c.endpoint_id, import_runs.c.mode)
        )
        with self._db.read() as conn:
            rows = conn.execute(_runs_query().where(import_runs.c.id.in_(newest)))
            return [_run_record(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(import_runs.c.status, sa.func.count()).group_by(import_runs.c.status)
            )
            return {str(status): int(n) for status, n in rows}

    def _run_row(self, conn: Connection, run_id: int) -> Row[Any]:
        row = conn.execute(sa.select(import_runs).where(import_runs.c.id == run_id)).first()
        if row is None:
            raise RecordNotFoundError(f"import run {run_id} does not exist")
        return row

    def _running(self, conn: Connection, run_id: int) -> int:
        row = self._run_row(conn, run_id)
        if row.status != "running":
            raise RunStateError(f"run {run_id} is already {row.status}")
        return int(row.endpoint_id)


def _counts(counts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(counts) if counts is not None else None


def _runs_query() -> sa.Select[Any]:
    return sa.select(
        import_runs.c.id,
        endpoints.c.name.label("endpoint_name"),
        import_runs.c.mode,
        import_runs.c.dry_run,
        import_runs.c.status,
        import_runs.c.started_at,
        import_runs.c.finished_at,
        import_runs.c.counts,
        import_runs.c.reason,
        import_runs.c.base_version,
        import_runs.c.applied_version,
        import_runs.c.diff.is_not(None).label("has_diff"),
    ).join(endpoints, endpoints.c.id == import_runs.c.endpoint_id)


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        endpoint=row.endpoint_name,
        mode=row.mode,
        dry_run=bool(row.dry_run),
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=row.counts,
        reason=row.reason,
        base_version=row.base_version,
        applied_version=row.applied_version,
        has_diff=bool(row.has_diff),
    )
