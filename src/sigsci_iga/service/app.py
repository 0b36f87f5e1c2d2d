"""The governance service as an ASGI app: the API, health, metrics, and the runtime's lifespan."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sigsci_iga import app
from sigsci_iga.service import problems, schemas
from sigsci_iga.service.api import build_metrics_route, build_router
from sigsci_iga.service.logs import REQUEST_ID
from sigsci_iga.service.runtime import ServiceRuntime, runtime_of

log = logging.getLogger("sigsci_iga.service.http")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestContext:
    """Give every request an id (the caller's sane `X-Request-ID`, or a new one), echo it,
    count the request by route template, and log one line for it.

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which costs every request a task
    and a stream.
    """

    def __init__(self, app: ASGIApp, runtime: ServiceRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            method = scope["method"]
            self.runtime.metrics.http_request(method, template, status, elapsed)
            log.info(
                "http request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )


def create_service(runtime: ServiceRuntime) -> FastAPI:
    """The ASGI app; its lifespan starts and stops `runtime` (the worker and the scheduler)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        log.info("service started")
        try:
            yield
        finally:
            log.info("service stopping")
            runtime.stop()
            log.info("service stopped")

    service = FastAPI(
        title="sigsci-iga",
        summary="Identity governance for Signal Sciences (Fastly Next-Gen WAF)",
        version=app.version(),
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
        responses={
            422: {"model": problems.Problem, "description": "The request is not valid."},
            500: {"model": problems.Problem, "description": "An internal error."},
        },
    )
    service.state.runtime = runtime
    problems.install(service)

    service.add_middleware(RequestContext, runtime=runtime)

    @service.get("/healthz", response_model=schemas.Health, tags=["health"])
    def healthz() -> schemas.Health:
        """200 while the process runs; no token needed."""
        return schemas.Health(status="ok")

    @service.get(
        "/readyz",
        response_model=schemas.Health,
        responses={503: {"model": problems.Problem, "description": "The database is not usable."}},
        tags=["health"],
    )
    def readyz(request: Request) -> schemas.Health:
        """200 when the database answers; no token needed."""
        app.check_database(runtime_of(request).ctx)
        return schemas.Health(status="ok")

    service.include_router(build_router())
    service.include_router(build_metrics_route())
    return service
