"""The identity repository: tables, migrations, bulk apply and queries (no HTTP here)."""

from sigsci_iga.store.db import create_engine_for, normalize_url, open_repository, upgrade
from sigsci_iga.store.errors import (
    RecordNotFoundError,
    RepositoryChangedError,
    RunStateError,
    StoreError,
)
from sigsci_iga.store.records import (
    AccountRecord,
    Checkpoint,
    CorrelationResult,
    EndpointInfo,
    EntitlementRecord,
    HistoryRecord,
    IdentityLoadResult,
    IdentityRecord,
    RunRecord,
)
from sigsci_iga.store.repository import Repository

__all__ = [
    "AccountRecord",
    "Checkpoint",
    "CorrelationResult",
    "EndpointInfo",
    "EntitlementRecord",
    "HistoryRecord",
    "IdentityLoadResult",
    "IdentityRecord",
    "RecordNotFoundError",
    "Repository",
    "RepositoryChangedError",
    "RunRecord",
    "RunStateError",
    "StoreError",
    "create_engine_for",
    "normalize_url",
    "open_repository",
    "upgrade",
]
