"""`sigsci-iga serve`: the governance service (HTTP API, worker loop, scheduler) in one process."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer

from sigsci_iga.cli import context
from sigsci_iga.cli.output import fail
from sigsci_iga.errors import ConfigError, SigsciIgaError


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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Service processes sharing the port; the first also runs the worker and the "
            "scheduler.",
        ),
    ] = 1,
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
    from sigsci_iga.service.metrics import Metrics  # noqa: PLC0415
    from sigsci_iga.service.processes import WakePipe, listen, supervise  # noqa: PLC0415

    settings = context.settings()
    try:
        app.token_keys(settings)
    except SigsciIgaError as exc:
        fail(exc)
    configure(log_format)

    def config(runtime: ServiceRuntime) -> uvicorn.Config:
        return uvicorn.Config(
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

    if workers == 1:
        runtime = ServiceRuntime(
            app.AppContext(settings), run_worker=worker, run_scheduler=scheduler
        )
        uvicorn.Server(config(runtime)).run()
        return
    # Migrate once, here, rather than in N processes racing; then close every connection, so
    # no process inherits another's.
    try:
        with app.AppContext(settings) as ctx:
            app.check_database(ctx)
    except SigsciIgaError as exc:
        fail(exc)
    try:
        listening = listen(host, port)
    except OSError as exc:
        fail(ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
    peers = WakePipe()
    with tempfile.TemporaryDirectory(prefix="sigsci-iga-metrics-") as shared:

        def run_child(index: int) -> int:
            ctx = app.AppContext(settings)
            leader = index == 0
            runtime = ServiceRuntime(
                ctx,
                run_worker=worker and leader,
                run_scheduler=scheduler and leader,
                peers=peers,
                metrics=Metrics(ctx, shared=Path(shared)),
            )
            uvicorn.Server(config(runtime)).run(sockets=[listening])
            return 0

        code = supervise(workers, run_child)
    raise typer.Exit(code)
