"""`sigsci-iga accounts`, `entitlements` and `identities`: what the repository knows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sigsci_iga.cli import context
from sigsci_iga.cli.output import fail, print_json, stdout
from sigsci_iga.errors import SigsciIgaError

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts (corp users) in the repository.")
entitlements_app = typer.Typer(no_args_is_help=True, help="Entitlements: corp roles and sites.")
identities_app = typer.Typer(no_args_is_help=True, help="Identities from the identity source.")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint", help="Endpoint name (default: the corp name).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON array.")]


def _endpoint(explicit: str | None) -> str:
    return context.endpoint_name(context.settings(), explicit)


@accounts_app.command("list")
def accounts_list(
    site: Annotated[str | None, typer.Option(help="Only accounts holding this site.")] = None,
    role: Annotated[str | None, typer.Option(help="Only this corp role.")] = None,
    status: Annotated[
        str | None, typer.Option(help="active, pending or suspended (gone from the corp).")
    ] = None,
    endpoint: EndpointOption = None,
    json_output: JsonOption = False,
) -> None:
    """Accounts with their role, status, sites and correlated identity."""
    name = _endpoint(endpoint)
    with context.repository() as repo:
        try:
            records = repo.list_accounts(name, site=site, role=role, status=status)
        except SigsciIgaError as exc:
            fail(exc)
    if json_output:
        print_json([r.to_json() for r in records])
        return
    table = Table(
        "email",
        "name",
        "role",
        "status",
        "sites",
        "identity",
        title=f"{len(records)} accounts in {name}",
    )
    for r in records:
        sites = (
            ", ".join(r.sites)
            if len(r.sites) <= 4
            else f"{', '.join(r.sites[:4])} +{len(r.sites) - 4}"
        )
        table.add_row(r.email, r.name, r.role, r.status, sites, r.identity or "-")
    stdout().print(table)


@accounts_app.command("show")
def accounts_show(
    email: str, endpoint: EndpointOption = None, json_output: JsonOption = False
) -> None:
    """One account, all its sites, and its recorded changes."""
    name = _endpoint(endpoint)
    with context.repository() as repo:
        try:
            record = repo.get_account(name, email)
        except SigsciIgaError as exc:
            fail(exc)
        changes = repo.list_history(endpoint=name, object_key=record.email, limit=50)
    if json_output:
        print_json({**record.to_json(), "history": [c.to_json() for c in changes]})
        return
    out = stdout()
    for label, value in (
        ("email", record.email),
        ("name", record.name),
        ("role", record.role),
        ("status", record.status),
        ("mfa", "yes" if record.mfa_enabled else "no"),
        ("created", record.created.isoformat() if record.created else ""),
        ("identity", record.identity or "(not correlated)"),
        ("sites", ", ".join(record.sites) or "(none)"),
    ):
        out.print(f"{label:<9} {value}")
    if changes:
        table = Table("when", "run", "field", "old", "new", title="history")
        for c in changes:
            table.add_row(
                c.changed_at.isoformat(timespec="seconds"),
                str(c.run_id or ""),
                c.field or c.object_type,
                str(c.old_value),
                str(c.new_value),
            )
        out.print(table)


@entitlements_app.command("list")
def entitlements_list(
    type_: Annotated[str | None, typer.Option("--type", help="Site or CorpRole.")] = None,
    status: Annotated[str | None, typer.Option(help="active or inactive.")] = None,
    endpoint: EndpointOption = None,
    json_output: JsonOption = False,
) -> None:
    """Entitlement values and how many accounts hold each."""
    name = _endpoint(endpoint)
    with context.repository() as repo:
        try:
            records = repo.list_entitlements(name, type=type_, status=status)
        except SigsciIgaError as exc:
            fail(exc)
    if json_output:
        print_json([r.to_json() for r in records])
        return
    table = Table(
        "type", "value", "display name", "status", "holders", title=f"entitlements in {name}"
    )
    for r in records:
        table.add_row(r.type, r.value, r.display_name, r.status, str(r.holders))
    stdout().print(table)


@identities_app.command("load")
def identities_load(
    file: Annotated[Path, typer.Argument(help="CSV (header row) or JSON (array of objects).")],
    endpoint: EndpointOption = None,
    rule: Annotated[
        str | None,
        typer.Option(
            help="Correlation rule: email or username-localpart (default: "
            "SIGSCI_IGA_CORRELATION_RULE, else email)."
        ),
    ] = None,
) -> None:
    """Load or update identities, then correlate the endpoint's accounts to them."""
    current = context.settings()
    with context.repository(current) as repo:
        try:
            result = repo.load_identities(file)
            out = stdout()
            out.print(
                f"identities: {result.created} created, {result.updated} updated, "
                f"{result.unchanged} unchanged"
            )
            name = endpoint or current.corp
            if name and any(e.name == name for e in repo.list_endpoints()):
                corr = repo.correlate(name, rule or current.correlation_rule)
                out.print(
                    f"correlation ({corr.rule}): {corr.matched} matched, {corr.unmatched} unmatched"
                )
                for account in repo.unmatched_accounts(name):
                    out.print(f"  unmatched: {account.email} ({account.status})")
        except SigsciIgaError as exc:
            fail(exc)


@identities_app.command("list")
def identities_list(json_output: JsonOption = False) -> None:
    """Identities in the repository."""
    with context.repository() as repo:
        records = repo.list_identities()
    if json_output:
        print_json([r.to_json() for r in records])
        return
    table = Table("username", "email", "first", "last", "department", "manager", "status")
    for r in records:
        table.add_row(
            r.username,
            r.email,
            r.first_name or "",
            r.last_name or "",
            r.department or "",
            r.manager or "",
            r.status,
        )
    stdout().print(table)
