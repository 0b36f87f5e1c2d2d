"""The identity repository: tables, migrations, bulk apply and queries (no HTTP here)."""

from sigsci_iga.errors import (
    LeaseLostError,
    RecordNotFoundError,
    RepositoryChangedError,
    RunStateError,
    StoreError,
    TaskStateError,
)
from sigsci_iga.store.db import DatabaseOptions, create_engine_for, normalize_url, upgrade
from sigsci_iga.store.records import (
    AccountRecord,
    Checkpoint,
    CorrelationResult,
    EndpointInfo,
    EntitlementRecord,
    FireRecord,
    HistoryRecord,
    IdentityLoadResult,
    IdentityRecord,
    JournalEntry,
    JournalRecord,
    RunRecord,
    ScheduleRecord,
    TaskRecord,
)
from sigsci_iga.store.repository import Repository, open_repository
from sigsci_iga.store.schedules import Claim, ScheduleRef, ScheduleState

__all__ = [
    "AccountRecord",
    "Checkpoint",
    "Claim",
    "CorrelationResult",
    "DatabaseOptions",
    "EndpointInfo",
    "EntitlementRecord",
    "FireRecord",
    "HistoryRecord",
    "IdentityLoadResult",
    "IdentityRecord",
    "JournalEntry",
    "JournalRecord",
    "LeaseLostError",
    "RecordNotFoundError",
    "Repository",
    "RepositoryChangedError",
    "RunRecord",
    "RunStateError",
    "ScheduleRecord",
    "ScheduleRef",
    "ScheduleState",
    "StoreError",
    "TaskRecord",
    "TaskStateError",
    "create_engine_for",
    "normalize_url",
    "open_repository",
    "upgrade",
]
