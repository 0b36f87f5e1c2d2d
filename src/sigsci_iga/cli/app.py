"""The `sigsci-iga` command: a thin edge that parses input, calls services and renders output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sigsci_iga import app as use_cases
from sigsci_iga.cli import context
from sigsci_iga.cli.check import describe_token_policy
from sigsci_iga.cli.imports import db_app, import_app, runs_app
from sigsci_iga.cli.inventory import accounts_app, entitlements_app, identities_app
from sigsci_iga.cli.output import print_json, say, styled
from sigsci_iga.cli.packages import endpoints_app, packages_app
from sigsci_iga.cli.provision import (
    journal_app,
    provision_app,
    request_app,
    restore_command,
    tasks_app,
)
from sigsci_iga.cli.schedules import schedules_app
from sigsci_iga.cli.serve import serve_command
from sigsci_iga.cli.tokens import tokens_app

app = typer.Typer(
    name="sigsci-iga",
    help="Identity governance for Signal Sciences (Fastly Next-Gen WAF).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain help and usage errors, as git and gh print them: they read the same in a pipe, a log
    # and a narrow terminal, and `--help` need not load Rich's help renderer (about a third of
    # its start-up time).
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        say(f"sigsci-iga {use_cases.version()}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML config file (keys: api_url, email, corp, database_url, ...). "
            "Environment variables win over it.",
            envvar="SIGSCI_IGA_CONFIG",
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an error, as well as its one-line reason."
        ),
    ] = False,
) -> None:
    context.CliState.config_file = config
    context.CliState.debug = debug
    # stamina logs each scheduled retry as a warning; with logging unconfigured, Python's
    # last-resort handler would print it to stderr and break the one-line error contract.
    import logging  # noqa: PLC0415  (not needed to print help)

    retries = logging.getLogger("stamina")
    if not retries.handlers:
        retries.addHandler(logging.NullHandler())


@app.command("check")
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


app.add_typer(import_app, name="import")
app.add_typer(runs_app, name="runs")
app.add_typer(accounts_app, name="accounts")
app.add_typer(entitlements_app, name="entitlements")
app.add_typer(identities_app, name="identities")
app.add_typer(db_app, name="db")
app.add_typer(request_app, name="request")
app.add_typer(provision_app, name="provision")
app.add_typer(tasks_app, name="tasks")
app.add_typer(journal_app, name="journal")
app.command("restore")(restore_command)
app.add_typer(packages_app, name="packages")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(tokens_app, name="tokens")
app.add_typer(schedules_app, name="schedules")
app.command("serve")(serve_command)


def _mount_subcommands() -> None:
    from sigsci_iga.sim.cli import sim_app  # noqa: PLC0415  (keeps the simulator off the import path of other commands)

    app.add_typer(sim_app, name="sim", help="Run the local Signal Sciences simulator.")


def main() -> None:
    """Console-script entry point."""
    _mount_subcommands()
    app()
