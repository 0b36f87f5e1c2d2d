"""The `sigsci-iga` command run as a child process against a loopback simulator, on SQLite.

Every run checks that the demo API token appears in neither of its output streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimRuntime, SimState
from sigsci_iga.store import Repository, TaskRecord, open_repository

NO_LIMIT = Limit(absolute=None, percent=None)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class World:
    """A loopback simulator, a SQLite repository file and the environment of the command."""

    app: FastAPI
    api_url: str
    db_path: Path
    cwd: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def runtime(self) -> SimRuntime:
        runtime: SimRuntime = self.app.state.sim
        return runtime

    @property
    def state(self) -> SimState:
        return self.runtime.state

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIGSCI") and k not in ("FORCE_COLOR", "USER")
        }
        env.update(
            {
                "SIGSCI_API_URL": self.api_url,
                "SIGSCI_EMAIL": DEMO_EMAIL,
                "SIGSCI_TOKEN": DEMO_TOKEN,
                "SIGSCI_CORP": DEMO_CORP,
                "SIGSCI_IGA_DATABASE_URL": self.database_url,
                "SIGSCI_IGA_RETRY_BASE_SECONDS": "0.2",
                "USER": "cli-tester",
                "COLUMNS": "250",
                "NO_COLOR": "1",
                **extra,
            }
        )
        return env

    def run(self, *args: str, **extra_env: str) -> Result:
        """`python -m sigsci_iga ARGS` in a child process; the token never shows in its output."""
        done = subprocess.run(  # noqa: S603  # our own module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", *args],
            env=self.env(**extra_env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert DEMO_TOKEN not in result.output, args
        return result

    def ok(self, *args: str, **extra_env: str) -> Result:
        result = self.run(*args, **extra_env)
        assert result.code == 0, (args, result.output)
        return result

    def exits(self, code: int, *args: str, **extra_env: str) -> Result:
        """Run a command that must end with exit code `code`."""
        result = self.run(*args, **extra_env)
        assert result.code == code, (args, result.code, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    # -- the simulator --------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """The simulator's loopback admin API (`/_sim/...`)."""
        response = httpx.request(method, f"{self.api_url}/_sim/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def sim_user(self, email: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.api_url}/_sim/users/{email}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        user: dict[str, Any] = response.json()
        return user

    def access(self, email: str) -> tuple[str, list[str]] | None:
        user = self.state.get_user(email)
        return None if user is None else (user.role, sorted(user.sites))

    def pick(self, role: str, *, least: int = 1, skip: tuple[str, ...] = ()) -> str:
        with self.state.lock:
            for user in self.state.users.values():
                if (
                    user.role == role
                    and len(user.sites) >= least
                    and not user.email.endswith("@testcorp.example")
                    and user.email not in skip
                ):
                    return user.email
        raise AssertionError(f"no {role} with {least} sites")

    def sites(self) -> list[str]:
        with self.state.lock:
            return list(self.state.sites)

    # -- the repository -------------------------------------------------------------------

    def repo(self) -> Repository:
        return open_repository(self.database_url)

    def queue(self, operation: Operation, email: str, **params: Any) -> TaskRecord:
        """Queue a validated request without running it (what `request ...` does with instant
        provisioning off), in-process: for tests whose subject is what happens next."""
        repo = self.repo()
        try:
            built = build_params(repo, DEMO_CORP, operation, **params)
            return repo.tasks.create(DEMO_CORP, operation, email, built, requester="cli-tester")
        finally:
            repo.close()

    def journal(self) -> list[dict[str, Any]]:
        repo = self.repo()
        try:
            return [e.to_json() for e in repo.journal.list()]
        finally:
            repo.close()

    def tasks(self) -> list[TaskRecord]:
        repo = self.repo()
        try:
            return repo.tasks.list()
        finally:
            repo.close()

    def import_corp(self) -> None:
        """Register the endpoint and import the corp (in-process: fast, same app)."""
        repo = self.repo()
        try:
            repo.endpoints.add(DEMO_CORP, corp=DEMO_CORP, api_url=self.api_url, email=DEMO_EMAIL)

            async def main() -> None:
                async with SigSciClient(
                    base_url=self.api_url,
                    corp=DEMO_CORP,
                    email=DEMO_EMAIL,
                    token=SecretStr(DEMO_TOKEN),
                    rate_limit_per_minute=1_000_000.0,
                ) as client:
                    importer = Importer(repo, DEMO_CORP, SignalSciencesConnector(client))
                    thresholds = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
                    await importer.run(ImportOptions(mode="full", thresholds=thresholds))

            asyncio.run(main())
        finally:
            repo.close()
