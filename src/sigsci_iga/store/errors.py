"""Errors the repository raises; each says what to do next."""

from __future__ import annotations

from sigsci_iga.errors import SigsciIgaError


class StoreError(SigsciIgaError):
    """Base of repository errors."""


class RecordNotFoundError(StoreError):
    """The endpoint, run or account named does not exist in the repository; check the name."""

    exit_code = 4


class RunStateError(StoreError):
    """The run is not in a state that allows this (e.g. approving a run that is not held)."""


class RepositoryChangedError(StoreError):
    """The repository changed since the diff was computed; run the import again."""

    exit_code = 8


class TaskStateError(StoreError):
    """The task is not in a state that allows this (e.g. retrying a task that completed)."""


class LeaseLostError(StoreError):
    """This worker no longer holds the task: its lease expired and another worker took it over.

    Stop working on the task; whatever it still had to do is the new holder's job.
    """
