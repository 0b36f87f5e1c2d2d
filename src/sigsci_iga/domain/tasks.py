"""The provisioning vocabulary: what a task does and the states it moves through."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sigsci_iga.domain.model import EntitlementType


class Operation(StrEnum):
    """One provisioning change to one account."""

    CREATE_ACCOUNT = "create_account"
    #: Changes the corp role (and nothing else): `request update-role`.
    UPDATE_ACCOUNT = "update_account"
    ADD_ACCESS = "add_access"
    REMOVE_ACCESS = "remove_access"
    REMOVE_ACCOUNT = "remove_account"

    @property
    def label(self) -> str:
        """The spelling people type and read (`create-account`)."""
        return self.value.replace("_", "-")


class TaskState(StrEnum):
    """new -> in_progress (leased) -> one of the final states, or back to new when rescheduled."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCONTINUED = "discontinued"
    NO_ACTION_REQUIRED = "no_action_required"

    @property
    def is_open(self) -> bool:
        """Still to run or running; later tasks of the same account wait for it."""
        return self in OPEN_STATES

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


#: States of a task that still has to run (or is running).
OPEN_STATES: frozenset[TaskState] = frozenset({TaskState.NEW, TaskState.IN_PROGRESS})
#: States a worker (or a person, for `discontinued`) ends a task in.
FINAL_STATES: frozenset[TaskState] = frozenset(set(TaskState) - OPEN_STATES)


def runs_alongside(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether a task may share a batch with its account's other such tasks (a site grant).

    Site grants of one account on different sites commute: each one's plan depends only on the
    account existing, its role and that one site, so any order ends the same. Everything else
    (create, remove, role changes, site removals, whose last-site guard reads the other sites)
    runs alone, in order.
    """
    return (
        operation == Operation.ADD_ACCESS
        and params.get("entitlement_type") == EntitlementType.SITE.value
    )
