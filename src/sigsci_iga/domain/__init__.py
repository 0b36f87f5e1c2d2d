"""Pure domain types and functions: snapshots, the repository view, the diff and thresholds."""

from sigsci_iga.domain.diff import (
    AccountChange,
    Diff,
    DiffMode,
    EntitlementChange,
    FieldChange,
    LinkRef,
    NewEntitlement,
    apply_to_view,
    compute_diff,
    compute_partial_diff,
)
from sigsci_iga.domain.model import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    CorpSnapshot,
    CurrentCounts,
    EntitlementState,
    EntitlementStatus,
    EntitlementType,
    RepositoryView,
    SiteSnapshot,
)
from sigsci_iga.domain.thresholds import (
    Limit,
    Thresholds,
    Verdict,
    evaluate_thresholds,
)

__all__ = [
    "AccountChange",
    "AccountSnapshot",
    "AccountState",
    "AccountStatus",
    "CorpSnapshot",
    "CurrentCounts",
    "Diff",
    "DiffMode",
    "EntitlementChange",
    "EntitlementState",
    "EntitlementStatus",
    "EntitlementType",
    "FieldChange",
    "Limit",
    "LinkRef",
    "NewEntitlement",
    "RepositoryView",
    "SiteSnapshot",
    "Thresholds",
    "Verdict",
    "apply_to_view",
    "compute_diff",
    "compute_partial_diff",
    "evaluate_thresholds",
]
