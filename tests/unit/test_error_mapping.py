"""The status-code → error mapping, one rule at a time."""

from __future__ import annotations

import json
import pickle

import httpx
import pytest

from sigsci_iga.connectors.http.responses import (
    decode_json,
    error_for_response,
    error_for_transport,
    expect_shape,
)
from sigsci_iga.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    TransientError,
    UnexpectedResponseError,
)


def response(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = (
        b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    return httpx.Response(
        status, content=content, headers=headers or {"content-type": "application/json"}
    )


def mapped(status: int, body: object = None, **kw: object) -> ApiError | None:
    return error_for_response("GET", "/api/v0/corps/c/users", response(status, body, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_statuses_are_not_errors(status: int) -> None:
    assert mapped(status) is None


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_authentication_errors(status: int) -> None:
    error = mapped(status, {"message": "Unauthorized: You must be logged in to call this API"})
    assert isinstance(error, AuthError)
    assert not error.retryable
    assert error.status == status
    assert "You must be logged in" in error.message


def test_429_is_rate_limited_and_retryable() -> None:
    error = mapped(429, {"message": "Too many requests"})
    assert isinstance(error, RateLimitedError)
    assert error.retryable


def test_400_rate_limit_exceeded_message_is_rate_limited() -> None:
    assert isinstance(mapped(400, {"message": "Rate limit exceeded"}), RateLimitedError)
    assert isinstance(
        mapped(400, {"message": "API Rate limit exceeded, slow down"}), RateLimitedError
    )


def test_retry_after_seconds_are_honoured_when_present() -> None:
    error = mapped(
        429, {"message": "slow"}, headers={"content-type": "application/json", "retry-after": "7"}
    )
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Site not found"), (400, "ID not found"), (404, "Not Found"), (404, "anything")],
)
def test_not_found_comes_as_400_or_404(status: int, message: str) -> None:
    assert isinstance(mapped(status, {"message": message}), NotFoundError)


def test_existing_user_is_a_conflict() -> None:
    assert isinstance(mapped(400, {"message": "User already exists"}), ConflictError)
    assert isinstance(mapped(409, {"message": "Conflict"}), ConflictError)


def test_other_400_is_a_bad_request_that_is_not_retried() -> None:
    error = mapped(400, {"message": "invalid role"})
    assert isinstance(error, BadRequestError)
    assert not error.retryable


@pytest.mark.parametrize("status", [500, 502, 503, 524])
def test_server_errors_and_524_are_transient(status: int) -> None:
    error = mapped(status, b"<html>origin timeout</html>", headers={"content-type": "text/html"})
    assert isinstance(error, TransientError)
    assert error.retryable
    assert "non-JSON body (text/html" in error.message


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_any_redirect_is_refused_not_followed(status: int) -> None:
    error = mapped(
        status, b"<html>login</html>", headers={"location": "https://sso.example/login?t=secret"}
    )
    assert isinstance(error, UnexpectedResponseError)
    assert "/login" in error.message
    assert "secret" not in str(error)


def test_error_text_names_method_path_and_status_only() -> None:
    error = mapped(401, {"message": "Unauthorized"})
    assert str(error) == "GET /api/v0/corps/c/users: 401: Unauthorized"


def test_a_secret_echoed_by_the_server_is_scrubbed() -> None:
    error = error_for_response(
        "GET",
        "/p",
        response(400, {"message": "bad token tok-123456 given"}),
        secrets=["tok-123456"],
    )
    assert error is not None
    assert "tok-123456" not in str(error)
    assert "***" in error.message


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_transport_failures_are_transient(exc: httpx.TransportError) -> None:
    error = error_for_transport("GET", "/p", exc)
    assert isinstance(error, TransientError)
    assert error.status is None


def test_a_truncated_body_is_transient_not_empty() -> None:
    with pytest.raises(TransientError, match="truncated or non-JSON"):
        decode_json("GET", "/p", response(200, b'{"data": [{"email": "a@'))


def test_an_html_page_with_200_is_transient_not_data() -> None:
    with pytest.raises(TransientError, match="text/html"):
        decode_json(
            "GET", "/p", response(200, b"<html></html>", headers={"content-type": "text/html"})
        )


def test_204_and_empty_bodies_decode_to_none() -> None:
    assert decode_json("DELETE", "/p", response(204)) is None
    assert decode_json("PATCH", "/p", response(200, b"")) is None


def test_a_list_endpoint_without_a_data_list_cannot_be_trusted() -> None:
    with pytest.raises(UnexpectedResponseError, match="expected list"):
        expect_shape("GET", "/p", 200, {"users": []}, "list")
    with pytest.raises(UnexpectedResponseError, match="expected list"):
        expect_shape("GET", "/p", 200, [], "list")
    assert expect_shape("GET", "/p", 200, {"data": []}, "list") == {"data": []}


def test_api_errors_survive_pickling() -> None:
    error = mapped(429, {"message": "slow"})
    assert error is not None
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301  (our own object, round-tripped in-process)
    assert type(copy) is RateLimitedError
    assert str(copy) == str(error)
