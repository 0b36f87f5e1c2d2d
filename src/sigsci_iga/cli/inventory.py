"""`sigsci-iga accounts`, `entitlements` and `identities`: what the repository knows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import print_json, print_json_array, say, show_table

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts (corp users) in the repository.")
entitlements_app = typer.Typer(no_args_is_help=True, help="Entitlements: corp roles and sites.")
identities_app = typer.Typer(no_args_is_help=True, help="Identities from the identity source.")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint", help="Endpoint name (default: the corp name).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON array.")]


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
    with context.session() as ctx:
        name = app.endpoint_name(ctx, endpoint)
        stream = app.iter_accounts(ctx, name, site=site, role=role, status=status)
        if json_output:
            print_json_array(r.to_json() for r in stream)
            return
        records = list(stream)
    rows = []
    for r in records:
        sites = (
            ", ".join(r.sites)
            if len(r.sites) <= 4
            else f"{', '.join(r.sites[:4])} +{len(r.sites) - 4}"
        )
        rows.append((r.email, r.name, r.role, r.status, sites, r.identity or "-"))
    show_table(
        ("email", "name", "role", "status", "sites", "identity"),
        rows,
        title=f"{len(records)} accounts in {name}",
    )


@accounts_app.command("show")
def accounts_show(
    email: str, endpoint: EndpointOption = None, json_output: JsonOption = False
) -> None:
    """One account, all its sites, and its recorded changes."""
    with context.session() as ctx:
        detail = app.account_detail(ctx, endpoint, email)
    record, changes = detail.account, detail.history
    if json_output:
        print_json({**record.to_json(), "history": [c.to_json() for c in changes]})
        return
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
        say(f"{label:<9} ", value)
    if changes:
        show_table(
            ("when", "run", "field", "old", "new"),
            [
                (
                    c.changed_at.isoformat(timespec="seconds"),
                    c.run_id or "",
                    c.field or c.object_type,
                    str(c.old_value),
                    str(c.new_value),
                )
                for c in changes
            ],
            title="history",
        )


@entitlements_app.command("list")
def entitlements_list(
    type_: Annotated[str | None, typer.Option("--type", help="Site or CorpRole.")] = None,
    status: Annotated[str | None, typer.Option(help="active or inactive.")] = None,
    endpoint: EndpointOption = None,
    json_output: JsonOption = False,
) -> None:
    """Entitlement values and how many accounts hold each."""
    with context.session() as ctx:
        name = app.endpoint_name(ctx, endpoint)
        records = app.list_entitlements(ctx, name, type=type_, status=status)
    if json_output:
        print_json([r.to_json() for r in records])
        return
    show_table(
        ("type", "value", "display name", "status", "holders"),
        [(r.type, r.value, r.display_name, r.status, r.holders) for r in records],
        title=f"entitlements in {name}",
    )


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
    with context.session() as ctx:
        result = app.load_identities(ctx, file, endpoint=endpoint, rule=rule)
    loaded = result.loaded
    say(
        f"identities: {loaded.created} created, {loaded.updated} updated, "
        f"{loaded.unchanged} unchanged"
    )
    corr = result.correlation
    if corr is not None:
        say(f"correlation ({corr.rule}): {corr.matched} matched, {corr.unmatched} unmatched")
        for account in result.unmatched:
            say(f"  unmatched: {account.email} ({account.status})")


@identities_app.command("list")
def identities_list(json_output: JsonOption = False) -> None:
    """Identities in the repository."""
    with context.session() as ctx:
        records = app.list_identities(ctx)
    if json_output:
        print_json([r.to_json() for r in records])
        return
    show_table(
        ("username", "email", "first", "last", "department", "manager", "status"),
        [
            (r.username, r.email, r.first_name, r.last_name, r.department, r.manager, r.status)
            for r in records
        ],
    )
