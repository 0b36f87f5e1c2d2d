"""Helpers for the REST package tests: the shipped package, edited copies, a simulated corp."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from sigsci_iga.connectors.rest.loader import BoundPackage, LoadedPackage, load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, inprocess_transport

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "sigsci_iga" / "packages_data" / "signalsciences.yaml"
NO_LIMIT = Limit(absolute=None, percent=None)
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
SIM_PARAMS = {"corp": DEMO_CORP, "email": DEMO_EMAIL, "base_url": "http://sim"}
SIM_ENV = {"SIGSCI_TOKEN": DEMO_TOKEN}


def shipped_document() -> dict[str, Any]:
    """The shipped package as plain data, to edit in a test."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    return copy.deepcopy(data)


def write_package(directory: Path, document: Any, name: str = "pkg.yaml") -> Path:
    """Write a package document as YAML (or JSON for a .json name)."""
    path = directory / name
    if name.endswith(".json"):
        path.write_text(json.dumps(document, indent=2))
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def bound_shipped(
    params: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> BoundPackage:
    return load_package(SHIPPED).bind(params or SIM_PARAMS, env=env or SIM_ENV)


def sim_connector(app: FastAPI, package: BoundPackage | None = None) -> RestConnector:
    """A RestConnector for the shipped package against the simulator, with fast retries."""
    return RestConnector(package or bound_shipped(), transport=inprocess_transport(app))


def mock_connector(
    loaded: LoadedPackage,
    handler: Callable[[httpx.Request], httpx.Response],
    params: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> RestConnector:
    """A RestConnector whose HTTP answers come from `handler` (an httpx MockTransport)."""
    bound = loaded.bind(params or {}, env=env or {})
    return RestConnector(bound, transport=httpx.MockTransport(handler))


def generic_document(**overrides: Any) -> dict[str, Any]:
    """A small generic package (not Signal Sciences) for pagination and auth tests."""
    document: dict[str, Any] = {
        "name": "generic",
        "version": "1",
        "parameters": {
            "token": {"secret": True, "env": "GENERIC_TOKEN", "required": True},
        },
        "connection": {
            "base_url": "https://api.example.com/v1",
            "auth": {"key": {"type": "static_headers", "headers": {"x-key": "${params.token}"}}},
            "read_attempts": 2,
            "retry_wait_initial_seconds": 0.0,
            "retry_wait_max_seconds": 0.0,
        },
        "import": {
            "site_entitlement_type": "Group",
            "accounts": {
                "calls": [{"url": "/users"}],
                "records_path": "items",
                "key_field": "id",
                "fields": {"email": {"path": "mail"}, "role": {"constant": "user"}},
                "status": {"path": "state", "active_values": ["on"]},
            },
            "entitlement_types": {
                "Group": {
                    "calls": [{"url": "/groups"}],
                    "records_path": "items",
                    "value_field": "name",
                }
            },
        },
    }
    for dotted, value in overrides.items():
        target = document
        keys = dotted.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value
    return document


def json_response(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)
