"""Import benchmark: whole `sigsci-iga` processes against `sigsci-iga sim serve`, and a floor.

Run by hand (never in the test suite), for example:

    .venv/bin/python bench/import_bench.py                                  # 5k and 50k users
    .venv/bin/python bench/import_bench.py --sizes 2000 --incremental-sizes 2000   # smoke run
    .venv/bin/python bench/import_bench.py --sizes 500000 --listing-sizes --users-per-site 100

What runs, for every corp size (users; sites = users / 50 unless `--users-per-site` says
otherwise, at least 100; 10 sites per user):

* the simulator, `sigsci-iga sim serve`, in a process of its own on loopback, warmed up (it
  caches the serialized users list) before anything is timed;
* the floor: `bench/fetch_floor.py` in its own process, fetching the same bytes a full import
  reads (the users list with memberships, the site pages) and parsing them with `json.loads`;
* per database (a new SQLite file, or a new PostgreSQL database): `sigsci-iga db upgrade`
  (untimed), then `sigsci-iga import --full`, timed as a whole process from the outside;
* listing sizes: `sigsci-iga accounts list --json` (time to its first byte and to its end) and
  the `--site`, `--role` and `--status` filters;
* incremental sizes: 10 changes through the simulator's API (roles, memberships added and
  removed, invitations), then `sigsci-iga import --incremental`, a whole process again.

Time is wall-clock seconds of the child process, CLI start included, and its CPU seconds (user
plus system). Peak memory is the child's own maximum resident set size, as `/usr/bin/time`
reports it.
API calls are counted by the simulator. Thresholds are off (`-1`) so the changes are applied.
The machine's load (`/proc/loadavg`) is recorded before and after every size: other work on the
machine slows every figure, the floor included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EMAIL = "owner@testcorp.example"
TOKEN = "sim-demo-token"  # noqa: S105  # the simulator's published demo token
CORP = "testcorp"
PAGE_SIZE = 100
THRESHOLDS_OFF = [
    "--max-suspend", "-1", "--max-suspend-percent", "-1",
    "--max-links-removed", "-1", "--max-links-removed-percent", "-1",
    "--max-sites-inactivated", "-1", "--max-sites-inactivated-percent", "-1",
]  # fmt: skip
PG_HOST = os.environ.get("SIGSCI_IGA_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SIGSCI_IGA_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("SIGSCI_IGA_BENCH_PG_USER", "postgres")


# -- measuring a child process -------------------------------------------------------------------


@dataclass
class Measured:
    """One child process: wall and CPU seconds, peak RSS, time to its first byte of output."""

    seconds: float
    #: User plus system CPU seconds of the child itself.
    cpu: float
    rss_mb: float
    first_byte: float | None
    stdout: str = field(repr=False, default="")


def measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `command` to its end, reading its output as it comes; fail loudly if it fails.

    The child runs under `/usr/bin/time`, which reports its peak RSS: `os.wait4` on a child of
    this (large) process would report this process's size, which Linux carries across `exec`.
    """
    with tempfile.NamedTemporaryFile(mode="r", suffix=".time") as report:
        started = time.perf_counter()
        child = subprocess.Popen(  # noqa: S603  # our own interpreter and scripts
            ["/usr/bin/time", "-o", report.name, "-f", "%M %U %S", *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        first: float | None = None
        chunks: list[bytes] = []
        while chunk := child.stdout.read1(1 << 16):
            if first is None:
                first = time.perf_counter() - started
            chunks.append(chunk)
        errors = child.stderr.read()
        child.wait()
        seconds = time.perf_counter() - started
        if child.returncode != 0:
            raise SystemExit(
                f"{' '.join(command[1:4])} ... exited {child.returncode}\n{errors.decode()[-3000:]}"
            )
        # GNU time reports %M in KiB; the last line is ours even if the child wrote there.
        rss_kb, user, system = report.read().split("\n")[-2].split()
    cpu = float(user) + float(system)
    return Measured(seconds, cpu, int(rss_kb) / 1024, first, b"".join(chunks).decode())


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text(encoding="ascii").split()[1])
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


# -- the simulator -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sim:
    """`sigsci-iga sim serve` in its own process, and the calls the benchmark makes to it."""

    def __init__(self, users: int, sites: int, memberships: float, seed: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [
                sys.executable,
                "-m",
                "sigsci_iga",
                "sim",
                "serve",
                "--port",
                str(self.port),
                "--users",
                str(users),
                "--sites",
                str(sites),
                "--memberships-per-user",
                str(memberships),
                "--seed",
                str(seed),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 1800
        while True:
            with contextlib.suppress(OSError):
                self.admin("GET", "/health")
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.5)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)

    def _call(self, method: str, url: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if auth:
            headers.update({"x-api-user": EMAIL, "x-api-token": TOKEN})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310  # loopback
            raw = response.read()
        return json.loads(raw) if raw else None

    def admin(self, method: str, path: str) -> Any:
        return self._call(method, f"{self.base_url}/_sim{path}", auth=False)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"{self.base_url}/api/v0/corps/{CORP}{path}", body)

    def calls(self) -> int:
        return int(self.admin("GET", "/calls")["total"])

    def reset_calls(self) -> None:
        self.admin("DELETE", "/calls")

    def warm(self) -> None:
        """Have the simulator build (and cache) the users list before anything is timed."""
        request = urllib.request.Request(  # noqa: S310  # loopback
            f"{self.base_url}/api/v0/corps/{CORP}/users?expand=memberships",
            headers={"x-api-user": EMAIL, "x-api-token": TOKEN},
        )
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310  # loopback
            while response.read(1 << 20):
                pass
        self.reset_calls()

    def make_changes(self, count: int, salt: str) -> int:
        """`count` changes through the API, each to a different user; returns how many.

        The users list is read without memberships (a 500,000-user list with them would cost
        the benchmark gigabytes), then each chosen user with theirs.
        """
        listed = self.api("GET", "/users")["data"]
        candidates = sorted(u["email"] for u in listed if u["role"] in ("user", "observer"))
        del listed
        sites = [s["name"] for s in self.api("GET", "/sites?page=1&limit=100")["data"]]
        for index in range(count):
            email = candidates[(index * 7919) % len(candidates)]
            user = self.api("GET", f"/users/{email}?expand=memberships")
            held = {m["site"]["name"] for m in user["memberships"]["data"]}
            kind = index % 5
            if kind in (0, 4) or (kind == 2 and not held):
                role = "observer" if user["role"] != "observer" else "user"
                self.api("PATCH", f"/users/{email}", {"role": role})
            elif kind == 1:
                site = next(s for s in sites if s not in held)
                self.api("POST", f"/sites/{site}/members", {"members": [email]})
            elif kind == 2:
                self.api("DELETE", f"/sites/{sorted(held)[0]}/members/{email}")
            else:
                body = {"role": "user", "memberships": {"data": [{"site": {"name": sites[0]}}]}}
                self.api("POST", f"/users/bench-{salt}-{index}@example.com/invite", body)
        self.reset_calls()
        return count


# -- the repository ------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A URL for a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in workdir.glob(path.name + "*"):
                leftover.unlink()
        return
    import psycopg  # noqa: PLC0415  # only the PostgreSQL scenarios need the driver

    name = f"sigsci_iga_import_bench_{secrets.token_hex(6)}"
    admin = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: A 500,000-user list is some 690 MB of JSON, above the client's default cap on a decoded body.
MAX_BODY_BYTES = str(4 * 1024**3)


def cli_env(base_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI_")}
    env.update(
        SIGSCI_IGA_MAX_BODY_BYTES=MAX_BODY_BYTES,
        SIGSCI_API_URL=base_url,
        SIGSCI_EMAIL=EMAIL,
        SIGSCI_TOKEN=TOKEN,
        SIGSCI_CORP=CORP,
        SIGSCI_IGA_DATABASE_URL=database_url,
        NO_COLOR="1",
    )
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sigsci_iga", *args]


# -- one corp size -------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, users: int) -> list[dict[str, Any]]:
    """Full imports (and listings) into every database, then one set of changes, then the
    incremental imports: every database's incremental run sees the same changes."""
    sites = max(100, users // args.users_per_site)
    rows: list[dict[str, Any]] = []
    print(f"{users:,} users / {sites:,} sites: starting the simulator", file=sys.stderr)
    sim = Sim(users, sites, args.memberships, args.seed)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="import-bench-") as tmp,
            contextlib.ExitStack() as dbs,
        ):
            envs: list[dict[str, str]] = []
            for db in args.dbs:
                load_before = load()
                sim.warm()
                floor = measure(
                    [
                        sys.executable,
                        str(HERE / "fetch_floor.py"),
                        sim.base_url,
                        CORP,
                        EMAIL,
                        TOKEN,
                        str(PAGE_SIZE),
                    ]
                )
                corp = json.loads(floor.stdout)
                floor_calls = sim.calls()
                env = cli_env(sim.base_url, dbs.enter_context(database(db, Path(tmp))))
                envs.append(env)
                start = measure(cli("--help"), env)
                measure(cli("db", "upgrade"), env)
                sim.warm()
                full = measure(cli("import", "--full", "--json", *THRESHOLDS_OFF), env)
                full_run = json.loads(full.stdout)
                assert full_run["run"]["status"] == "succeeded", full_run
                row: dict[str, Any] = {
                    "users": corp["users"],
                    "sites": corp["sites"],
                    "memberships": corp["memberships"],
                    "db": db,
                    "cli_start": asdict(start),
                    "floor": asdict(floor),
                    "floor_calls": floor_calls,
                    "full": asdict(full),
                    "full_calls": sim.calls(),
                    "load_before": load_before,
                }
                if users in args.listing_sizes:
                    row["listing"] = listings(env)
                row["load_after"] = load()
                rows.append(row)
                print(f"  {db}: {short(row)}", file=sys.stderr, flush=True)
            if users in args.incremental_sizes:
                changes = sim.make_changes(args.changes, secrets.token_hex(3))
                for row, env in zip(rows, envs, strict=True):
                    sim.reset_calls()
                    inc = measure(cli("import", "--incremental", "--json", *THRESHOLDS_OFF), env)
                    inc_run = json.loads(inc.stdout)
                    assert inc_run["mode"] == "incremental", inc_run
                    assert inc_run["run"]["status"] == "succeeded", inc_run
                    row["incremental"] = asdict(inc)
                    row["incremental_calls"] = sim.calls()
                    row["changes"] = changes
                    row["incremental_diff"] = inc_run["diff"]
                    row["incremental_load"] = load()
                    print(f"  {row['db']}: {short(row)}", file=sys.stderr, flush=True)
    finally:
        sim.close()
    for row in rows:
        for part in ("cli_start", "floor", "full", "incremental"):
            if part in row:
                row[part].pop("stdout", None)
    return rows


def listings(env: dict[str, str]) -> dict[str, Any]:
    whole = measure(cli("accounts", "list", "--json"), env)
    accounts = json.loads(whole.stdout)
    site = next(a["sites"][0] for a in accounts if a["sites"])
    out: dict[str, Any] = {
        "accounts": len(accounts),
        "first_byte": whole.first_byte,
        "total": whole.seconds,
        "cpu": whole.cpu,
        "rss_mb": whole.rss_mb,
    }
    for label, extra in (
        ("site", ["--site", site]),
        ("role", ["--role", "admin"]),
        ("status", ["--status", "pending"]),
    ):
        filtered = measure(cli("accounts", "list", "--json", *extra), env)
        out[label] = {
            "total": filtered.seconds,
            "first_byte": filtered.first_byte,
            "accounts": len(json.loads(filtered.stdout)),
        }
    return out


def short(row: dict[str, Any]) -> str:
    text = (
        f"floor {row['floor']['seconds']:.1f} s, full {row['full']['seconds']:.1f} s "
        f"{row['full']['rss_mb']:.0f} MB"
    )
    if "incremental" in row:
        text += f", incremental {row['incremental']['seconds']:.2f} s"
    return text


# -- tables --------------------------------------------------------------------------------------


def tables(rows: list[dict[str, Any]]) -> str:
    out = [
        "Full import (`import --full`, whole process) against the floor (`fetch_floor.py`, "
        "whole process):",
        "",
        "| users | sites | memberships | db | floor s (CPU) | import s (CPU) | import / floor "
        "| CLI start s | import peak RSS MB | floor peak RSS MB | API calls (floor) "
        "| load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["full"]["seconds"] / r["floor"]["seconds"]
        out.append(
            f"| {r['users']:,} | {r['sites']:,} | {r['memberships']:,} | {r['db']} "
            f"| {r['floor']['seconds']:.2f} ({r['floor']['cpu']:.2f}) "
            f"| {r['full']['seconds']:.2f} ({r['full']['cpu']:.2f}) | {ratio:.2f}x "
            f"| {r['cli_start']['seconds']:.2f} "
            f"| {r['full']['rss_mb']:,.0f} | {r['floor']['rss_mb']:,.0f} "
            f"| {r['full_calls']} ({r['floor_calls']}) | {r['load_before']} → {r['load_after']} |"
        )
    inc = [r for r in rows if "incremental" in r]
    if inc:
        out += [
            "",
            "Incremental import (`import --incremental`, whole process) after changes made "
            "through the API:",
            "",
            "| users | db | changes | API calls | seconds (CPU) | CLI start s | peak RSS MB "
            "| load after |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in inc:
            out.append(
                f"| {r['users']:,} | {r['db']} | {r['changes']} | {r['incremental_calls']} "
                f"| {r['incremental']['seconds']:.2f} ({r['incremental']['cpu']:.2f}) "
                f"| {r['cli_start']['seconds']:.2f} | {r['incremental']['rss_mb']:,.0f} "
                f"| {r['incremental_load']} |"
            )
    listed = [r for r in rows if "listing" in r]
    if listed:
        out += [
            "",
            "`accounts list --json` (whole process; first byte and end of its output):",
            "",
            "| accounts | db | first byte s | total s (CPU) | CLI start s | peak RSS MB "
            "| --site s (rows) | --role admin s (rows) | --status pending s (rows) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in listed:
            li = r["listing"]
            out.append(
                f"| {li['accounts']:,} | {r['db']} | {li['first_byte']:.2f} "
                f"| {li['total']:.2f} ({li['cpu']:.2f}) | {r['cli_start']['seconds']:.2f} "
                f"| {li['rss_mb']:,.0f} | {li['site']['total']:.2f} ({li['site']['accounts']:,}) "
                f"| {li['role']['total']:.2f} ({li['role']['accounts']:,}) "
                f"| {li['status']['total']:.2f} ({li['status']['accounts']:,}) |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--incremental-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--listing-sizes", type=int, nargs="*", default=[50_000])
    parser.add_argument("--dbs", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--memberships", type=float, default=10.0, help="sites per user")
    parser.add_argument(
        "--users-per-site", type=int, default=50, help="sites = users / this, at least 100"
    )
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.incremental_sizes is None:
        args.incremental_sizes = args.sizes
    sizes = sorted(set(args.sizes) | set(args.incremental_sizes) | set(args.listing_sizes))
    sizes = [s for s in sizes if s in args.sizes or s in args.incremental_sizes]
    print(f"machine: {machine()}; load {load()}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for users in sizes:
        rows.extend(run_size(args, users))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    print(f"Machine: {machine()}. Site page size {PAGE_SIZE}; target full-import calls "
          f"1 + ceil(sites / {PAGE_SIZE}) + 1 (the empty last page).")  # fmt: skip
    print()
    print(tables(rows))


if __name__ == "__main__":
    main()
