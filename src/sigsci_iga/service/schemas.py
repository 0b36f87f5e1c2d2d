"""The HTTP API's bodies: the same field names as the CLI's `--json` output."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sigsci_iga.domain.tasks import Operation, TaskState


class Body(BaseModel):
    """Request bodies refuse unknown fields: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Response bodies are read from the application layer's records."""

    model_config = ConfigDict(from_attributes=True)


class Endpoint(Out):
    name: str
    connector: str
    api_url: str
    corp: str
    email: str | None
    #: Secret name -> reference (`env:NAME`, `file:PATH`); never a secret's value.
    credentials: dict[str, str]
    checkpoint_at: datetime | None = None
    version: int
    created_at: datetime


class Account(Out):
    endpoint: str
    email: str
    name: str
    role: str
    status: str
    mfa_enabled: bool
    created: datetime | None
    sites: list[str]
    identity: str | None
    extra: dict[str, Any] = Field(default_factory=dict)


class AccountPage(BaseModel):
    items: list[Account]
    #: Pass as `cursor` to get the next page; null on the last page.
    next_cursor: str | None


class Change(Out):
    id: int
    run_id: int | None
    task_id: int | None
    endpoint: str | None
    object_type: str
    object_key: str
    field: str | None
    old_value: Any
    new_value: Any
    changed_at: datetime


class AccountDetail(BaseModel):
    account: Account
    history: list[Change]


class Entitlement(Out):
    endpoint: str
    type: str
    value: str
    display_name: str
    status: str
    holders: int


class Identity(Out):
    username: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    department: str | None = None
    manager: str | None = None
    status: str


class ImportStart(Body):
    endpoint: str | None = Field(default=None, description="Default: the configured corp.")
    mode: Literal["auto", "full", "incremental"] = "auto"
    dry_run: bool = False


class ImportAccepted(BaseModel):
    run_id: int
    endpoint: str
    mode: str


class Run(Out):
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


class PlanChange(BaseModel):
    field: str
    old: Any
    new: Any


class PlanItem(BaseModel):
    action: str
    object: str
    key: str
    changes: list[PlanChange]


class Plan(BaseModel):
    counts: dict[str, int]
    total: int
    items: list[PlanItem]
    truncated: bool


class RunDetail(BaseModel):
    run: Run
    #: The itemised plan of a held (or since approved or refused) run, or of a dry run; null
    #: otherwise.
    plan: Plan | None
    changes: list[Change]


class RefuseRun(Body):
    reason: str | None = Field(default=None, max_length=2000)


class AccessRequestIn(Body):
    endpoint: str | None = Field(default=None, description="Default: the configured corp.")
    operation: Operation
    email: str = Field(max_length=320)
    role: str | None = Field(default=None, max_length=64)
    sites: list[str] = Field(default_factory=list, max_length=1000)
    allow_no_sites: bool = False
    justification: str | None = Field(default=None, max_length=4000)


class RequestAccepted(BaseModel):
    request_id: str
    task_ids: list[int]


class Task(Out):
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


class JournalLine(Out):
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


class TaskDetail(BaseModel):
    task: Task
    journal: list[JournalLine]


class DiscontinueTask(Body):
    reason: str | None = Field(default=None, max_length=2000)


class Health(BaseModel):
    status: Literal["ok"]


class Fire(BaseModel):
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


class Schedule(BaseModel):
    id: int
    name: str
    job: str
    endpoint: str | None
    cron: str | None
    interval_seconds: int | None
    every: str | None
    timing: str
    timezone: str
    enabled: bool
    missed: str
    next_fire_at: datetime | None
    due: bool
    last_fire: Fire | None
    running: Fire | None
    anchor_at: datetime
    fires_from: datetime
    created_at: datetime
    updated_at: datetime


class ScheduleDetail(Schedule):
    fires: list[Fire]


class ScheduleIn(Body):
    name: str = Field(max_length=100)
    job: str = Field(max_length=64, description="import, import-full or provision.")
    every: str | None = Field(default=None, max_length=32, description="30s, 15m, 1h, 1d.")
    cron: str | None = Field(default=None, max_length=200)
    endpoint: str | None = Field(default=None, max_length=100)
    timezone: str = Field(default="UTC", max_length=64)
    missed: str = Field(default="skip", max_length=16, description="skip or run-all.")
    enabled: bool = True


class SchedulePatchIn(Body):
    """Fields left out keep their value."""

    name: str = Field(default="", max_length=100)
    job: str = Field(default="", max_length=64)
    every: str = Field(default="", max_length=32)
    cron: str = Field(default="", max_length=200)
    endpoint: str | None = Field(default=None, max_length=100)
    timezone: str = Field(default="UTC", max_length=64)
    missed: str = Field(default="skip", max_length=16)
    enabled: bool = True


class Token(BaseModel):
    name: str
    role: str
    state: str
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedToken(Token):
    #: The token itself, shown this once: keep it, the service stores only a keyed hash.
    token: str


class TokenIn(Body):
    name: str = Field(max_length=100)
    role: Literal["viewer", "requester", "approver", "admin"]
    expires: str | None = Field(
        default=None, max_length=16, description="30m, 12h, 90d, 2w or never (default 90d)."
    )
