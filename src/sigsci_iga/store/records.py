"""Plain records the repository returns to the importer and the CLI (never ORM objects)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sigsci_iga.domain.access import Role
from sigsci_iga.domain.model import AccountSnapshot, iso
from sigsci_iga.domain.tasks import Operation, TaskState


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the next incremental import starts: last activity seen and the ids at that time."""

    last_activity: datetime | None
    event_ids: tuple[str, ...] = ()
    #: Where the target's feeds showed site membership events: "corp" (the corp feed carries
    #: them), "sites" (only site feeds did), or None while not learned.
    membership_feed: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One governed endpoint; `settings` never holds secrets."""

    id: int
    name: str
    connector: str
    api_url: str
    corp: str
    email: str | None
    settings: dict[str, Any]
    checkpoint: Checkpoint
    version: int
    created_at: datetime
    #: Secret name -> reference (`env:NAME` or `file:PATH`); empty: the process settings' secrets.
    credentials: dict[str, str] = field(default_factory=dict)
    retired_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data = _jsonable(asdict(self))
        data["checkpoint"] = {
            "last_activity": iso(self.checkpoint.last_activity),
            "event_ids": list(self.checkpoint.event_ids),
            "membership_feed": self.checkpoint.membership_feed,
        }
        return data


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account for listing and detail; `sites` are sorted names of active site links."""

    endpoint: str
    email: str
    name: str
    role: str
    status: str
    mfa_enabled: bool
    created: datetime | None
    sites: list[str]
    identity: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class EntitlementRecord:
    """One entitlement value with the number of accounts holding it."""

    endpoint: str
    type: str
    value: str
    display_name: str
    status: str
    holders: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One identity from the identity source."""

    username: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    department: str | None = None
    manager: str | None = None
    status: str = "active"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One import run; `has_diff` says whether a held diff is stored."""

    id: int
    endpoint: str
    mode: str
    dry_run: bool
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any] | None
    reason: str | None
    base_version: int | None
    applied_version: int | None
    has_diff: bool

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One recorded change; values are decoded JSON."""

    id: int
    run_id: int | None
    endpoint: str | None
    object_type: str
    object_key: str
    field: str | None
    old_value: Any
    new_value: Any
    changed_at: datetime
    #: The provisioning task whose outcome made the change (`run_id` is None then).
    task_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class IdentityLoadResult:
    """What loading an identity file did."""

    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class CorrelationResult:
    """What a correlation pass did: links made, changed or cleared, and accounts left unmatched."""

    rule: str
    matched: int
    changed: int
    unmatched: int
    ambiguous: list[str]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One provisioning task: what to do to which account, and how far it got."""

    id: int
    endpoint: str
    operation: Operation
    email: str
    params: dict[str, Any]
    state: TaskState
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    request_id: str
    requester: str | None
    justification: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    write_sent: bool

    @property
    def is_open(self) -> bool:
        """Still to run or running; later tasks of the same account wait for it."""
        return self.state.is_open

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    """One journal line to append; `at` None means now, and secrets are refused in `detail`.

    Inside `record_intent`, `finish_task` and `reschedule_task`, fields left None (task_id,
    request_id, operation, target, attempt) are filled in from the task.
    """

    endpoint: str
    kind: str
    task_id: int | None = None
    request_id: str | None = None
    operation: str | None = None
    target: str | None = None
    attempt: int | None = None
    state_before: str | None = None
    state_after: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFinish:
    """One leased task to end: its final state, its journal lines and the accounts it changed."""

    task_id: int
    state: str
    error: str | None = None
    journal: Sequence[JournalEntry] = ()
    #: Email -> what the target now holds (None: the account is gone).
    account_changes: Mapping[str, AccountSnapshot | None] | None = None


@dataclass(frozen=True, slots=True)
class FinishResult:
    """What `Tasks.finish_many` ended, and why it left the others alone."""

    finished: list[TaskRecord]
    #: One line per task this worker no longer held (its lease ran out or it was discontinued).
    lost: list[str]


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal line as stored; the journal is append-only."""

    id: int
    at: datetime
    endpoint: str
    task_id: int | None
    request_id: str | None
    operation: str | None
    target: str | None
    attempt: int | None
    kind: str
    state_before: str | None
    state_after: str | None
    method: str | None
    path: str | None
    status: int | None
    error: str | None
    detail: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A service token as listed: never the token, its identifier or its hash."""

    name: str
    role: Role
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def state(self, now: datetime) -> str:
        """`revoked`, `expired` or `active` at `now`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class TokenCredential:
    """What verifying a token needs: its row id, its record and its stored keyed hash.

    The hash is derived from the token and the server key, so it is kept out of `repr`.
    """

    id: int
    record: TokenRecord
    token_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One schedule: a job, the endpoint it runs for, and when it fires.

    `endpoint` None means the endpoint the settings describe, resolved at each run. Exactly
    one of `cron` and `interval_seconds` is set.
    """

    id: int
    name: str
    job: str
    endpoint: str | None
    cron: str | None
    interval_seconds: int | None
    timezone: str
    enabled: bool
    missed: str
    anchor_at: datetime
    fires_from: datetime
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class FireRecord:
    """One fire of a schedule: when it was due, who ran it under which lease, and the outcome."""

    id: int
    schedule_id: int
    schedule: str
    fire_at: datetime
    trigger: str
    status: str
    attempts: int
    missed: int
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any] | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))
