"""`python -m sigsci_iga packages|endpoints ...` in a child process, with a loopback simulator.

The child gets a clean environment: every inherited SIGSCI_* variable is dropped, a SQLite
repository in the test's directory is set, and each test adds exactly the variables it means to
give (the API token for a package's secret, or the native connector's settings). Every run checks
that the token appears in neither output stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimRuntime, SimState

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "sigsci_iga" / "packages_data" / "signalsciences.yaml"
#: The parameters of the shipped package for the simulator's demo corp (the URL is added).
NATIVE_PARAMS = {"corp": DEMO_CORP, "email": DEMO_EMAIL}
TOKEN_ENV = {"SIGSCI_TOKEN": DEMO_TOKEN}


def param_args(params: dict[str, str]) -> list[str]:
    """`--param NAME=VALUE` for each item."""
    args: list[str] = []
    for name, value in params.items():
        args += ["--param", f"{name}={value}"]
    return args


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs the CLI in `workdir` against one SQLite repository file."""

    workdir: Path
    database: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIGSCI") and k not in ("FORCE_COLOR", "USER")
        }
        env.update(
            SIGSCI_IGA_DATABASE_URL=self.database_url,
            SIGSCI_IGA_RETRY_BASE_SECONDS="0.2",
            USER="cli-pkg-tester",
            COLUMNS="250",
            NO_COLOR="1",
        )
        env.update(extra)
        return env

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        """`python -m sigsci_iga ARGS`; the demo token never shows in its output."""
        done = subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", *map(str, args)],
            cwd=self.workdir,
            env=self.env(env or {}),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert DEMO_TOKEN not in result.output, (args, result.output)
        return result

    def ok(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.code == 0, (args, result.output)
        return result

    def json(self, *args: str | Path, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", env=env).stdout)

    def database_bytes(self) -> bytes:
        """The repository file and any SQLite side files (journal, WAL)."""
        files = sorted(self.workdir.glob(f"{self.database.name}*"))
        assert self.database in files
        return b"".join(f.read_bytes() for f in files)


@dataclass
class Sim:
    """A simulator served on loopback, run in this process (so its state can be changed)."""

    app: FastAPI
    url: str

    @property
    def state(self) -> SimState:
        runtime: SimRuntime = self.app.state.sim
        return runtime.state

    def native_env(self) -> dict[str, str]:
        """What the native connector reads: the API URL, the credentials and the corp."""
        return {
            "SIGSCI_API_URL": self.url,
            "SIGSCI_EMAIL": DEMO_EMAIL,
            "SIGSCI_TOKEN": DEMO_TOKEN,
            "SIGSCI_CORP": DEMO_CORP,
        }

    def calls_total(self) -> int:
        response = httpx.get(f"{self.url}/_sim/calls", timeout=10)
        response.raise_for_status()
        total: int = response.json()["total"]
        return total

    def user(self, email: str) -> dict[str, Any] | None:
        """The simulator's raw record of a user (`/_sim/users/{email}`), or None."""
        response = httpx.get(f"{self.url}/_sim/users/{email}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        user: dict[str, Any] = response.json()
        return user

    def sites_of(self, email: str) -> list[str]:
        """The explicit sites of a user the simulator holds (sorted)."""
        user = self.user(email)
        assert user is not None, f"{email} is not in the simulator"
        sites: list[str] = user["sites"]
        return sites

    def sites(self) -> list[str]:
        with self.state.lock:
            return sorted(self.state.sites)

    def pick(self, role: str, *, least: int = 1, skip: tuple[str, ...] = ()) -> str:
        """A seeded (not demo) user of `role` holding at least `least` explicit sites."""
        with self.state.lock:
            for user in self.state.users.values():
                if (
                    user.role == role
                    and len(user.sites) >= least
                    and user.status == "active"
                    and user.email not in (DEMO_EMAIL, *skip)
                    and not user.email.endswith(f"@{DEMO_CORP}.example")
                ):
                    return user.email
        raise AssertionError(f"the simulator has no active {role} with {least} site(s)")


def shown(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields of `accounts list --json` that the corp determines, sorted by email."""
    keys = ("email", "name", "role", "status", "sites")
    return sorted(({k: a[k] for k in keys} for a in accounts), key=lambda a: a["email"])
