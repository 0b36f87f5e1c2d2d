"""The error tree: every class says what to do about it (fix config, fix credentials, retry, skip)."""

from __future__ import annotations

from typing import ClassVar


class SigsciIgaError(Exception):
    """Base of every error the project raises on purpose."""

    retryable: ClassVar[bool] = False
    #: Exit code the CLI uses when this error ends a command.
    exit_code: ClassVar[int] = 1


class ConfigError(SigsciIgaError):
    """The configuration is missing or wrong; fix it, retrying will not help."""

    exit_code = 2


class InvalidInputError(SigsciIgaError):
    """Input refused before anything was sent or written (a bad email, site name, file row)."""

    exit_code = 2


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

    exit_code = 3


class NotFoundError(ApiError):
    """The corp, user, site or member does not exist (the API says so with 400 or 404)."""

    exit_code = 4


class BadRequestError(ApiError):
    """The target refused the request as invalid; retrying the same request will not help."""


class ConflictError(ApiError):
    """The change conflicts with the target's state (for example inviting an existing user)."""


class RateLimitedError(ApiError):
    """The target throttled us (429, or 400 'Rate limit exceeded'); retry after a pause."""

    retryable = True
    exit_code = 5


class TransientError(ApiError):
    """A failure that may pass: 5xx, 524, timeouts, dropped connections, truncated bodies."""

    retryable = True
    exit_code = 5


class UnexpectedResponseError(ApiError):
    """The target answered something that cannot be trusted (a redirect, a wrong shape).

    Never read as "empty"; not retried automatically.
    """

    exit_code = 6
