"""A local, deterministic simulator of the Signal Sciences API v0 (standalone: imports no other
part of sigsci_iga).

Build an app with `create_app(SimConfig(...))`; reach it in-process with `inprocess_transport(app)`
or over loopback with `serve_in_thread(app)`. `app.state.sim` holds the state, faults and counters.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sigsci_iga.sim.app import create_app
    from sigsci_iga.sim.config import (
        API_PREFIX,
        DEMO_CORP,
        DEMO_EMAIL,
        DEMO_PASSWORD,
        DEMO_TOKEN,
        OBSERVER_EMAIL,
        OBSERVER_PASSWORD,
        OBSERVER_TOKEN,
        SimConfig,
        demo_headers,
        observer_headers,
    )
    from sigsci_iga.sim.faults import FaultController, FaultKind, FaultRule, parse_fault_spec
    from sigsci_iga.sim.runtime import SimRuntime
    from sigsci_iga.sim.server import run_server, serve_in_thread
    from sigsci_iga.sim.state import SimError, SimState
    from sigsci_iga.sim.transport import inprocess_transport

#: Where each name lives, imported on first use: `sigsci-iga sim --help` and the rest of the CLI
#: need neither FastAPI nor uvicorn until a simulator really starts.
_HOMES: dict[str, tuple[str, ...]] = {
    "sigsci_iga.sim.app": ("create_app",),
    "sigsci_iga.sim.config": (
        "API_PREFIX",
        "DEMO_CORP",
        "DEMO_EMAIL",
        "DEMO_PASSWORD",
        "DEMO_TOKEN",
        "OBSERVER_EMAIL",
        "OBSERVER_PASSWORD",
        "OBSERVER_TOKEN",
        "SimConfig",
        "demo_headers",
        "observer_headers",
    ),
    "sigsci_iga.sim.faults": (
        "FaultController",
        "FaultKind",
        "FaultRule",
        "parse_fault_spec",
    ),
    "sigsci_iga.sim.runtime": ("SimRuntime",),
    "sigsci_iga.sim.server": (
        "run_server",
        "serve_in_thread",
    ),
    "sigsci_iga.sim.state": (
        "SimError",
        "SimState",
    ),
    "sigsci_iga.sim.transport": ("inprocess_transport",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "API_PREFIX",
    "DEMO_CORP",
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "DEMO_TOKEN",
    "OBSERVER_EMAIL",
    "OBSERVER_PASSWORD",
    "OBSERVER_TOKEN",
    "FaultController",
    "FaultKind",
    "FaultRule",
    "SimConfig",
    "SimError",
    "SimRuntime",
    "SimState",
    "create_app",
    "demo_headers",
    "inprocess_transport",
    "observer_headers",
    "parse_fault_spec",
    "run_server",
    "serve_in_thread",
]
