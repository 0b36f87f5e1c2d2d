"""Import benchmark: full and incremental imports of a simulated corp into SQLite and PostgreSQL.

Run by hand (not part of the test suite), for example:

    .venv/bin/python bench/import_bench.py                           # 5,000 and 50,000 users
    .venv/bin/python bench/import_bench.py --users 2000 --sites 100  # a quick smoke run

Every scenario (size x transport x database) runs in a fresh child process, so the memory figures
of one scenario do not include the leftovers of another. Within a scenario, in this order:

1. fetch-and-parse: `client.list_users(expand_memberships=True)` and `client.list_sites()` with no
   repository involved (the floor a full import cannot beat);
2. the initial full import into an empty repository (read, diff, apply, correlate);
3. a repeat full import with nothing changed;
4. `--changes` user-level changes in the simulator, then an incremental import.

Memory is the peak resident set size (VmHWM from /proc/self/status, reset before each phase by
writing 5 to /proc/self/clear_refs), reported as the rise over the RSS at the start of the phase
(the importer's own cost) and as the process peak (which also holds the simulator's corp and its
cached response bodies, since the simulator runs in the same process: in-process, or as a uvicorn
thread for loopback). Timings are wall-clock seconds. Thresholds are disabled so that the 10
changes are applied rather than held; the client uses its default pacing (600 requests/minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_repository import repository
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import DEFAULT_SITE_PAGE_SIZE, SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions, ImportResult
from sigsci_iga.sim import (
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimRuntime,
    SimState,
    create_app,
    inprocess_transport,
    serve_in_thread,
)
from sigsci_iga.store import Repository

NO_LIMIT = Limit(absolute=None, percent=None)
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)


# -- measuring ------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text(encoding="ascii")
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


@dataclass
class Phase:
    seconds: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0

    @property
    def rise_mb(self) -> float:
        return self.rss_peak_mb - self.rss_start_mb


@contextlib.contextmanager
def measure() -> Iterator[Phase]:
    """Wall time and peak RSS of the block (peak reset at the start)."""
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    phase = Phase(rss_start_mb=_status_kb("VmRSS") / 1024)
    started = time.perf_counter()
    try:
        yield phase
    finally:
        phase.seconds = time.perf_counter() - started
        phase.rss_peak_mb = _status_kb("VmHWM") / 1024


# -- the corp and the repository ------------------------------------------------------------------


def make_changes(state: SimState, count: int) -> set[str]:
    """`count` user-level changes, each to a different user: roles, memberships, invites."""
    users = [u for u in state.users.values() if u.role != "owner"]
    sites = sorted(state.sites)
    touched: set[str] = set()
    for index in range(count):
        user = users[(index * 7919) % len(users)]
        while user.email in touched:
            user = users[(users.index(user) + 1) % len(users)]
        kind = index % 5
        if kind == 0:
            state.change_role(user.email, "observer" if user.role != "observer" else "user")
        elif kind == 1:
            state.add_membership(user.email, next(s for s in sites if s not in user.sites))
        elif kind == 2 and user.sites:
            state.remove_membership(user.email, sorted(user.sites)[0])
        elif kind == 3:
            email = f"bench-invite-{index}@example.com"
            state.invite_user(email, "user", sites[:2])
            touched.add(email)
            continue
        else:
            state.change_role(user.email, "admin" if user.role != "admin" else "user")
        touched.add(user.email)
    return touched


# -- one scenario ---------------------------------------------------------------------------------


@dataclass
class Result:
    users: int
    sites: int
    memberships: int
    transport: str
    db: str
    page_size: int
    fetch: Phase
    fetch_calls: int
    full: Phase
    full_calls: int
    full_sim_calls: int
    repeat_full: Phase
    repeat_calls: int
    changes: int
    incremental: Phase
    incremental_calls: int
    incremental_mode: str


async def _fetch_and_parse(client: SigSciClient, page_size: int) -> tuple[int, int]:
    users = await client.list_users(expand_memberships=True)
    sites = await client.list_sites(limit=page_size)
    return len(users), len(sites)


async def _import(
    repo: Repository, endpoint: str, client: SigSciClient, page_size: int, mode: str
) -> ImportResult:
    connector = SignalSciencesConnector(client, site_page_size=page_size)
    return await Importer(repo, endpoint, connector).run(
        ImportOptions(mode=mode, thresholds=NO_THRESHOLDS)  # type: ignore[arg-type]
    )


def run_scenario(args: argparse.Namespace) -> Result:
    latency = args.latency_ms if args.transport == "loopback" else 0
    config = SimConfig(
        users=args.users,
        sites=args.sites,
        memberships_per_user=args.memberships,
        latency_ms=latency,
        seed=args.seed,
    )
    app = create_app(config)
    runtime: SimRuntime = app.state.sim
    state = runtime.state
    page_size = args.page_size
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="import-bench-")))
        if args.transport == "loopback":
            base_url = stack.enter_context(serve_in_thread(app))
        else:
            base_url = "http://sim"
        repo = stack.enter_context(repository(args.db, workdir))
        repo.endpoints.add(state.config.corp, corp=state.config.corp, api_url=base_url)

        def client() -> SigSciClient:
            transport = inprocess_transport(app) if args.transport == "inprocess" else None
            return SigSciClient(
                base_url=base_url,
                corp=state.config.corp,
                email=DEMO_EMAIL,
                token=SecretStr(DEMO_TOKEN),
                transport=transport,
                timeout=600.0,
            )

        async def run(coro_factory: Any) -> tuple[Any, int]:
            async with client() as c:
                value = await coro_factory(c)
                return value, c.total_calls

        # The simulator caches the serialized users list; build it before anything is timed.
        state.users_list_bytes(expand=True)
        runtime.calls.reset()

        with measure() as fetch:
            (_, fetch_calls) = asyncio.run(run(lambda c: _fetch_and_parse(c, page_size)))
        gc.collect()

        endpoint = state.config.corp
        runtime.calls.reset()
        with measure() as full:
            result, full_calls = asyncio.run(
                run(lambda c: _import(repo, endpoint, c, page_size, "full"))
            )
        assert result.run.status == "succeeded", result.run
        full_sim_calls = runtime.calls.total()
        del result
        gc.collect()

        with measure() as repeat_full:
            result, repeat_calls = asyncio.run(
                run(lambda c: _import(repo, endpoint, c, page_size, "full"))
            )
        assert result.diff.is_empty, result.diff.summary()
        del result

        touched = make_changes(state, args.changes)
        with measure() as incremental:
            result, incremental_calls = asyncio.run(
                run(lambda c: _import(repo, endpoint, c, page_size, "incremental"))
            )
        assert result.run.status == "succeeded", result.run
        assert result.accounts_read == len(touched), (result.accounts_read, len(touched))
        incremental_mode = result.mode

    return Result(
        users=args.users,
        sites=args.sites,
        memberships=state.membership_count(),
        transport=args.transport,
        db=args.db,
        page_size=page_size,
        fetch=fetch,
        fetch_calls=fetch_calls,
        full=full,
        full_calls=full_calls,
        full_sim_calls=full_sim_calls,
        repeat_full=repeat_full,
        repeat_calls=repeat_calls,
        changes=len(touched),
        incremental=incremental,
        incremental_calls=incremental_calls,
        incremental_mode=incremental_mode,
    )


# -- the parent: run every scenario in a child, print the table --------------------------------


def child_command(
    args: argparse.Namespace, users: int, sites: int, transport: str, db: str
) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--child",
        "--users", str(users),
        "--sites", str(sites),
        "--transports", transport,
        "--dbs", db,
        "--memberships", str(args.memberships),
        "--latency-ms", str(args.latency_ms),
        "--page-size", str(args.page_size),
        "--changes", str(args.changes),
        "--seed", str(args.seed),
    ]  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    header = (
        "| users | sites | memberships | transport | db | fetch+parse s | full import s | "
        "full / fetch | repeat full s | full calls (target) | peak RSS rise MB (process MB) | "
        "incremental calls | incremental s |"
    )
    rule = "|" + "---|" * (header.count("|") - 1)
    lines = [header, rule]
    for r in results:
        # The simulator's default sites list has no totalCount: an empty page ends it.
        target = 2 + math.ceil(r["sites"] / r["page_size"])
        ratio = r["full"]["seconds"] / r["fetch"]["seconds"]
        rise = r["full"]["rss_peak_mb"] - r["full"]["rss_start_mb"]
        transport = r["transport"] + (" (20 ms)" if r["transport"] == "loopback" else "")
        lines.append(
            f"| {r['users']:,} | {r['sites']:,} | {r['memberships']:,} | {transport} | {r['db']} "
            f"| {r['fetch']['seconds']:.2f} | {r['full']['seconds']:.2f} | {ratio:.2f}x "
            f"| {r['repeat_full']['seconds']:.2f} | {r['full_calls']} ({target}) "
            f"| {rise:,.0f} ({r['full']['rss_peak_mb']:,.0f}) "
            f"| {r['incremental_calls']} ({r['changes']} changes) "
            f"| {r['incremental']['seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument(
        "--sites", type=int, nargs="+", default=None,
        help="sites per size, paired with --users (default: users / 50, at least 100)",
    )  # fmt: skip
    parser.add_argument("--memberships", type=float, default=10.0, help="sites per user")
    parser.add_argument("--transports", nargs="+", default=["inprocess", "loopback"])
    parser.add_argument("--dbs", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--latency-ms", type=int, default=20, help="loopback latency per call")
    parser.add_argument("--page-size", type=int, default=DEFAULT_SITE_PAGE_SIZE)
    parser.add_argument("--changes", type=int, default=10, help="changes before incremental")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sites = args.sites or [max(100, u // 50) for u in args.users]
    if len(sites) != len(args.users):
        parser.error("give one --sites value per --users value")

    if args.child:
        args.users, args.sites = args.users[0], sites[0]
        args.transport, args.db = args.transports[0], args.dbs[0]
        result = run_scenario(args)
        print(json.dumps(asdict(result)))
        return

    results: list[dict[str, Any]] = []
    for users, n_sites in zip(args.users, sites, strict=True):
        for transport in args.transports:
            for db in args.dbs:
                label = f"{users} users / {n_sites} sites, {transport}, {db}"
                print(f"running {label} ...", file=sys.stderr, flush=True)
                started = time.perf_counter()
                done = subprocess.run(  # noqa: S603  # this script, our own interpreter
                    child_command(args, users, n_sites, transport, db),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    print(done.stdout, done.stderr, file=sys.stderr)
                    raise SystemExit(f"{label} failed")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(
                    f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
