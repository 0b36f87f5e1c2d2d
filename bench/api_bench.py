"""API benchmark: `sigsci-iga serve` under 50 concurrent clients, on SQLite and PostgreSQL.

Run by hand (not part of the test suite), for example:

    .venv/bin/python bench/api_bench.py                          # 50,000 accounts, both databases
    .venv/bin/python bench/api_bench.py --users 5000 --db sqlite --workers 1   # a quick run

For each database: a repository is filled by a full import of a simulated corp (`--users`
users, `--sites` sites; the simulator serves over loopback in this process), then for each
`--workers` value `sigsci-iga serve --no-scheduler --no-worker --workers N` is started as its own
process(es) on a free port and `--clients` concurrent clients (one keep-alive connection each,
a small asyncio HTTP/1.1 client in this process) send:

* reads: `GET /api/v1/accounts?limit=100` from a random place (a cursor), a third of them with a
  `site` filter and a third with a `role` filter;
* requests: `POST /api/v1/requests` (add-access of a random site to a random user). The worker is
  off, so what is timed is what a caller waits for: validation and recording the task; Signal
  Sciences work happens later, in the worker.

Each scenario runs twice: as fast as answered (each client sends its next request when the last
one is answered: the service's throughput, with 50 requests always queued), then open-loop at
each of `--rates` requests per second in all (each client's requests arrive at random whether
or not the last was answered; latency counts from when a request was due). Reported per run:
requests, seconds, requests per second, p50 / p99 / max latency in ms and errors. Latency is the
whole HTTP round trip over loopback seen by a client. The floor is the same client doing
`GET /healthz` (no database, no auth).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_repository import repository
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, create_app, serve_in_thread

NO_LIMIT = Limit(absolute=None, percent=None)
KEY = "api-bench-token-key-" + "b" * 32


@dataclass
class Result:
    scenario: str
    db: str
    workers: int
    offered: float | None
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        offered = "as fast as answered" if self.offered is None else f"{self.offered:,.0f}/s"
        return (
            f"| {self.scenario} | {self.db} | {self.workers} | {offered} | {self.requests:,} | "
            f"{self.seconds:.1f} | {self.requests / self.seconds:,.0f} | {p50:.1f} | {p99:.1f} | "
            f"{lat[-1]:.1f} | {self.errors} |"
        )


HEADER = (
    "| scenario | db | processes | offered load | requests | seconds | req/s | p50 ms | p99 ms "
    "| max ms | errors |\n|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def fill(database_url: str, sim_url: str) -> None:
    from sigsci_iga.store import open_repository  # noqa: PLC0415

    repo = open_repository(database_url)
    try:
        repo.endpoints.add(DEMO_CORP, corp=DEMO_CORP, api_url=sim_url, email=DEMO_EMAIL)
        async with SigSciClient(
            base_url=sim_url,
            corp=DEMO_CORP,
            email=DEMO_EMAIL,
            token=SecretStr(DEMO_TOKEN),
            rate_limit_per_minute=1_000_000.0,
            timeout=300,
        ) as client:
            importer = Importer(repo, DEMO_CORP, SignalSciencesConnector(client))
            thresholds = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
            await importer.run(ImportOptions(mode="full", thresholds=thresholds))
    finally:
        repo.close()


class Connection:
    """One keep-alive HTTP/1.1 connection, written with asyncio streams.

    The load generator shares the two cores with the server, so it must cost little: httpx's
    async client spends about as much CPU on a small request as the service does.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any) -> int:
        """Send one request and read its whole answer; the answer's status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        extra = "Content-Type: application/json\r\n" if body is not None else ""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\n{self.head}{extra}"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def drive(
    base: str,
    token: str,
    clients: int,
    per_client: int,
    make: Any,
    rate: float | None = None,
) -> tuple[float, list[float], int]:
    """`clients` connections send `clients * per_client` requests: back to back, or at `rate`.

    At a rate, requests fall due at random (exponential gaps with a mean of `1 / rate`
    seconds, a Poisson process) whether or not earlier ones were answered; a free connection
    takes the next one, and its latency counts from when it was due, so time spent waiting for
    a free connection is not hidden (coordinated omission).
    """
    latencies: list[float] = []
    errors = 0
    host, port = base.removeprefix("http://").rsplit(":", 1)
    total = clients * per_client
    schedule = random.Random(0)  # load shape, not security
    due_times: list[float] = []
    if rate is not None:
        at = 0.0
        for _ in range(total):
            at += schedule.expovariate(rate)
            due_times.append(at)
    taken = 0

    async def one_client(seed: int) -> None:
        nonlocal errors, taken
        rng = random.Random(seed)  # load shape, not security
        connection = Connection(host, int(port), token)
        try:
            while taken < total:
                index, taken = taken, taken + 1
                if rate is not None:
                    due = started + due_times[index]
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                else:
                    due = time.perf_counter()
                method, path, body = make(rng)
                status = await connection.request(method, path, body)
                latencies.append((time.perf_counter() - due) * 1000)
                if status >= 400:
                    errors += 1
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    return time.perf_counter() - started, latencies, errors


@dataclass
class Corp:
    emails: list[str]
    users: list[str]
    sites: list[str]


def scenarios(corp: Corp) -> list[tuple[str, Any]]:
    """(name, request maker) for the floor, the reads and the requests."""

    def health(_rng: random.Random) -> tuple[str, str, None]:
        return "GET", "/healthz", None

    def read(rng: random.Random) -> tuple[str, str, None]:
        start = rng.choice(corp.emails)
        cursor = base64.urlsafe_b64encode(start.encode()).decode().rstrip("=")
        path = f"/api/v1/accounts?limit=100&cursor={cursor}"
        pick = rng.random()
        if pick < 1 / 3:
            path += f"&site={rng.choice(corp.sites)}"
        elif pick < 2 / 3:
            path += "&role=user"
        return "GET", path, None

    def request(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
        body = {
            "operation": "add_access",
            "email": rng.choice(corp.users),
            "sites": [rng.choice(corp.sites)],
            "justification": "api bench",
        }
        return "POST", "/api/v1/requests", body

    return [("healthz (floor)", health), ("GET accounts", read), ("POST requests", request)]


def serve(env: dict[str, str], workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = open(os.environ.get("SIGSCI_IGA_BENCH_SERVER_LOG", os.devnull), "ab")  # noqa: SIM115  # lives as long as the server
    server = subprocess.Popen(  # noqa: S603  # our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "sigsci_iga",
            "serve",
            "--port",
            str(port),
            "--no-scheduler",
            "--no-worker",
            "--log-format",
            "text",
            "--workers",
            str(workers),
        ],
        env=env,
        # The service's log, for a run that goes wrong: SIGSCI_IGA_BENCH_SERVER_LOG names a file.
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return base, server


def bench_database(kind: str, sim_url: str, corp: Corp, args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, repository(kind, Path(tmp)) as repo:
        database_url = str(repo.engine.url.render_as_string(hide_password=False))
        repo.close()
        started = time.perf_counter()
        asyncio.run(fill(database_url, sim_url))
        print(f"{kind}: imported in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
        env.update(
            SIGSCI_API_URL=sim_url,
            SIGSCI_EMAIL=DEMO_EMAIL,
            SIGSCI_TOKEN=DEMO_TOKEN,
            SIGSCI_CORP=DEMO_CORP,
            SIGSCI_IGA_DATABASE_URL=database_url,
            SIGSCI_IGA_TOKEN_KEY=KEY,
        )
        created = subprocess.run(  # our own module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", "tokens", "create", "bench", "--role", "admin"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        token = created.stdout.strip().splitlines()[-1]
        for workers in args.workers:
            base, server = serve(env, workers)
            try:
                for name, make in scenarios(corp):
                    for rate in [None, *args.rates]:
                        seconds, lat, errors = asyncio.run(
                            drive(base, token, args.clients, args.per_client, make, rate)
                        )
                        results.append(
                            Result(name, kind, workers, rate, len(lat), seconds, lat, errors)
                        )
                        print(results[-1].row(), file=sys.stderr)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="`serve --workers` values to run"
    )
    parser.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[100.0],
        help="open-loop rates (requests/s in all) to offer after the as-fast-as-answered run",
    )
    args = parser.parse_args()

    sim = create_app(SimConfig(users=args.users, sites=args.sites, seed=42))
    state = sim.state.sim.state
    emails = sorted(state.users)
    corp = Corp(
        emails=emails,
        users=[e for e in emails if state.users[e].role in ("user", "admin", "observer")],
        sites=sorted(state.sites),
    )
    print(f"corp: {len(emails):,} users, {len(corp.sites):,} sites", file=sys.stderr)
    results: list[Result] = []
    with serve_in_thread(sim) as sim_url:
        for kind in args.db:
            results.extend(bench_database(kind, sim_url, corp, args))
    print(
        f"\n{args.clients} concurrent clients x {args.per_client} requests, {len(emails):,} accounts"
    )
    print(HEADER)
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
