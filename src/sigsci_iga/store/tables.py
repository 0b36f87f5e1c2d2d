"""Repository tables (SQLAlchemy Core); `migrations/versions` creates exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from sigsci_iga.domain.access import Role
from sigsci_iga.domain.schedules import FireStatus, FireTrigger, MissedPolicy
from sigsci_iga.domain.tasks import FINAL_STATES, OPEN_STATES, Operation, TaskState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON everywhere, JSONB on PostgreSQL (smaller, comparable)."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


def big_id() -> sa.types.TypeEngine[int]:
    """64-bit ids on PostgreSQL; SQLite needs plain INTEGER to alias the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


ACCOUNT_STATUSES = ("active", "pending", "suspended")
ENTITLEMENT_STATUSES = ("active", "inactive")
CONNECTOR_KINDS = ("signalsciences", "rest")
RUN_MODES = ("full", "incremental")
RUN_STATUSES = ("running", "succeeded", "failed", "held", "approved", "refused")
TASK_OPERATIONS = tuple(op.value for op in Operation)
TASK_STATES = tuple(state.value for state in TaskState)
#: States of a task that still has to run (or is running); later tasks of its account wait.
OPEN_TASK_STATES = tuple(state.value for state in TaskState if state in OPEN_STATES)
#: States `finish_task` may set.
FINAL_TASK_STATES = tuple(state.value for state in TaskState if state in FINAL_STATES)
TOKEN_ROLES = tuple(role.value for role in Role)
MISSED_POLICIES = tuple(policy.value for policy in MissedPolicy)
FIRE_STATUSES = tuple(status.value for status in FireStatus)
FIRE_TRIGGERS = tuple(trigger.value for trigger in FireTrigger)
JOURNAL_KINDS = ("requested", "claimed", "snapshot", "intent", "call", "state", "note")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("department", sa.String(255)),
    sa.Column("manager", sa.String(255)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("extra", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("connector", sa.String(32), nullable=False),
    sa.Column("api_url", sa.String(500), nullable=False),
    sa.Column("corp", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320)),
    # Non-secret connection settings only: tokens and passwords come from the environment.
    sa.Column("settings", json_type(), nullable=False),
    sa.Column("checkpoint_at", UTCDateTime()),
    sa.Column("checkpoint_event_ids", json_type(), nullable=False),
    # Which activity feeds show site membership events, once learned (importer.run).
    sa.Column("checkpoint_membership_feed", sa.String(16)),
    # Bumped by every apply; a held run may be approved only against the version it was diffed on.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # References to secrets (`env:NAME`, `file:PATH`) by secret name; never a secret's value.
    sa.Column("credentials", json_type()),
    sa.Column("retired_at", UTCDateTime()),
    # The head of the endpoint's journal chain: its last sequence number and hash.
    sa.Column("journal_seq", sa.BigInteger),
    sa.Column("journal_head", sa.String(64)),
    sa.CheckConstraint(_in("connector", CONNECTOR_KINDS), name="connector"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("mfa_enabled", sa.Boolean, nullable=False),
    sa.Column("created", UTCDateTime()),
    sa.Column("extra", json_type(), nullable=False),
    sa.Column(
        "identity_id",
        sa.Integer,
        sa.ForeignKey("identities.id", ondelete="SET NULL"),
        index=True,
    ),
    sa.UniqueConstraint("endpoint_id", "email"),
    sa.CheckConstraint(_in("status", ACCOUNT_STATUSES), name="status"),
)

entitlement_types = sa.Table(
    "entitlement_types",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(64), nullable=False),
    sa.UniqueConstraint("endpoint_id", "name"),
)

entitlement_values = sa.Table(
    "entitlement_values",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "type_id",
        sa.Integer,
        sa.ForeignKey("entitlement_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("value", sa.String(500), nullable=False),
    sa.Column("display_name", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.UniqueConstraint("type_id", "value"),
    sa.CheckConstraint(_in("status", ENTITLEMENT_STATUSES), name="status"),
)

account_entitlements = sa.Table(
    "account_entitlements",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "value_id",
        sa.Integer,
        sa.ForeignKey("entitlement_values.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

import_runs = sa.Table(
    "import_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("counts", json_type()),
    sa.Column("reason", sa.Text),
    sa.Column("diff", json_type()),
    sa.Column("base_version", sa.Integer),
    sa.Column("applied_version", sa.Integer),
    # The importing process (`host:pid`): a run still `running` whose process is gone was
    # abandoned, and the next import says so instead of leaving it running for good.
    sa.Column("owner", sa.String(200)),
    sa.CheckConstraint(_in("mode", RUN_MODES), name="mode"),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
)

history = sa.Table(
    "history",
    metadata,
    sa.Column("id", big_id(), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("import_runs.id", ondelete="SET NULL"),
        index=True,
    ),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
    ),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_key", sa.String(1000), nullable=False),
    sa.Column("field", sa.String(64)),
    # JSON-encoded text: one column type for strings, booleans, dates and dicts on both backends.
    sa.Column("old_value", sa.Text),
    sa.Column("new_value", sa.Text),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    # The provisioning task whose outcome made the change (run_id is NULL then); no foreign key,
    # so the column could be added to existing databases without rebuilding the table.
    sa.Column("task_id", sa.Integer, index=True),
    sa.Index(
        "ix_history_endpoint_id_object_type_object_key", "endpoint_id", "object_type", "object_key"
    ),
    sa.Index("ix_history_changed_at", "changed_at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("operation", sa.String(32), nullable=False),
    # Always lower-case: tasks of one account are ordered by (endpoint_id, email).
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("params", json_type(), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default=sa.text("10")),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("last_error", sa.Text),
    # One request (one CLI call, one approved access request) may create several tasks.
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("requester", sa.String(320)),
    sa.Column("justification", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", UTCDateTime()),
    # Sticky: once an attempt said it is about to write, later attempts must re-read the target
    # before acting, since the write may have landed even though the attempt never saw the answer.
    sa.Column("write_sent", sa.Boolean, nullable=False),
    sa.Index("ix_tasks_state_next_attempt_at", "state", "next_attempt_at"),
    sa.Index("ix_tasks_endpoint_id_email", "endpoint_id", "email"),
    sa.CheckConstraint(_in("operation", TASK_OPERATIONS), name="operation"),
    sa.CheckConstraint(_in("state", TASK_STATES), name="state"),
)

# Append-only: the repository offers no update or delete, and triggers created by migration 0002
# refuse UPDATE and DELETE on both backends. Foreign keys have no ON DELETE action on purpose:
# the journal outlives nothing it refers to, so deleting a journalled task or endpoint fails.
journal = sa.Table(
    "journal",
    metadata,
    sa.Column("id", big_id(), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("endpoint_id", sa.Integer, sa.ForeignKey("endpoints.id"), nullable=False),
    sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id"), index=True),
    sa.Column("request_id", sa.String(64), index=True),
    sa.Column("operation", sa.String(32)),
    sa.Column("target", sa.String(320)),
    sa.Column("attempt", sa.Integer),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state_before", sa.String(24)),
    sa.Column("state_after", sa.String(24)),
    sa.Column("method", sa.String(16)),
    sa.Column("path", sa.String(2000)),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("detail", json_type()),
    # The hash chain (see store/journal.py): position in the endpoint's chain, the previous
    # line's hash and this line's.
    sa.Column("seq", sa.BigInteger),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("chain_hash", sa.String(64)),
    sa.Index("ix_journal_endpoint_id_target", "endpoint_id", "target"),
    sa.Index("ix_journal_endpoint_id_seq", "endpoint_id", "seq", unique=True),
    sa.CheckConstraint(_in("kind", JOURNAL_KINDS), name="kind"),
)

# Service tokens for the HTTP API. Only a keyed hash of each token is kept (HMAC-SHA256 with a
# server key that is never stored here), so neither this table nor a backup of it lets anyone
# call the API, and a row written by someone without the key matches no token. Revoked and
# expired rows stay: they say who could do what, and when.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Never reused, even once revoked: the journal names requesters by token name.
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    # The token's identifier part: finds the row; proves nothing on its own.
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(320)),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("revoked_by", sa.String(320)),
    sa.CheckConstraint(_in("role", TOKEN_ROLES), name="role"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    # No CHECK on purpose: a new kind of job must not need a migration. The application
    # refuses kinds it does not know, and a fire of one it cannot run fails with the reason.
    sa.Column("job", sa.String(64), nullable=False),
    # NULL: the endpoint the settings describe (the configured corp), resolved at each run.
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
        index=True,
    ),
    sa.Column("cron", sa.String(200)),
    sa.Column("interval_seconds", sa.Integer),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("missed", sa.String(16), nullable=False),
    # Intervals count from here (midnight of the day they were set, in the schedule's zone).
    sa.Column("anchor_at", UTCDateTime(), nullable=False),
    # No fire time at or before this is due: set on creation, on resume and when the timing
    # changes, so a paused or re-timed schedule does not catch up on what it was not meant to run.
    sa.Column("fires_from", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "(cron IS NULL AND interval_seconds IS NOT NULL AND interval_seconds > 0)"
        " OR (cron IS NOT NULL AND interval_seconds IS NULL)",
        name="timing",
    ),
    sa.CheckConstraint(_in("missed", MISSED_POLICIES), name="missed"),
)

# One row per fire time of a schedule (and per manual run). The unique (schedule_id, fire_at)
# key is what stops two scheduler processes from running one fire twice: the second insert
# does nothing. A fire runs under a lease its runner renews; an expired lease means the runner
# died, and the fire may be claimed again.
schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("id", big_id(), primary_key=True),
    sa.Column(
        "schedule_id",
        sa.Integer,
        sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("fire_at", UTCDateTime(), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Claims so far; a fire abandoned by too many runners fails instead of looping.
    sa.Column("attempts", sa.Integer, nullable=False),
    # Earlier fire times this one stands for that did not run (the missed-run policy).
    sa.Column("missed", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("summary", json_type()),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("schedule_id", "fire_at"),
    sa.Index("ix_schedule_fires_status", "status"),
    sa.CheckConstraint(_in("trigger", FIRE_TRIGGERS), name="trigger"),
    sa.CheckConstraint(_in("status", FIRE_STATUSES), name="status"),
)

# What an API POST with an `Idempotency-Key` answered, so a replay gets the same answer. The
# scope is the caller, the method and the path: one caller's key never meets another's.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(400), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("response", json_type()),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.CheckConstraint(_in("state", ("running", "done")), name="state"),
)
