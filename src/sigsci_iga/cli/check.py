"""`sigsci-iga check`: the credentials against the corp, and what the check found."""

from __future__ import annotations

from typing import Annotated

import typer

from sigsci_iga import app as use_cases
from sigsci_iga.cli import context
from sigsci_iga.cli.output import print_json, say, styled


def describe_token_policy(max_age: int | None) -> tuple[str, bool]:
    """Human text for apiTokenMaxAge and whether it deserves a warning."""
    if max_age is None:
        return "the corp does not report a token expiry policy (apiTokenMaxAge absent)", False
    if max_age <= 0:
        return "API tokens do not expire (apiTokenMaxAge = 0)", False
    days = max_age / 86400
    span = f"{days:.1f} days" if days >= 1 else f"{max_age / 3600:.1f} hours"
    return (
        f"API tokens expire {max_age} s (~{span}) after creation (apiTokenMaxAge = {max_age}); "
        "plan to rotate SIGSCI_TOKEN before then",
        True,
    )


def check_command(
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="A registered endpoint to check (default: the corp the settings describe, "
            "checked without registering anything).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what the check found as JSON.")
    ] = False,
) -> None:
    """Verify the credentials against the corp and show role, sites and token policy."""
    with context.session() as ctx:
        result = context.run(use_cases.check_endpoint(ctx, endpoint))
    report = result.report
    policy, warn = describe_token_policy(report.credential_max_age_seconds)
    if json_output:
        print_json(
            {
                "endpoint": result.endpoint,
                "target": report.target,
                "display_name": report.display_name,
                "caller": report.caller,
                "caller_role": report.caller_role,
                "sites_visible": report.sites_visible,
                "accounts_visible": report.accounts_visible,
                "credential_max_age_seconds": report.credential_max_age_seconds,
                "token_policy": policy,
                "token_warning": warn,
                "ok": True,
            }
        )
        return
    say(styled("corp      ", "bold"), f"{report.target} ({report.display_name})")
    say(styled("caller    ", "bold"), f"{report.caller} ({report.caller_role or 'unknown'})")
    say(styled("sites     ", "bold"), f"{report.sites_visible} visible")
    say(
        styled("tokens    ", "bold"),
        styled(("warning: " if warn else "") + policy, "yellow" if warn else ""),
    )
    say(styled("ok", "green"))
