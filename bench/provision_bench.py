"""Provisioning benchmark: 1,000 add-access tasks, the worker against one-task-at-a-time.

Run by hand (not part of the test suite), for example:

    .venv/bin/python bench/provision_bench.py                   # SQLite, 1,000 tasks
    .venv/bin/python bench/provision_bench.py --db postgres     # PostgreSQL
    .venv/bin/python bench/provision_bench.py --db sqlite postgres --tasks 200   # quicker

The simulator serves over loopback in this process (`serve_in_thread`) with `--latency-ms` (50)
per call and a server-side limit of `--server-limit` (3,000) requests per minute; the client paces
itself at `--client-limit` (2,900) so it stays under it. The corp has `--users` users (at least
200 non-owners) and `--sites` sites; the tasks are `--tasks` distinct (user, site) pairs the users
do not hold yet, spread over `--task-users` users.

Each approach gets a fresh simulator built from the same seed, so both start from the same corp:

* worker: the tasks are queued in the repository and `Worker.run(until_done=True)` works them:
  one users-list read per batch, one bulk members POST per site per batch, every task journaled
  and finished in its own transaction (the account is updated in the repository);
* baseline: for each task, in order, GET the user, then POST the site's members with that one
  email. Same client settings; no repository (so the baseline's time is API time only).

Reported: wall-clock seconds, the API calls of each (the client's own counter and the simulator's
`/_sim/calls`), responses the server throttled (429), tasks completed, tasks whose last error
mentions a rate limit, and the speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench_repository import repository
from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga.connectors.http.calls import CallRecord
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions
from sigsci_iga.provisioning.worker import Worker, WorkerOptions
from sigsci_iga.sim import (
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimRuntime,
    create_app,
    serve_in_thread,
)

NO_LIMIT = Limit(absolute=None, percent=None)
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
RATE_WORDS = ("rate limit", "429", "throttl")


def make_app(args: argparse.Namespace) -> FastAPI:
    return create_app(
        SimConfig(
            users=args.users,
            sites=args.sites,
            seed=args.seed,
            latency_ms=args.latency_ms,
            rate_limit_per_minute=args.server_limit,
        )
    )


def runtime_of(app: FastAPI) -> SimRuntime:
    runtime: SimRuntime = app.state.sim
    return runtime


def choose_pairs(app: FastAPI, args: argparse.Namespace) -> list[tuple[str, str]]:
    """`--tasks` distinct (user, site) pairs, over `--task-users` non-owners, not held yet."""
    state = runtime_of(app).state
    rng = random.Random(args.seed)
    with state.lock:
        people = sorted(
            u.email
            for u in state.users.values()
            if u.role != "owner" and not u.email.endswith("@testcorp.example")
        )
        if len(people) < args.task_users:
            raise SystemExit(f"the corp has {len(people)} non-owners; need {args.task_users}")
        chosen = rng.sample(people, args.task_users)
        per_user = -(-args.tasks // args.task_users)
        pairs: list[tuple[str, str]] = []
        for email in chosen:
            missing = sorted(set(state.sites) - state.users[email].sites)
            pairs.extend((email, site) for site in rng.sample(missing, min(per_user, len(missing))))
    if len(pairs) < args.tasks:
        raise SystemExit("not enough missing (user, site) pairs; use more sites or task users")
    rng.shuffle(pairs)
    return pairs[: args.tasks]


def client_for(base_url: str, args: argparse.Namespace, statuses: Counter[int]) -> SigSciClient:
    def observe(record: CallRecord) -> None:
        statuses[record.status or 0] += 1

    return SigSciClient(
        base_url=base_url,
        corp="testcorp",
        email=DEMO_EMAIL,
        token=SecretStr(DEMO_TOKEN),
        rate_limit_per_minute=args.client_limit,
        max_concurrency=args.concurrency,
        observers=[observe],
    )


def applied(app: FastAPI, pairs: list[tuple[str, str]]) -> int:
    state = runtime_of(app).state
    with state.lock:
        return sum(1 for email, site in pairs if site in state.users[email].sites)


@dataclass
class Outcome:
    approach: str
    db: str
    seconds: float
    client_calls: int
    sim_calls: int
    writes: int
    throttled: int
    completed: int
    applied: int
    rate_errors: int


async def run_worker(
    args: argparse.Namespace, db: str, workdir: Path, pairs: list[tuple[str, str]]
) -> Outcome:
    app = make_app(args)
    runtime = runtime_of(app)
    statuses: Counter[int] = Counter()
    with (
        serve_in_thread(app) as base_url,
        repository(db, workdir, prefix="sigsci_iga_prov_bench") as repo,
    ):
        repo.endpoints.add("testcorp", corp="testcorp", api_url=base_url, email=DEMO_EMAIL)
        async with client_for(base_url, args, Counter()) as reader:
            importer = Importer(repo, "testcorp", SignalSciencesConnector(reader))
            await importer.run(ImportOptions(mode="full", thresholds=NO_THRESHOLDS))
        for email, site in pairs:
            repo.tasks.create(
                "testcorp", "add_access", email, {"entitlement_type": "Site", "value": site}
            )
        runtime.calls.reset()
        assert runtime.limiter is not None
        runtime.limiter.reset()
        async with client_for(base_url, args, statuses) as client:
            worker = Worker(
                repo,
                "testcorp",
                SignalSciencesConnector(client),
                options=WorkerOptions(batch_size=args.batch_size, concurrency=args.concurrency),
            )
            started = time.perf_counter()
            summary = await worker.run(until_done=True, max_wait_seconds=600)
            seconds = time.perf_counter() - started
            client_calls = client.total_calls
        sim_calls = runtime.calls.snapshot()
        tasks = repo.tasks.list(endpoint="testcorp")
        completed = sum(1 for t in tasks if t.state == "completed")
        rate_errors = sum(
            1 for t in tasks if t.last_error and any(w in t.last_error.lower() for w in RATE_WORDS)
        )
        if summary.errors:
            print("worker notes:", *summary.errors[:5], sep="\n  ", file=sys.stderr)
    return Outcome(
        "worker (batched, coalesced)",
        db,
        seconds,
        client_calls,
        sum(sim_calls.values()),
        sum(v for k, v in sim_calls.items() if not k.startswith("GET ")),
        statuses[429],
        completed,
        applied(app, pairs),
        rate_errors,
    )


async def run_baseline(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> Outcome:
    app = make_app(args)
    runtime = runtime_of(app)
    statuses: Counter[int] = Counter()
    completed = rate_errors = 0
    with serve_in_thread(app) as base_url:
        async with client_for(base_url, args, statuses) as client:
            started = time.perf_counter()
            for email, site in pairs:
                try:
                    await client.get_user(email, expand_memberships=True)
                    await client.add_site_members(site, [email])
                except Exception as exc:  # noqa: BLE001  # a failed task is counted, not fatal
                    rate_errors += any(w in str(exc).lower() for w in RATE_WORDS)
                else:
                    completed += 1
            seconds = time.perf_counter() - started
            client_calls = client.total_calls
        sim_calls = runtime.calls.snapshot()
    return Outcome(
        "baseline (one task at a time)",
        "-",
        seconds,
        client_calls,
        sum(sim_calls.values()),
        sum(v for k, v in sim_calls.items() if not k.startswith("GET ")),
        statuses[429],
        completed,
        applied(app, pairs),
        rate_errors,
    )


def table(outcomes: list[Outcome], baseline: Outcome, tasks: int) -> str:
    lines = [
        "| approach | repository | tasks | wall time (s) | speed-up | API calls (client) "
        "| API calls (simulator) | writes | 429 responses | completed | applied in sim "
        "| tasks with a rate-limit error |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for o in [baseline, *outcomes]:
        speedup = baseline.seconds / o.seconds if o.seconds else float("inf")
        lines.append(
            f"| {o.approach} | {o.db} | {tasks:,} | {o.seconds:.1f} | {speedup:.1f}x "
            f"| {o.client_calls:,} | {o.sim_calls:,} | {o.writes:,} | {o.throttled} "
            f"| {o.completed:,} | {o.applied:,} | {o.rate_errors} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    pairs = choose_pairs(make_app(args), args)
    print(
        f"{len(pairs):,} add-access tasks for {len({e for e, _ in pairs}):,} users over "
        f"{len({s for _, s in pairs})} sites; simulator over loopback, {args.latency_ms} ms per "
        f"call, server limit {args.server_limit}/min, client limit {args.client_limit}/min, "
        f"client concurrency {args.concurrency}",
        file=sys.stderr,
    )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        for db in args.db:
            workdir = Path(tmp) / db
            workdir.mkdir()
            print(f"worker on {db} ...", file=sys.stderr)
            outcomes.append(await run_worker(args, db, workdir, pairs))
            print(f"  {outcomes[-1].seconds:.1f} s", file=sys.stderr)
    print("baseline ...", file=sys.stderr)
    baseline = await run_baseline(args, pairs)
    print(f"  {baseline.seconds:.1f} s", file=sys.stderr)
    print(table(outcomes, baseline, len(pairs)))
    ok = all(
        o.completed == len(pairs) and o.applied == len(pairs) and o.rate_errors == 0
        for o in outcomes
    )
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--task-users", type=int, default=200)
    parser.add_argument("--users", type=int, default=260, help="corp size (owners included)")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--server-limit", type=int, default=3_000, help="requests per minute")
    parser.add_argument("--client-limit", type=float, default=2_900, help="requests per minute")
    parser.add_argument("--concurrency", type=int, default=4, help="client requests in flight")
    parser.add_argument("--batch-size", type=int, default=200, help="worker tasks per claim")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
