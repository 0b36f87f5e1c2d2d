"""Provisioning benchmark: the `provision run` process against a plain one-at-a-time httpx loop.

Run by hand (not part of the test suite):

    .venv/bin/python bench/provision_bench.py                      # both scenarios (~15 min)
    .venv/bin/python bench/provision_bench.py --scenario plain     # ~4 min
    .venv/bin/python bench/provision_bench.py --db sqlite --scenario plain --tasks 200  # a smoke run
    .venv/bin/python bench/provision_bench.py --scenario ratelimit --baseline-seconds 412.6
        # the worker rows only, against a baseline measured before (it is paced: ~7 min)

Every measured run is a whole process started from here, against `sigsci-iga sim serve` in
another process on loopback, freshly started from the same seed for each run (so every run
starts from the same corp and an empty rate-limit window):

* worker: `sigsci-iga provision run --until-done` on a repository (SQLite file or a throwaway
  PostgreSQL database) that was registered, fully imported and given the queued add-access
  tasks beforehand (setup, not timed);
* baseline: this file's `baseline` subcommand, a plain synchronous `httpx.Client` loop that,
  for each task in turn, reads the user (GET) and adds it to the site (the bulk members POST
  with that one email): the same two calls a careful one-at-a-time script makes, and no
  database at all. It paces itself at the client limit and waits out a 429, like the worker.

Time is the wall clock around each child; peak memory is the child's own maximum resident set
size from `os.wait4` (the kernel's `ru_maxrss`, the figure `getrusage(RUSAGE_CHILDREN)` reports,
but for that child alone). Calls are the simulator's counter.

Scenarios:

* plain: 1,000 tasks for 200 users over 20 sites, 50 ms per call, a server limit of 3,000
  requests/minute that neither side comes near;
* ratelimit: 2,000 tasks for 1,000 users over 400 sites, 50 ms per call, a server limit of 600
  requests/minute that both sides run into (the client limit is 600 too). The worker must
  surface no 429 to a task and finish every task.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from bench_repository import repository

from sigsci_iga.sim import DEMO_EMAIL, DEMO_TOKEN
from sigsci_iga.store import Repository

CORP = "testcorp"
RATE_WORDS = ("rate limit", "429", "throttl")


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: int
    task_users: int
    users: int
    sites: int
    latency_ms: int
    server_limit: int
    client_limit: int
    batch_size: int
    goal: float


SCENARIOS = {
    "plain": Scenario("plain", 1_000, 200, 260, 20, 50, 3_000, 2_900, 1_000, 8.0),
    # One batch holds the whole queue: an account's grants on different sites share it.
    "ratelimit": Scenario("ratelimit", 2_000, 1_000, 1_100, 400, 50, 600, 600, 2_000, 5.0),
}


@dataclass
class Outcome:
    scenario: str
    approach: str
    db: str
    seconds: float
    peak_mib: float
    sim_calls: int
    writes: int
    completed: int
    throttled: int
    rate_errors: int


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def sim_serve(scenario: Scenario, seed: int) -> Iterator[str]:
    """`sigsci-iga sim serve` in its own process until the block ends; yields its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "sigsci_iga", "sim", "serve", "--port", str(port),
        "--seed", str(seed), "--users", str(scenario.users), "--sites", str(scenario.sites),
        "--latency-ms", str(scenario.latency_ms), "--rate-limit", str(scenario.server_limit),
    ]  # fmt: skip
    server = subprocess.Popen(  # noqa: S603  # our own CLI
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/_sim/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise SystemExit(f"sim serve exited with {server.returncode}") from None
                if time.monotonic() > deadline:
                    raise SystemExit("sim serve did not start within 60 s") from None
                time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run one child to its end: (wall seconds, its own peak RSS in MiB, its stdout)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  # our own commands
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... exited {child.returncode}:\n{text}")
    return seconds, usage.ru_maxrss / 1024, text  # ru_maxrss is in KiB on Linux


def child_env(api_url: str, database_url: str, scenario: Scenario) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    env.update(
        SIGSCI_API_URL=api_url,
        SIGSCI_EMAIL=DEMO_EMAIL,
        SIGSCI_TOKEN=DEMO_TOKEN,
        SIGSCI_CORP=CORP,
        SIGSCI_IGA_DATABASE_URL=database_url,
        SIGSCI_IGA_RATE_LIMIT=str(scenario.client_limit),
    )
    return env


def sim_calls(base: str) -> dict[str, int]:
    calls: dict[str, int] = httpx.get(f"{base}/_sim/calls", timeout=10).json()["calls"]
    return calls


# -- the tasks -------------------------------------------------------------------------------


def choose_pairs(repo: Repository, scenario: Scenario, seed: int) -> list[tuple[str, str]]:
    """`tasks` distinct (user, site) pairs over `task_users` non-owners, none held yet."""
    rng = random.Random(seed)
    sites = sorted(e.value for e in repo.inventory.entitlements(CORP, type="Site"))
    people = {
        a.email: set(a.sites)
        for a in repo.inventory.accounts(CORP)
        if a.role != "owner" and a.status == "active" and not a.email.endswith(f"@{CORP}.example")
    }
    if len(people) < scenario.task_users:
        raise SystemExit(
            f"the corp has {len(people)} active non-owners; need {scenario.task_users}"
        )
    chosen = rng.sample(sorted(people), scenario.task_users)
    per_user = -(-scenario.tasks // scenario.task_users)
    pairs = [
        (email, site)
        for email in chosen
        for site in rng.sample(sorted(set(sites) - people[email]), per_user)
    ]
    rng.shuffle(pairs)
    return pairs[: scenario.tasks]


def run_worker(
    scenario: Scenario, db: str, workdir: Path, seed: int, pairs: list[tuple[str, str]] | None
) -> tuple[Outcome, list[tuple[str, str]]]:
    with (
        sim_serve(scenario, seed) as base,
        repository(db, workdir, "sigsci_iga_prov_bench") as repo,
    ):
        url = repo.engine.url.render_as_string(hide_password=False)
        env = child_env(base, url, scenario)
        repo.endpoints.add(CORP, corp=CORP, api_url=base, email=DEMO_EMAIL)
        measured([sys.executable, "-m", "sigsci_iga", "import", "--full"], env)
        pairs = pairs or choose_pairs(repo, scenario, seed)
        for email, site in pairs:
            repo.tasks.create(
                CORP, "add_access", email, {"entitlement_type": "Site", "value": site}
            )
        httpx.delete(f"{base}/_sim/calls", timeout=10)
        command = [
            sys.executable, "-m", "sigsci_iga", "provision", "run", "--until-done",
            "--max-wait", "900", "--batch-size", str(scenario.batch_size),
        ]  # fmt: skip
        seconds, peak, _ = measured(command, env)
        calls = sim_calls(base)
        tasks = repo.tasks.list(endpoint=CORP)
        throttled = sum(
            1 for line in repo.journal.list(endpoint=CORP, kind="call") if line.status == 429
        )
        rate_errors = sum(
            1
            for line in repo.journal.list(endpoint=CORP, kind="state")
            if line.error and any(w in line.error.lower() for w in RATE_WORDS)
        )
        outcome = Outcome(
            scenario.name,
            "worker: `provision run --until-done`",
            db,
            seconds,
            peak,
            sum(calls.values()),
            sum(v for k, v in calls.items() if not k.startswith("GET ")),
            sum(1 for t in tasks if t.state == "completed"),
            throttled,
            rate_errors,
        )
    return outcome, pairs


def run_baseline(scenario: Scenario, seed: int, pairs: list[tuple[str, str]]) -> Outcome:
    with sim_serve(scenario, seed) as base, tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "pairs.json"
        result = Path(tmp) / "result.json"
        plan.write_text(json.dumps(pairs))
        command = [
            sys.executable, __file__, "baseline", base, str(plan), str(result),
            "--client-limit", str(scenario.client_limit),
        ]  # fmt: skip
        seconds, peak, _ = measured(command, dict(os.environ))
        calls = sim_calls(base)
        report = json.loads(result.read_text())
    return Outcome(
        scenario.name,
        "baseline: one task at a time (httpx loop)",
        "-",
        seconds,
        peak,
        sum(calls.values()),
        sum(v for k, v in calls.items() if not k.startswith("GET ")),
        report["completed"],
        report["throttled"],
        0,
    )


def reused_baseline(scenario: Scenario, seconds: float) -> Outcome:
    """The baseline row from an earlier run's wall time: its calls do not depend on load."""
    return Outcome(
        scenario.name,
        "baseline: one task at a time (httpx loop), time reused",
        "-",
        seconds,
        0.0,
        2 * scenario.tasks,
        scenario.tasks,
        scenario.tasks,
        0,
        0,
    )


def baseline_main(base: str, plan: Path, result: Path, client_limit: float) -> None:
    """The one-at-a-time loop: GET the user, then POST the site's members, task after task."""
    pairs = json.loads(plan.read_text())
    interval = 60.0 / client_limit
    completed = throttled = 0
    headers = {"x-api-user": DEMO_EMAIL, "x-api-token": DEMO_TOKEN}
    last = 0.0
    with httpx.Client(
        base_url=f"{base}/api/v0/corps/{CORP}", headers=headers, timeout=30
    ) as client:

        def send(method: str, path: str, body: Any = None) -> None:
            nonlocal last, throttled
            while True:
                wait = last + interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                last = time.monotonic()
                response = client.request(method, path, json=body)
                if response.status_code != 429:
                    response.raise_for_status()
                    return
                throttled += 1
                time.sleep(float(response.headers.get("retry-after", 1)))

        for email, site in pairs:
            send("GET", f"/users/{email}?expand=memberships")
            send("POST", f"/sites/{site}/members", {"members": [email]})
            completed += 1
    result.write_text(json.dumps({"completed": completed, "throttled": throttled}))


# -- reporting -------------------------------------------------------------------------------


def table(outcomes: list[Outcome], baseline: Outcome, scenario: Scenario) -> str:
    lines = [
        "| approach | repository | tasks | wall s | speed-up | peak RSS MiB | API calls "
        "| writes | 429s seen | tasks with a rate-limit error | completed |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for o in [baseline, *outcomes]:
        speedup = baseline.seconds / o.seconds
        lines.append(
            f"| {o.approach} | {o.db} | {scenario.tasks:,} | {o.seconds:.1f} | {speedup:.1f}x "
            f"| {o.peak_mib:.0f} | {o.sim_calls:,} | {o.writes:,} | {o.throttled} "
            f"| {o.rate_errors} | {o.completed:,} |"
        )
    return "\n".join(lines)


def describe(scenario: Scenario) -> str:
    return (
        f"{scenario.tasks:,} add-access tasks for {scenario.task_users:,} users over "
        f"{scenario.sites} sites (corp of {scenario.users:,} users); {scenario.latency_ms} ms per "
        f"call; server limit {scenario.server_limit:,}/min, client limit "
        f"{scenario.client_limit:,}/min; worker batch size {scenario.batch_size:,}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        parser = argparse.ArgumentParser(prog="provision_bench.py baseline")
        parser.add_argument("base")
        parser.add_argument("plan", type=Path)
        parser.add_argument("result", type=Path)
        parser.add_argument("--client-limit", type=float, required=True)
        args = parser.parse_args(sys.argv[2:])
        baseline_main(args.base, args.plan, args.result, args.client_limit)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument(
        "--scenario", nargs="+", choices=sorted(SCENARIOS), default=["plain", "ratelimit"]
    )
    parser.add_argument("--tasks", type=int, help="override the scenario's task count")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        help="skip the baseline run and use this wall time, measured before (one scenario)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} at the start",
        file=sys.stderr,
    )
    failed = False
    for name in args.scenario:
        scenario = SCENARIOS[name]
        if args.tasks:
            scenario = replace(
                scenario, tasks=args.tasks, task_users=min(scenario.task_users, args.tasks)
            )
        print(f"\n## {name}: {describe(scenario)}", file=sys.stderr)
        outcomes: list[Outcome] = []
        pairs: list[tuple[str, str]] | None = None
        with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
            for db in args.db:
                workdir = Path(tmp) / db
                workdir.mkdir()
                print(f"worker on {db} ...", file=sys.stderr)
                outcome, pairs = run_worker(scenario, db, workdir, args.seed, pairs)
                outcomes.append(outcome)
                print(f"  {outcome.seconds:.1f} s", file=sys.stderr)
        assert pairs is not None
        if args.baseline_seconds:
            baseline = reused_baseline(scenario, args.baseline_seconds)
        else:
            print("baseline ...", file=sys.stderr)
            baseline = run_baseline(scenario, args.seed, pairs)
        print(f"  {baseline.seconds:.1f} s", file=sys.stderr)
        load = os.getloadavg()
        print(f"\n### {name}\n\n{describe(scenario)}\n")
        print(table(outcomes, baseline, scenario))
        print(f"\nload average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
        for o in outcomes:
            speedup = baseline.seconds / o.seconds
            if o.completed != scenario.tasks or o.rate_errors or speedup < scenario.goal:
                failed = True
                print(
                    f"goal missed on {o.db}: {speedup:.1f}x (goal {scenario.goal:g}x), "
                    f"{o.completed:,}/{scenario.tasks:,} completed, {o.rate_errors} rate errors"
                )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
