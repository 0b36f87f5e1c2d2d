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
    HistoryRecord,
    IdentityLoadResult,
    IdentityRecord,
    JournalEntry,
    JournalRecord,
    RunRecord,
    TaskRecord,
    TokenCredential,
    TokenRecord,
)
from sigsci_iga.store.repository import Repository, open_repository

__all__ = [
    "AccountRecord",
    "Checkpoint",
    "CorrelationResult",
    "DatabaseOptions",
    "EndpointInfo",
    "EntitlementRecord",
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
    "StoreError",
    "TaskRecord",
    "TaskStateError",
    "TokenCredential",
    "TokenRecord",
    "create_engine_for",
    "normalize_url",
    "open_repository",
    "upgrade",
]
