"""Thresholds that hold an import for approval when it would remove too much at once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.model import CurrentCounts, EntitlementType

#: A run is held when it would remove more than this many items of a kind ...
DEFAULT_MAX_ITEMS = 10
#: ... or more than this share (in percent) of the kind's existing items.
DEFAULT_MAX_PERCENT = 10.0


@dataclass(frozen=True, slots=True)
class Limit:
    """Hold when removals exceed `absolute` OR `percent` of what exists; `None` disables one."""

    absolute: int | None = 10
    percent: float | None = 10.0

    def __post_init__(self) -> None:
        if self.absolute is not None and self.absolute < 0:
            raise ValueError("absolute limit must be >= 0")
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ValueError("percent limit must be between 0 and 100")

    def exceeded(self, removed: int, existing: int) -> str | None:
        """Why `removed` of `existing` is too many, or None."""
        if removed == 0:
            return None
        if self.absolute is not None and removed > self.absolute:
            return f"{removed} > {self.absolute}"
        if self.percent is not None and existing > 0:
            share = removed * 100.0 / existing
            if share > self.percent:
                return f"{removed} of {existing} ({share:.1f}% > {self.percent:g}%)"
        return None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-kind limits; defaults hold above 10 items or 10% of existing ones."""

    accounts_suspended: Limit = field(default_factory=Limit)
    links_removed: Limit = field(default_factory=Limit)
    sites_inactivated: Limit = field(default_factory=Limit)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a diff is held, and why (one reason per exceeded limit)."""

    held: bool
    reasons: list[str]


def evaluate_thresholds(
    diff: Diff, current_counts: CurrentCounts, thresholds: Thresholds | None = None
) -> Verdict:
    """Compare the removals in `diff` with the limits, relative to the current counts."""
    return evaluate_summary(diff.summary(), current_counts, thresholds)


def evaluate_summary(
    summary: Mapping[str, Mapping[str, int]],
    current_counts: CurrentCounts,
    thresholds: Thresholds | None = None,
) -> Verdict:
    """`evaluate_thresholds` from a diff's counts (`Diff.summary()`), for a diff not held whole."""
    limits = thresholds or Thresholds()
    checks = (
        (
            "accounts to suspend",
            limits.accounts_suspended,
            summary["accounts"]["suspended"],
            current_counts.accounts,
        ),
        (
            "links to remove",
            limits.links_removed,
            summary["links"]["removed"],
            current_counts.links,
        ),
        (
            "sites to inactivate",
            limits.sites_inactivated,
            summary[EntitlementType.SITE.value]["inactivated"],
            current_counts.sites,
        ),
    )
    reasons = []
    for label, limit, removed, existing in checks:
        why = limit.exceeded(removed, existing)
        if why is not None:
            reasons.append(f"{label}: {why}")
    return Verdict(held=bool(reasons), reasons=reasons)


#: A bound this large is no saving: count exactly.
_EXACT_ABOVE = 2**31


def counts_needed(diff: Diff, thresholds: Thresholds | None = None) -> int | None:
    """How far the current counts must be read for `evaluate_thresholds` to decide `diff`.

    A percent limit can only be exceeded while a count is below `removed * 100 / percent`, so a
    count stopped at the returned bound gives the same verdict, and the same reasons, as the
    exact one. 0: the diff removes nothing a percent limit checks; None: exact counts needed.
    """
    limits = thresholds or Thresholds()
    sites_inactivated = sum(
        1 for e in diff.entitlements_inactivated if e.type == EntitlementType.SITE
    )
    needed = 0
    for limit, removed in (
        (limits.accounts_suspended, len(diff.accounts_suspended)),
        (limits.links_removed, len(diff.links_removed)),
        (limits.sites_inactivated, sites_inactivated),
    ):
        if removed == 0 or limit.percent is None:
            continue
        bound = removed * 100.0 / limit.percent if limit.percent > 0 else math.inf
        if bound >= _EXACT_ABOVE:
            # Any removal is too many (or nearly): the reason names the exact count.
            return None
        needed = max(needed, int(bound) + 1)
    return needed
