"""Serving the simulator for real, and its CLI."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from sigsci_iga.sim import FaultKind, SimConfig, demo_headers, parse_fault_spec, serve_in_thread
from sigsci_iga.sim.cli import sim_app


def test_serve_in_thread_picks_a_free_port_and_stops_cleanly() -> None:
    with serve_in_thread(SimConfig(users=5, sites=1)) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert not base_url.endswith(":0")
        response = httpx.get(f"{base_url}/api/v0/corps", headers=demo_headers(), timeout=5)
        assert response.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/_sim/health", timeout=1)


def test_two_servers_run_side_by_side_with_separate_state() -> None:
    with (
        serve_in_thread(SimConfig(users=5, sites=1)) as first,
        serve_in_thread(SimConfig(users=7, sites=1)) as second,
    ):
        assert first != second
        assert httpx.get(f"{first}/_sim/health").json()["users"] == 5
        assert httpx.get(f"{second}/_sim/health").json()["users"] == 7


def test_fault_specs_read_kind_and_optional_probability() -> None:
    assert parse_fault_spec("drop").kind is FaultKind.DROP
    rule = parse_fault_spec("throttle_429:0.25")
    assert (rule.kind, rule.probability) == (FaultKind.THROTTLE_429, 0.25)
    with pytest.raises(ValueError, match="KIND"):
        parse_fault_spec("meteor:0.5")


def test_cli_serve_documents_its_options_and_rejects_bad_settings() -> None:
    runner = CliRunner()
    helped = runner.invoke(sim_app, ["serve", "--help"])
    assert helped.exit_code == 0
    for option in ("--port", "--seed", "--users", "--fault", "--rate-limit", "--token-expiry"):
        assert option in helped.output
    bad = runner.invoke(sim_app, ["serve", "--not-found-status", "418"])
    assert bad.exit_code != 0
    bad_fault = runner.invoke(sim_app, ["serve", "--fault", "meteor"])
    assert bad_fault.exit_code != 0
