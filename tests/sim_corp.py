"""One simulated corp reached in-process, and the client and endpoint that govern it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.sim import (
    DEMO_EMAIL,
    DEMO_TOKEN,
    FaultRule,
    SimConfig,
    SimRuntime,
    SimState,
    create_app,
    inprocess_transport,
)
from sigsci_iga.store import Repository


@dataclass
class SimulatedCorp:
    """The shared plumbing of the importer and provisioning harnesses."""

    app: FastAPI
    base_url: str = "http://sim"
    inprocess: bool = True
    extra_client_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, **config: Any) -> Self:
        return cls(create_app(SimConfig(**config)))

    @property
    def runtime(self) -> SimRuntime:
        runtime: SimRuntime = self.app.state.sim
        return runtime

    @property
    def state(self) -> SimState:
        return self.runtime.state

    @property
    def corp(self) -> str:
        return self.state.config.corp

    def add_fault(self, **rule: Any) -> None:
        self.runtime.faults.add(FaultRule(**rule))

    def client(self, **overrides: Any) -> SigSciClient:
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "corp": self.corp,
            "email": DEMO_EMAIL,
            "token": SecretStr(DEMO_TOKEN),
            "transport": inprocess_transport(self.app) if self.inprocess else None,
            "retry_wait_initial": 0.01,
            "retry_wait_max": 0.05,
            # Throttled reads give up after half a second here, not after 100 s.
            "throttle_wait_max": 0.05,
            "throttle_patience": 0.5,
            # The simulator answers as fast as it can; client-side pacing is not under test.
            "rate_limit_per_minute": 1_000_000.0,
            **self.extra_client_options,
            **overrides,
        }
        return SigSciClient(**values)

    def register(self, repo: Repository, endpoint: str | None = None) -> str:
        name = endpoint or self.corp
        repo.endpoints.add(name, corp=self.corp, api_url=self.base_url, email=DEMO_EMAIL)
        return name
