"""`sigsci-iga serve`: the governance service (HTTP API, worker loop, scheduler) in one process."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from sigsci_iga.cli import context
from sigsci_iga.cli.output import fail
from sigsci_iga.errors import SigsciIgaError


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    scheduler: Annotated[
        bool, typer.Option("--scheduler/--no-scheduler", help="Run the job scheduler.")
    ] = True,
    worker: Annotated[
        bool,
        typer.Option("--worker/--no-worker", help="Run the provisioning worker loop."),
    ] = True,
    log_format: Annotated[
        Literal["json", "text"],
        typer.Option("--log-format", help="json (one object per line) or text."),
    ] = "json",
) -> None:
    """Run the HTTP API under /api/v1 with the scheduler and the worker; stop with SIGTERM."""
    # Imported here: the service's dependencies stay off every other command's start.
    import uvicorn  # noqa: PLC0415

    from sigsci_iga import app  # noqa: PLC0415
    from sigsci_iga.service import ServiceRuntime, create_service  # noqa: PLC0415
    from sigsci_iga.service.logs import configure  # noqa: PLC0415

    settings = context.settings()
    try:
        app.token_keys(settings)
    except SigsciIgaError as exc:
        fail(exc)
    configure(log_format)
    runtime = ServiceRuntime(app.AppContext(settings), run_worker=worker, run_scheduler=scheduler)
    config = uvicorn.Config(
        create_service(runtime),
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        # Open connections get this long after SIGTERM; the runtime's own stop follows.
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
