"""`sigsci-iga sim serve`: run the simulator on a local port."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from sigsci_iga.sim.config import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOKEN,
    OBSERVER_EMAIL,
    OBSERVER_TOKEN,
    SimConfig,
)
from sigsci_iga.sim.faults import parse_fault_spec

sim_app = typer.Typer(help="A local, fake Signal Sciences API for tests and demos.")


@sim_app.callback()
def _group() -> None:
    """A local, fake Signal Sciences API for tests and demos."""


@sim_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one (the banner names it).")
    ] = 8765,
    seed: Annotated[int, typer.Option(help="Seed for the generated corp.")] = 1,
    users: Annotated[int, typer.Option(help="Users, including the two demo users.")] = 200,
    sites: Annotated[int, typer.Option(help="Sites.")] = 20,
    memberships_per_user: Annotated[
        float, typer.Option(help="Average sites per non-owner user.")
    ] = 3.0,
    corp: Annotated[str, typer.Option(help="Corp short name.")] = "testcorp",
    pending_status: Annotated[
        str, typer.Option(help="Status string of invited users (e.g. pending, invited).")
    ] = "pending",
    not_found_status: Annotated[
        int, typer.Option(help="Status for an unknown user: 400 or 404 (ID not found).")
    ] = 400,
    sites_total_count: Annotated[
        bool, typer.Option(help="Add totalCount to the sites list (default: data only).")
    ] = False,
    sites_next_links: Annotated[
        bool, typer.Option(help="Add next links to the sites list (default: data only).")
    ] = False,
    site_limit_cap: Annotated[
        int, typer.Option(help="At most N sites per page whatever limit asks, silently.")
    ] = 1000,
    invite_api_user: Annotated[
        bool, typer.Option(help="Let invites set apiUser (default: ignored).")
    ] = False,
    update_renames: Annotated[
        bool, typer.Option(help="Let PATCH/PUT change a user's name (default: ignored).")
    ] = False,
    membership_events: Annotated[
        str, typer.Option(help="Feeds with site membership events: corp, site or both.")
    ] = "both",
    email_matching: Annotated[
        str, typer.Option(help="Emails in paths: sensitive (exact spelling) or insensitive.")
    ] = "sensitive",
    token_expiry: Annotated[
        int, typer.Option(help="API token lifetime in seconds from start; 0 = never.")
    ] = 0,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute; 0 = unlimited.")] = 0,
    rate_limit_status: Annotated[
        int, typer.Option(help="Status when the rate limit is hit: 429 or 400.")
    ] = 429,
    latency_ms: Annotated[int, typer.Option(help="Delay added to every API call.")] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="KIND[:PROB], repeatable (throttle_429, drop, truncate, ...)."),
    ] = None,
) -> None:
    """Serve a seeded fake corp until Ctrl-C."""
    try:
        config = SimConfig(
            corp=corp,
            seed=seed,
            users=users,
            sites=sites,
            memberships_per_user=memberships_per_user,
            pending_status=pending_status,
            not_found_status=not_found_status,
            sites_total_count=sites_total_count,
            sites_next_links=sites_next_links,
            site_page_max_limit=site_limit_cap,
            invite_api_user=invite_api_user,
            update_renames=update_renames,
            membership_events=membership_events,
            email_matching=email_matching,
            token_expiry_seconds=token_expiry,
            rate_limit_per_minute=rate_limit,
            rate_limit_status=rate_limit_status,
            latency_ms=latency_ms,
            faults=[parse_fault_spec(spec) for spec in fault or []],
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    # uvicorn and FastAPI load here, when a simulator starts, not for `--help`.
    from sigsci_iga.sim.server import bound_socket, run_server  # noqa: PLC0415

    try:
        # Bound before anything is printed: a taken port is said plainly, not after a banner
        # that points the reader at whatever else is listening there.
        sock = bound_socket(host, port)
    except OSError as exc:
        typer.echo(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port, or --port 0 for a free one",
            err=True,
        )
        raise typer.Exit(1) from None
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    typer.echo(f"Signal Sciences simulator: {url}  (API under /api/v0)")
    typer.echo(f"  corp:        {corp}")
    typer.echo(f"  owner:       {DEMO_EMAIL}  token {DEMO_TOKEN}  password {DEMO_PASSWORD}")
    typer.echo(f"  observer:    {OBSERVER_EMAIL}  token {OBSERVER_TOKEN}")
    typer.echo(f"  admin API:   {url}/_sim/health (no auth; loopback only)")
    typer.echo("Point sigsci-iga at it (the simulator's fake demo credentials):")
    for name, value in (
        ("SIGSCI_API_URL", url),
        ("SIGSCI_EMAIL", DEMO_EMAIL),
        ("SIGSCI_TOKEN", DEMO_TOKEN),
        ("SIGSCI_CORP", corp),
    ):
        typer.echo(f"  export {name}={shlex.quote(value)}")
    run_server(config, host, port, sock=sock)
