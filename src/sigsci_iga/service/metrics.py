"""Prometheus metrics: what the service did (counters) and what the repository holds (at scrape).

No label carries an email, a site name or any other personal data: calls are labelled by their
path template, HTTP requests by their route template.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from sigsci_iga import app
from sigsci_iga.connectors.http.calls import CallRecord
from sigsci_iga.domain.tasks import Operation, TaskState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _RepositoryCollector(Collector):
    """Gauges read from the repository at each scrape, so every replica reports the same."""

    def __init__(self, ctx: app.AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        stats = app.statistics(self.ctx)
        tasks = GaugeMetricFamily(
            "sigsci_iga_tasks", "Tasks by state and operation.", labels=["state", "operation"]
        )
        attempts = GaugeMetricFamily(
            "sigsci_iga_task_attempts",
            "Attempts used by the tasks of each state and operation.",
            labels=["state", "operation"],
        )
        found = {(state, operation): (n, a) for state, operation, n, a in stats.tasks}
        # Every label set is reported, at zero when empty, so rates and alerts need no guessing.
        for state in TaskState:
            for operation in Operation:
                n, a = found.get((state.value, operation.value), (0, 0))
                tasks.add_metric([state.value, operation.value], n)
                attempts.add_metric([state.value, operation.value], a)
        yield tasks
        yield attempts
        runs = GaugeMetricFamily(
            "sigsci_iga_import_runs", "Import runs by status.", labels=["status"]
        )
        for status in ("running", "succeeded", "failed", "held", "approved", "refused"):
            runs.add_metric([status], stats.runs_by_status.get(status, 0))
        yield runs
        seconds = GaugeMetricFamily(
            "sigsci_iga_last_import_seconds",
            "Duration of the newest finished import of each endpoint and mode.",
            labels=["endpoint", "mode"],
        )
        changes = GaugeMetricFamily(
            "sigsci_iga_last_import_changes",
            "Items in the diff of the newest finished import, by object and action.",
            labels=["endpoint", "mode", "object", "action"],
        )
        for run in stats.latest_runs:
            if run.finished_at is not None:
                elapsed = (run.finished_at - run.started_at).total_seconds()
                seconds.add_metric([run.endpoint, run.mode], elapsed)
            for kind, actions in _counts(run.counts):
                for action, count in actions:
                    changes.add_metric([run.endpoint, run.mode, kind, action], count)
        yield seconds
        yield changes
        fires = GaugeMetricFamily(
            "sigsci_iga_schedule_last_success_timestamp_seconds",
            "When each schedule's newest successful fire finished (Unix time).",
            labels=["schedule"],
        )
        for name, finished in stats.schedule_successes.items():
            fires.add_metric([name], finished.timestamp())
        yield fires


def _counts(counts: object) -> Iterable[tuple[str, list[tuple[str, float]]]]:
    if not isinstance(counts, dict):
        return []
    return [
        (str(kind), [(str(a), float(n)) for a, n in actions.items() if isinstance(n, int | float)])
        for kind, actions in counts.items()
        if isinstance(actions, dict)
    ]


class Metrics:
    """One registry per service instance (never the process-global one)."""

    def __init__(
        self,
        ctx: app.AppContext,
        routes: Iterable[tuple[str, str]] = (),
        *,
        shared: Path | None = None,
    ) -> None:
        #: Under `serve --workers N`: where every process writes its counters, so that a scrape
        #: answered by any one of them reports the sum over all.
        self.shared = shared
        if shared is not None:
            # Counters created from here on write to files in `shared`; prometheus-client
            # picks that value class from the environment, which is read again on first write.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # prometheus-client is untyped here
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "sigsci_iga_http_requests",
            "API requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "sigsci_iga_http_request_seconds",
            "API request durations by route template.",
            ["method", "route"],
            buckets=_DURATIONS,
            registry=self.registry,
        )
        self.calls = Counter(
            "sigsci_iga_target_calls",
            "Calls to governed targets by method, path template and status (0: no answer).",
            ["method", "template", "status"],
            registry=self.registry,
        )
        self.throttled = Counter(
            "sigsci_iga_target_throttled",
            "Calls a target answered as throttled (429, or 400 'Rate limit exceeded').",
            registry=self.registry,
        )
        self.limiter_waits = Counter(
            "sigsci_iga_limiter_wait_seconds",
            "Time calls waited for the client-side rate limiter.",
            registry=self.registry,
        )
        for method, route in routes:
            self.http_requests.labels(method, route, "200")
            self.http_seconds.labels(method, route)
        self._repository = _RepositoryCollector(ctx)
        self.registry.register(self._repository)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def call(self, record: CallRecord) -> None:
        self.calls.labels(record.method, record.template, str(record.status or 0)).inc()
        if record.status == 429 or "rate limit exceeded" in (record.error or "").lower():
            self.throttled.inc()

    def limiter_wait(self, seconds: float) -> None:
        self.limiter_waits.inc(seconds)

    def render(self) -> bytes:
        if self.shared is None:
            return generate_latest(self.registry)
        every = CollectorRegistry()
        MultiProcessCollector(every, path=str(self.shared))  # type: ignore[no-untyped-call]  # as above
        every.register(self._repository)
        return generate_latest(every)
