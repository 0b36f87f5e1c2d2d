"""Errors as RFC 9457 problem details, with the HTTP status the error table gives each class."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sigsci_iga.errors import ApiError, SigsciIgaError, rule_for

MEDIA_TYPE = "application/problem+json"
#: What a client is told to wait after a 429 or 503 when the cause gives no better figure.
DEFAULT_RETRY_AFTER = 5


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    #: The error class, as a stable machine-readable name (e.g. `InvalidInputError`).
    code: str | None = None
    #: What to do about it (`errors.Recovery`).
    recovery: str | None = None
    #: Where in the request a validation problem is (for 422s from request parsing).
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int,
    detail: str | None,
    *,
    request: Request | None = None,
    code: str | None = None,
    recovery: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    """One problem+json response; 429 and 503 always carry Retry-After."""
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=str(request.url.path) if request is not None else None,
        code=code,
        recovery=recovery,
        errors=errors,
    )
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (429, 503):
        wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


def install(app: FastAPI) -> None:
    """Answer every error the service knows with problem+json."""

    @app.exception_handler(SigsciIgaError)
    async def _project_error(request: Request, exc: SigsciIgaError) -> JSONResponse:
        rule = rule_for(exc)
        retry_after = exc.retry_after if isinstance(exc, ApiError) else None
        return problem_response(
            rule.http_status,
            str(exc),
            request=request,
            code=type(exc).__name__,
            recovery=rule.recovery.value,
            retry_after=retry_after,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem_response(
            422,
            "the request is not valid",
            request=request,
            code="InvalidInputError",
            recovery="permanent",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), request=request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback or an exception's text to the client: it may hold anything.
        return problem_response(500, "internal error; see the service log", request=request)
