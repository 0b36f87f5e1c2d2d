"""The error tree, and the one table that says what to do about each error.

Every error the project raises on purpose is a `SigsciIgaError`. What to do about it, the CLI's
exit code and the HTTP status a service answers with all come from `RULES`, looked up along the
class's method resolution order: the worker, the clients, the CLI and the API read it, and no
other place decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Recovery(StrEnum):
    """What to do about an error."""

    #: Throttled: the call was not applied; wait and send it again now.
    RETRY_IN_PLACE = "retry_in_place"
    #: May pass (5xx, timeouts, dropped connections): try again later, with backoff.
    RETRY_LATER = "retry_later"
    #: The target's state is not what was assumed: re-read it, then decide what is still needed.
    REREAD_THEN_DECIDE = "reread_then_decide"
    #: Settings, credentials or the target's address are wrong: a person must fix them.
    FIX_CONFIGURATION = "fix_configuration"
    #: Retrying the same thing will fail the same way: give up on it and say why.
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How an error class is handled: recovery, CLI exit code, HTTP status of the service."""

    recovery: Recovery
    exit_code: int
    http_status: int


class SigsciIgaError(Exception):
    """Base of every error the project raises on purpose."""

    @property
    def rule(self) -> ErrorRule:
        return rule_for(self)

    @property
    def recovery(self) -> Recovery:
        return rule_for(self).recovery

    @property
    def retryable(self) -> bool:
        """Worth sending again unchanged: an idempotent read may be retried in place."""
        return rule_for(self).recovery in (Recovery.RETRY_IN_PLACE, Recovery.RETRY_LATER)

    @property
    def exit_code(self) -> int:
        return rule_for(self).exit_code


class ConfigError(SigsciIgaError):
    """The configuration is missing or wrong; fix it, retrying will not help."""


class InvalidInputError(SigsciIgaError):
    """Input refused before anything was sent or written (a bad email, site name, file row)."""


class ApiError(SigsciIgaError):
    """A call to the target failed; carries the method, path, status and the server's short message.

    Never carries headers, tokens or full bodies: the message is safe to log and print.
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status: int | None,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        status = str(self.status) if self.status is not None else "no response"
        return f"{self.method} {self.path}: {status}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__ needs help to survive pickling (e.g. across processes).
        return (
            _rebuild_api_error,
            (type(self), self.method, self.path, self.status, self.message, self.retry_after),
        )


def _rebuild_api_error(
    cls: type[ApiError],
    method: str,
    path: str,
    status: int | None,
    message: str,
    retry_after: float | None,
) -> ApiError:
    return cls(method=method, path=path, status=status, message=message, retry_after=retry_after)


class AuthError(ApiError):
    """Credentials were refused (401/403): the token is wrong, expired or lacks the role."""


class NotFoundError(ApiError):
    """The corp, user, site or member does not exist (the API says so with 400 or 404)."""


class BadRequestError(ApiError):
    """The target refused the request as invalid; retrying the same request will not help."""


class ConflictError(ApiError):
    """The change conflicts with the target's state (for example inviting an existing user)."""


class RateLimitedError(ApiError):
    """The target throttled us (429, or 400 'Rate limit exceeded'); retry after a pause."""


class TransientError(ApiError):
    """A failure that may pass: 5xx, 524, timeouts, dropped connections, truncated bodies."""


class UnexpectedResponseError(ApiError):
    """The target answered something that cannot be trusted (a redirect, a wrong shape).

    Never read as "empty"; never retried unchanged.
    """


# -- the repository's errors ---------------------------------------------------------------------


class ProcessingError(SigsciIgaError):
    """Something in one task's own data made the worker fail on it; the task fails, others go on."""


class StoreError(SigsciIgaError):
    """Base of repository errors."""


class RecordNotFoundError(StoreError):
    """The endpoint, run, task or account named does not exist in the repository."""


class RunStateError(StoreError):
    """The run is not in a state that allows this (e.g. approving a run that is not held)."""


class RepositoryChangedError(StoreError):
    """The repository changed since the diff was computed; run the import again."""


class TaskStateError(StoreError):
    """The task is not in a state that allows this (e.g. retrying a task that completed)."""


class LeaseLostError(StoreError):
    """This worker no longer holds the task: its lease expired and another worker took it over.

    Stop working on the task; whatever it still had to do is the new holder's job.
    """


class ScheduleBusyError(StoreError):
    """A fire of the schedule is running; it cannot be run again until that one ends."""


class DatabaseUnavailableError(StoreError):
    """The repository's database cannot be opened or reached (path, server, database, driver)."""


class DatabaseBusyError(StoreError):
    """The database stayed locked, or a statement ran, longer than its configured timeout."""


class StorageFullError(StoreError):
    """The database has no space left to write; nothing of the change was kept."""


# -- the service's callers ------------------------------------------------------------------------


class AuthenticationError(SigsciIgaError):
    """No valid service token was presented (HTTP 401).

    The message is the same whatever was wrong, so a caller learns nothing about which part of
    a token failed; `reason` (missing, malformed, unknown, mismatch, expired, revoked) is for the
    server's own log and never for the response.
    """

    MESSAGE = (
        "authentication required: send a valid service token as 'Authorization: Bearer <token>'"
    )

    def __init__(self, reason: str = "unspecified") -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason,))


class RequestInProgressError(SigsciIgaError):
    """A request with this idempotency key is still being answered; ask again shortly."""


class PermissionDeniedError(SigsciIgaError):
    """The caller is authenticated, but its role does not grant the permission (HTTP 403)."""


#: The one table. A class without a row takes the row of its nearest ancestor that has one.
RULES: dict[type[SigsciIgaError], ErrorRule] = {
    SigsciIgaError: ErrorRule(Recovery.PERMANENT, 1, 500),
    ConfigError: ErrorRule(Recovery.FIX_CONFIGURATION, 2, 500),
    InvalidInputError: ErrorRule(Recovery.PERMANENT, 2, 422),
    ApiError: ErrorRule(Recovery.PERMANENT, 1, 502),
    AuthError: ErrorRule(Recovery.FIX_CONFIGURATION, 3, 502),
    NotFoundError: ErrorRule(Recovery.PERMANENT, 4, 404),
    BadRequestError: ErrorRule(Recovery.PERMANENT, 1, 502),
    ConflictError: ErrorRule(Recovery.REREAD_THEN_DECIDE, 1, 409),
    RateLimitedError: ErrorRule(Recovery.RETRY_IN_PLACE, 5, 429),
    TransientError: ErrorRule(Recovery.RETRY_LATER, 5, 503),
    # An answer that cannot be trusted is never read as data, and a write it answered may or
    # may not have landed: read the target again before deciding anything.
    UnexpectedResponseError: ErrorRule(Recovery.REREAD_THEN_DECIDE, 6, 502),
    ProcessingError: ErrorRule(Recovery.PERMANENT, 1, 500),
    StoreError: ErrorRule(Recovery.PERMANENT, 1, 500),
    RequestInProgressError: ErrorRule(Recovery.RETRY_LATER, 1, 409),
    RecordNotFoundError: ErrorRule(Recovery.PERMANENT, 4, 404),
    RunStateError: ErrorRule(Recovery.PERMANENT, 1, 409),
    RepositoryChangedError: ErrorRule(Recovery.REREAD_THEN_DECIDE, 8, 409),
    TaskStateError: ErrorRule(Recovery.PERMANENT, 1, 409),
    LeaseLostError: ErrorRule(Recovery.PERMANENT, 1, 409),
    ScheduleBusyError: ErrorRule(Recovery.RETRY_LATER, 1, 409),
    DatabaseUnavailableError: ErrorRule(Recovery.FIX_CONFIGURATION, 10, 503),
    DatabaseBusyError: ErrorRule(Recovery.RETRY_LATER, 10, 503),
    StorageFullError: ErrorRule(Recovery.FIX_CONFIGURATION, 10, 507),
    # Exit 3 like a token the target refused: both mean "these credentials will not do".
    AuthenticationError: ErrorRule(Recovery.FIX_CONFIGURATION, 3, 401),
    # Retrying with the same token fails the same way; a token with another role is needed.
    PermissionDeniedError: ErrorRule(Recovery.PERMANENT, 3, 403),
}


class Outcome(IntEnum):
    """Exit codes of outcomes that are not errors; with `RULES`' codes, the CLI's whole contract."""

    #: Done: nothing is held, pending or failed.
    DONE = 0
    #: Changes are pending or held: a dry run that would change something, a held import.
    PENDING = 7
    #: `journal verify` found a hash chain that does not hold.
    JOURNAL_BROKEN = 9
    #: Some tasks failed (a request, or `provision run`, left tasks `failed`).
    TASKS_FAILED = 11


def rule_for(error: SigsciIgaError | type[SigsciIgaError]) -> ErrorRule:
    """The row of `RULES` for an error or error class (its nearest ancestor's if it has none)."""
    cls = error if isinstance(error, type) else type(error)
    for klass in cls.__mro__:
        rule = RULES.get(klass)
        if rule is not None:
            return rule
    raise AssertionError(f"{cls.__name__} is not a SigsciIgaError")  # pragma: no cover
