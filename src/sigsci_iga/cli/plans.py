"""An import's itemised plan on the terminal: what it adds, changes, suspends and removes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sigsci_iga.cli.output import fail, say, show_table
from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.plan import ACTIONS, plan_json
from sigsci_iga.errors import InvalidInputError

#: Items shown unless `--limit` or `--all` says otherwise; the counts always cover every item.
DEFAULT_PLAN_ITEMS = 50

PlanLimit = Annotated[
    int,
    typer.Option(
        "--limit",
        help=f"Show at most this many plan items (default {DEFAULT_PLAN_ITEMS}); "
        "the counts cover all of them.",
    ),
]
PlanAll = Annotated[bool, typer.Option("--all", help="Show every plan item (overrides --limit).")]


def plan_limit(limit: int, every: bool) -> int | None:
    """How many items to show: None for all; a limit below 1 is a mistake, not "none"."""
    if every:
        return None
    if limit < 1:
        fail(InvalidInputError(f"--limit must be a whole number from 1 up, not {limit}"))
    return limit


def build_plan(diff: Diff, limit: int | None) -> dict[str, Any]:
    """The plan as the HTTP API returns it (`GET /api/v1/runs/{id}`: `plan`)."""
    return plan_json(diff, limit=limit)


def _value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return str(value)


def render_plan(plan: dict[str, Any]) -> None:
    """The counts per action, then one row per changed field (old and new), then what was left out."""
    counts = {action: n for action, n in plan["counts"].items() if n}
    if not counts:
        say("plan: no changes")
        return
    ordered = sorted(counts, key=lambda a: ACTIONS.index(a) if a in ACTIONS else len(ACTIONS))
    say("plan: " + ", ".join(f"{counts[a]} {a}" for a in ordered))
    rows: list[tuple[str, str, str, str, str, str]] = []
    for item in plan["items"]:
        changes = item["changes"] or [None]
        for index, change in enumerate(changes):
            head = (item["action"], item["object"], item["key"]) if index == 0 else ("", "", "")
            if change is None:
                rows.append((*head, "", "", ""))
            else:
                rows.append((*head, change["field"], _value(change["old"]), _value(change["new"])))
    show_table(("action", "object", "key", "field", "old", "new"), rows)
    shown, total = len(plan["items"]), plan["total"]
    if shown < total:
        say(f"showing {shown} of {total} items; pass --limit N or --all to see more")
