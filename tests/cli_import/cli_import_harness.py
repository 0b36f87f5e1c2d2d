"""Running `python -m sigsci_iga` in a subprocess against a simulator on loopback.

The child gets a clean environment: every inherited SIGSCI_* variable is dropped, then the API
URL, the demo credentials, the corp and a SQLite repository in a temporary directory are set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sigsci_iga.sim import DEMO_EMAIL, DEMO_TOKEN, SimState

CONFIG = {"users": 30, "sites": 5, "seed": 31, "pending_share": 0.15}


@dataclass
class Cli:
    """Runs the CLI against one simulator and one repository file."""

    base_url: str
    app: FastAPI
    workdir: Path
    #: Extra settings for every following command (e.g. a correlation rule).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> SimState:
        state: SimState = self.app.state.sim.state
        return state

    @property
    def database(self) -> Path:
        return self.workdir / "x.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI_")}
        env.update(
            SIGSCI_API_URL=self.base_url,
            SIGSCI_EMAIL=DEMO_EMAIL,
            SIGSCI_TOKEN=DEMO_TOKEN,
            SIGSCI_CORP=self.state.config.corp,
            SIGSCI_IGA_DATABASE_URL=self.database_url,
            COLUMNS="200",
            NO_COLOR="1",
        )
        env.update(self.extra_env)
        return env

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        """Run one command; fails the test if it does not exit with `code`."""
        done = subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", *args],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, (
            f"sigsci-iga {' '.join(args)} exited {done.returncode}, expected {code}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    # -- expectations read from the simulator ------------------------------------------------

    def expected_accounts(self) -> list[dict[str, Any]]:
        state = self.state
        with state.lock:
            every_site = sorted(state.sites)
            return sorted(
                (
                    {
                        "email": u.email,
                        "name": u.name,
                        "role": u.role,
                        "status": "active" if u.status == "active" else "pending",
                        "sites": every_site if u.role == "owner" else sorted(u.sites),
                    }
                    for u in state.users.values()
                ),
                key=lambda a: a["email"],
            )


def shown(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields of `accounts list --json` that the simulator determines."""
    keys = ("email", "name", "role", "status", "sites")
    return [{k: a[k] for k in keys} for a in accounts]
