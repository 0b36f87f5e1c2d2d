"""Pure domain types and functions: snapshots, the repository view, the diff and thresholds."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        CorpRole,
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

#: Where each name lives, imported on first use: the CLI reads `domain.text` and `domain.tasks`
#: to build its commands, and should not pay for the diff and the model to print `--help`.
_HOMES: dict[str, tuple[str, ...]] = {
    "sigsci_iga.domain.diff": (
        "AccountChange",
        "Diff",
        "DiffMode",
        "EntitlementChange",
        "FieldChange",
        "LinkRef",
        "NewEntitlement",
        "apply_to_view",
        "compute_diff",
        "compute_partial_diff",
    ),
    "sigsci_iga.domain.model": (
        "AccountSnapshot",
        "AccountState",
        "AccountStatus",
        "CorpRole",
        "CorpSnapshot",
        "CurrentCounts",
        "EntitlementState",
        "EntitlementStatus",
        "EntitlementType",
        "RepositoryView",
        "SiteSnapshot",
    ),
    "sigsci_iga.domain.thresholds": (
        "Limit",
        "Thresholds",
        "Verdict",
        "evaluate_thresholds",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AccountChange",
    "AccountSnapshot",
    "AccountState",
    "AccountStatus",
    "CorpRole",
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
