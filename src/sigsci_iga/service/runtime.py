"""What `serve` runs beside the API: a job thread with the provisioning loop and the scheduler.

Imports, the worker and the scheduler do blocking database work and long network calls. They
run on an event loop in a thread of their own, so the API's loop only ever waits for short
repository reads and writes (which FastAPI runs in its thread pool).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import Request

from sigsci_iga import app
from sigsci_iga.connectors.http.calls import watch_calls
from sigsci_iga.scheduler import Scheduler
from sigsci_iga.service.metrics import Metrics
from sigsci_iga.service.processes import WAKE_SCHEDULER, WAKE_WORKER, WakePipe

T = TypeVar("T")
ImportMode = Literal["auto", "full", "incremental"]
log = logging.getLogger("sigsci_iga.service")

#: How often the worker loop looks for due tasks when nothing wakes it.
WORKER_POLL_SECONDS = 5.0
#: What shutdown gives running jobs to finish before it gives up on them.
SHUTDOWN_GRACE_SECONDS = 25.0


class JobThread:
    """An event loop in a daemon thread; coroutines are submitted to it from any thread."""

    def __init__(self, name: str = "sigsci-iga-jobs") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, callback: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float) -> None:
        """Cancel what is still running, then stop the loop and wait for the thread."""

        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self._thread.is_alive():
            try:
                self.submit(cancel_rest()).result(timeout=timeout)
            except (concurrent.futures.TimeoutError, RuntimeError):
                log.warning("jobs did not stop within %.0f s", timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=timeout)


@dataclass(frozen=True)
class StartedImport:
    run_id: int
    endpoint: str
    mode: str


class ServiceRuntime:
    """The service's shared state: the application context, the job thread and its loops."""

    def __init__(
        self,
        ctx: app.AppContext,
        *,
        run_worker: bool = True,
        run_scheduler: bool = True,
        worker_poll_seconds: float = WORKER_POLL_SECONDS,
        peers: WakePipe | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.ctx = ctx
        #: Under `serve --workers N`: how wake-ups reach the process running the worker.
        self.peers = peers
        self.run_worker = run_worker
        self.run_scheduler = run_scheduler
        self.worker_poll_seconds = worker_poll_seconds
        self.jobs = JobThread()
        self.metrics = metrics if metrics is not None else Metrics(ctx)
        self.scheduler: Scheduler | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._loops: list[concurrent.futures.Future[None]] = []
        self._lifespans = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the job thread and its loops; a second lifespan over the same runtime only
        counts (test clients may open one each)."""
        self._lifespans += 1
        if self._lifespans > 1:
            return
        # Refuse to start without a usable token key: every API call would fail anyway.
        app.token_keys(self.ctx.settings)
        # Open (and migrate) the repository before any request or job races to do it.
        _ = self.ctx.repository
        self.jobs.start()
        self._stop, self._wake = self.jobs.submit(_events()).result(timeout=10)
        if self.run_worker:
            self._loops.append(self.jobs.submit(self._watched(self._worker_loop())))
        if self.run_scheduler:
            self.scheduler = self.jobs.submit(_scheduler(self.ctx)).result(timeout=10)
            self._loops.append(
                self.jobs.submit(self._watched(self.scheduler.run_forever(self._stop)))
            )
        if self.peers is not None and (self.run_worker or self.run_scheduler):
            self.jobs.call(self.jobs.loop.add_reader, self.peers.read_fd, self._peer_woke)

    def stop(self) -> None:
        """Stop claiming, let running work finish (or release it), then close everything."""
        self._lifespans -= 1
        if self._lifespans > 0:
            return
        if self._stop is not None:
            self.jobs.call(self._stop.set)
        done, _ = concurrent.futures.wait(self._loops, timeout=SHUTDOWN_GRACE_SECONDS)
        if len(done) < len(self._loops):
            log.warning("work still running at shutdown was cancelled; its leases expire")
        self.jobs.stop(timeout=5.0)
        self.ctx.close()

    def wake_worker(self) -> None:
        """A request was recorded: work it now rather than at the next poll."""
        if self.run_worker and self._wake is not None:
            self.jobs.call(self._wake.set)
        elif self.peers is not None:
            self.peers.send(WAKE_WORKER)

    def wake_scheduler(self) -> None:
        """A schedule changed or a run was queued: look again now."""
        if self.scheduler is not None:
            self.jobs.call(self.scheduler.wake)
        elif self.peers is not None:
            self.peers.send(WAKE_SCHEDULER)

    def _peer_woke(self) -> None:
        # On the job thread: another service process recorded a request or changed a schedule.
        assert self.peers is not None
        got = self.peers.receive()
        if WAKE_WORKER in got and self.run_worker and self._wake is not None:
            self._wake.set()
        if WAKE_SCHEDULER in got and self.scheduler is not None:
            self.scheduler.wake()

    async def _watched(self, job: Coroutine[Any, Any, T]) -> T:
        """Count the calls a job makes (by template and status) and its rate-limiter waits."""
        with watch_calls(self.metrics.call, self.metrics.limiter_wait):
            return await job

    # -- the provisioning loop -----------------------------------------------------------

    async def _worker_loop(self) -> None:
        assert self._stop is not None
        assert self._wake is not None
        stop, wake = self._stop, self._wake
        while not stop.is_set():
            wake.clear()
            for name in app.due_endpoints(self.ctx):
                if stop.is_set():
                    break
                try:
                    await app.run_queue(self.ctx, name, app.QueueOptions(stop=stop.is_set))
                except Exception:
                    # One endpoint's failure (its credentials, its target) must not stop the
                    # others; its tasks stay queued with their errors.
                    log.exception("provisioning run for endpoint %s failed", name)
            waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
            _, pending = await asyncio.wait(
                waits, timeout=self.worker_poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    # -- imports -------------------------------------------------------------------------

    def start_import(
        self, endpoint: str | None, *, mode: ImportMode, dry_run: bool
    ) -> StartedImport:
        """Record the run now and run it on the job thread; the caller gets its id at once."""
        prepared = app.prepare_import(self.ctx, endpoint, mode=mode, dry_run=dry_run)
        self.jobs.submit(self._watched(self._import(prepared)))
        return StartedImport(prepared.run_id, prepared.endpoint, prepared.mode)

    async def _import(self, prepared: app.PreparedImport) -> None:
        where = {"run_id": prepared.run_id, "endpoint": prepared.endpoint}
        try:
            result = await app.execute_import(self.ctx, prepared)
        except Exception:
            # The run records its own failure; the log keeps the rest.
            log.exception("import failed", extra=where)
            return
        log.info("import finished", extra={**where, "state": result.run.status})

    # -- who asks ------------------------------------------------------------------------

    @staticmethod
    def request_id(request: Request) -> str:
        """The request's id, as the request middleware chose it."""
        found: str | None = getattr(request.state, "request_id", None)
        return found or uuid.uuid4().hex

    @staticmethod
    def requester(request: Request) -> str | None:
        """Who asks: the API token's name (never the token)."""
        principal: app.Principal | None = getattr(request.state, "principal", None)
        return principal.requester if principal is not None else None


async def _scheduler(ctx: app.AppContext) -> Scheduler:
    # The scheduler's events belong to the job thread's loop: build it there.
    return Scheduler(ctx)


async def _events() -> tuple[asyncio.Event, asyncio.Event]:
    # Events belong to the loop they are created on: make them on the job thread's.
    return asyncio.Event(), asyncio.Event()


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime
