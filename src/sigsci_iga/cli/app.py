"""The `sigsci-iga` command: a thin edge that parses input, calls services and renders output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sigsci_iga.cli.lazy import Lazy, lazy_group

#: Every sub-command, in the order `--help` lists them. Each module is imported, and its commands
#: built, only when a command line names it: `--help` reads this table instead.
SUBCOMMANDS = (
    Lazy(
        "check",
        "sigsci_iga.cli.check",
        "check_command",
        "Verify the credentials against the corp and show role, sites and token policy.",
    ),
    Lazy(
        "restore",
        "sigsci_iga.cli.provision",
        "restore_command",
        "Re-invite a removed account with the role and sites journaled when it was removed.",
    ),
    Lazy(
        "serve",
        "sigsci_iga.cli.serve",
        "serve_command",
        "Run the HTTP API under /api/v1 with the scheduler and the worker; stop with SIGTERM.",
    ),
    Lazy(
        "import",
        "sigsci_iga.cli.imports",
        "import_app",
        "Import the corp's accounts, sites and access into the repository.",
    ),
    Lazy("runs", "sigsci_iga.cli.imports", "runs_app", "Import runs: list and show."),
    Lazy(
        "accounts",
        "sigsci_iga.cli.inventory",
        "accounts_app",
        "Accounts (corp users) in the repository.",
    ),
    Lazy(
        "entitlements",
        "sigsci_iga.cli.inventory",
        "entitlements_app",
        "Entitlements: corp roles and sites.",
    ),
    Lazy(
        "identities",
        "sigsci_iga.cli.inventory",
        "identities_app",
        "Identities from the identity source.",
    ),
    Lazy("db", "sigsci_iga.cli.imports", "db_app", "The repository database."),
    Lazy(
        "request",
        "sigsci_iga.cli.provision",
        "request_app",
        "Request a change; it becomes a task.",
    ),
    Lazy(
        "provision",
        "sigsci_iga.cli.provision",
        "provision_app",
        "Work the task queue (the retry job).",
    ),
    Lazy("tasks", "sigsci_iga.cli.provision", "tasks_app", "Provisioning tasks."),
    Lazy(
        "journal",
        "sigsci_iga.cli.provision",
        "journal_app",
        "The append-only provisioning journal.",
    ),
    Lazy(
        "packages",
        "sigsci_iga.cli.packages",
        "packages_app",
        "Connection packages for the rest connector.",
    ),
    Lazy(
        "endpoints",
        "sigsci_iga.cli.packages",
        "endpoints_app",
        "Governed endpoints (corps, packages).",
    ),
    Lazy(
        "tokens",
        "sigsci_iga.cli.tokens",
        "tokens_app",
        "Service tokens for the HTTP API (stored only as keyed hashes).",
    ),
    Lazy(
        "schedules",
        "sigsci_iga.cli.schedules",
        "schedules_app",
        "Schedules: run imports and the provisioning retry job on a timetable "
        "(`sigsci-iga serve` runs them).",
    ),
    Lazy(
        "sim",
        "sigsci_iga.sim.cli",
        "sim_app",
        "Run the local Signal Sciences simulator.",
        help="Run the local Signal Sciences simulator.",
    ),
)

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
    cls=lazy_group(SUBCOMMANDS, pretty_exceptions_short=True),
)


def _print_version(value: bool) -> None:
    if value:
        # Only what the version needs, not the use cases' package.
        from sigsci_iga.app.system import version  # noqa: PLC0415
        from sigsci_iga.cli.output import say  # noqa: PLC0415

        say(f"sigsci-iga {version()}")
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
    from sigsci_iga.cli import context  # noqa: PLC0415  (not needed to print help)

    context.CliState.config_file = config
    context.CliState.debug = debug
    # stamina logs each scheduled retry as a warning; with logging unconfigured, Python's
    # last-resort handler would print it to stderr and break the one-line error contract.
    import logging  # noqa: PLC0415  (not needed to print help)

    retries = logging.getLogger("stamina")
    if not retries.handlers:
        retries.addHandler(logging.NullHandler())


def main() -> None:
    """Console-script entry point."""
    app()
