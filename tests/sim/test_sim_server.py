"""Serving the simulator for real, and its CLI."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from sigsci_iga.sim import (
    FaultKind,
    SimConfig,
    create_app,
    demo_headers,
    inprocess_transport,
    parse_fault_spec,
    serve_in_thread,
)
from sigsci_iga.sim.cli import sim_app
from sigsci_iga.sim.server import bound_socket


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


def _nodelay_on_accepted_connection(listener: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection an asyncio server accepts on `listener`."""

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted: socket.socket = writer.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        async with server:
            host, port = listener.getsockname()[:2]
            _, client = await asyncio.open_connection(host, port)
            try:
                return await asyncio.wait_for(seen, timeout=5)
            finally:
                client.close()

    return asyncio.run(accept_one())


def test_the_served_socket_turns_nagle_off_on_every_connection_it_accepts() -> None:
    listener = bound_socket("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    assert _nodelay_on_accepted_connection(listener) != 0


def test_a_socket_made_without_its_protocol_number_keeps_nagle_on() -> None:
    # The control: this is how the simulator's socket used to be made, and the probe sees it.
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert _nodelay_on_accepted_connection(plain) == 0


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


def test_no_response_carries_a_server_header_in_process_or_over_loopback() -> None:
    app = create_app(SimConfig(users=5, sites=1))

    async def in_process() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=inprocess_transport(app), base_url="http://sim", headers=demo_headers()
        ) as client:
            return await client.get("/api/v0/corps")

    responses = [asyncio.run(in_process())]
    with serve_in_thread(app) as base_url:
        responses.append(httpx.get(f"{base_url}/api/v0/corps", headers=demo_headers()))
        responses.append(httpx.get(f"{base_url}/api/v0/corps"))  # a 401 too
        responses.append(httpx.get(f"{base_url}/_sim/health"))
    assert [r.status_code for r in responses] == [200, 200, 401, 200]
    assert all("server" not in r.headers for r in responses)
    assert all("date" in r.headers for r in responses[1:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_sim_serve_applies_its_switch_flags_and_sends_no_server_header() -> None:
    port = _free_port()
    command = [
        sys.executable, "-m", "sigsci_iga", "sim", "serve", "--port", str(port),
        "--users", "5", "--sites", "12", "--site-limit-cap", "5", "--sites-total-count",
        "--membership-events", "site", "--email-matching", "insensitive", "--not-found-status",
        "404", "--invite-api-user", "--update-renames",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603  # our own CLI
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                settings = httpx.get(f"{base}/_sim/settings", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, "sim serve exited"
                assert time.monotonic() < deadline, "sim serve did not start"
                time.sleep(0.1)
        sites = httpx.get(f"{base}/api/v0/corps/testcorp/sites?limit=100", headers=demo_headers())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert "server" not in sites.headers
    assert len(sites.json()["data"]) == 5
    assert sites.json()["totalCount"] == 12
    expected = {
        "site_page_max_limit": 5,
        "sites_total_count": True,
        "sites_next_links": False,
        "membership_events": "site",
        "email_matching": "insensitive",
        "not_found_status": 404,
        "invite_api_user": True,
        "update_renames": True,
    }
    assert {key: settings.json()[key] for key in expected} == expected


def test_cli_serve_refuses_unknown_switch_values() -> None:
    runner = CliRunner()
    for args in (
        ["--membership-events", "nowhere"],
        ["--email-matching", "sometimes"],
        ["--site-limit-cap", "0"],
    ):
        assert runner.invoke(sim_app, ["serve", *args]).exit_code != 0
