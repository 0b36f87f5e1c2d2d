"""The governance service as an ASGI app: the API, health, metrics, and the runtime's lifespan."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from sigsci_iga import app
from sigsci_iga.service import problems, schemas
from sigsci_iga.service.api import build_metrics_route, build_router
from sigsci_iga.service.logs import REQUEST_ID
from sigsci_iga.service.runtime import ServiceRuntime, runtime_of

log = logging.getLogger("sigsci_iga.service.http")


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

    @service.middleware("http")
    async def _request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = ServiceRuntime.request_id(request) or uuid.uuid4().hex
        request.state.request_id = request_id
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            REQUEST_ID.reset(token)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        runtime.metrics.http_request(request.method, template, response.status_code, elapsed)
        log.info(
            "http request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": template,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        response.headers["X-Request-ID"] = request_id
        return response

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
