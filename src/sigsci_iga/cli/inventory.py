"""`sigsci-iga accounts`, `entitlements` and `identities`: what the repository knows."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from sigsci_iga import app
from sigsci_iga.app.inputs import MAX_ID, check_count
from sigsci_iga.cli import context
from sigsci_iga.cli.output import (
    Col,
    change,
    fail,
    print_json,
    print_json_pages,
    say,
    show_table,
    stacked,
)
from sigsci_iga.errors import SigsciIgaError

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts (corp users) in the repository.")
entitlements_app = typer.Typer(no_args_is_help=True, help="Entitlements: corp roles and sites.")
identities_app = typer.Typer(no_args_is_help=True, help="Identities from the identity source.")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint", help="Endpoint name (default: the corp name).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON array.")]
#: `identities load` names this many unmatched accounts; --json lists them all.
UNMATCHED_SHOWN = 20


@accounts_app.command("list")
def accounts_list(
    site: Annotated[str | None, typer.Option(help="Only accounts holding this site.")] = None,
    role: Annotated[str | None, typer.Option(help="Only this corp role.")] = None,
    status: Annotated[
        str | None, typer.Option(help="active, pending or suspended (gone from the corp).")
    ] = None,
    endpoint: EndpointOption = None,
    json_output: JsonOption = False,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most this many accounts (in email order).")
    ] = None,
    offset: Annotated[
        int, typer.Option("--offset", help="Skip this many accounts first; with --limit, a page.")
    ] = 0,
) -> None:
    """Accounts with their role, status, sites and correlated identity."""
    try:
        if limit is not None:
            check_count(limit, "--limit")
        check_count(offset, "--offset", minimum=0)
    except SigsciIgaError as exc:
        fail(exc)
    # One more than the page, to tell whether another page follows.
    wanted = None if limit is None else min(offset + limit + 1, MAX_ID)
    with context.session() as ctx:
        name = app.endpoint_name(ctx, endpoint)
        if limit is None and offset == 0:
            # The whole listing streams: the first account is out before the last is read.
            if json_output:
                # A page is a tree of new dicts and lists that reference counting frees; the
                # cycle collector, run every few hundred of them, never found anything there and
                # took a quarter of the listing's CPU.
                gc.disable()
                try:
                    print_json_pages(
                        app.iter_account_json(ctx, name, site=site, role=role, status=status)
                    )
                finally:
                    gc.enable()
                return
            fetched = list(app.iter_accounts(ctx, name, site=site, role=role, status=status))
        else:
            fetched = app.list_accounts(
                ctx, name, site=site, role=role, status=status, limit=wanted
            )
    records = fetched[offset:] if limit is None else fetched[offset : offset + limit]
    next_page = limit is not None and len(fetched) > offset + limit
    if json_output:
        print_json([r.to_json() for r in records])
        return
    rows = []
    for r in records:
        # One site a line: a site name is never split, and the column stays narrow.
        more = [f"+{len(r.sites) - 4} more"] if len(r.sites) > 4 else []
        sites = stacked([*r.sites[:4], *more])
        rows.append((r.email, r.name, r.role, r.status, sites, r.identity or "-"))
    show_table(
        (
            Col("email", whole=True),
            Col("name", drop=1),
            "role",
            "status",
            Col("sites", whole=True),
            Col("identity", drop=2),
        ),
        rows,
        title=f"{len(records)} accounts in {name}"
        + (f" from number {offset + 1}" if offset else "")
        + (f" (next page: --offset {offset + len(records)})" if next_page else ""),
    )


@accounts_app.command("show")
def accounts_show(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    endpoint: EndpointOption = None,
    json_output: JsonOption = False,
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
            ("when", Col("run", drop=1), "field", "change"),
            [
                (
                    c.changed_at.isoformat(timespec="seconds"),
                    c.run_id or "",
                    c.field or c.object_type,
                    change(c.old_value, c.new_value),
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
        ("type", Col("value", whole=True), Col("display name", drop=1), "status", "holders"),
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
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON document.")
    ] = False,
) -> None:
    """Load or update identities, then correlate the endpoint's accounts to them."""
    with context.session() as ctx:
        result = app.load_identities(ctx, file, endpoint=endpoint, rule=rule)
    loaded, corr = result.loaded, result.correlation
    if json_output:
        print_json(
            {
                "identities": {
                    "created": loaded.created,
                    "updated": loaded.updated,
                    "unchanged": loaded.unchanged,
                },
                "correlation": None
                if corr is None
                else {"rule": corr.rule, "matched": corr.matched, "unmatched": corr.unmatched},
                "unmatched": [{"email": a.email, "status": a.status} for a in result.unmatched],
            }
        )
        return
    say(
        f"identities: {loaded.created} created, {loaded.updated} updated, "
        f"{loaded.unchanged} unchanged"
    )
    if corr is not None:
        say(f"correlation ({corr.rule}): {corr.matched} matched, {corr.unmatched} unmatched")
        # A summary, not a dump: the full list is in --json and `accounts list`.
        for account in result.unmatched[:UNMATCHED_SHOWN]:
            say(f"  unmatched: {account.email} ({account.status})")
        if len(result.unmatched) > UNMATCHED_SHOWN:
            say(
                f"  … and {len(result.unmatched) - UNMATCHED_SHOWN} more "
                "(all of them: --json, or accounts list --json and look for no identity)"
            )


@identities_app.command("list")
def identities_list(json_output: JsonOption = False) -> None:
    """Identities in the repository."""
    with context.session() as ctx:
        records = app.list_identities(ctx)
    if json_output:
        print_json([r.to_json() for r in records])
        return
    show_table(
        (
            "username",
            Col("email", whole=True),
            Col("first", drop=2),
            Col("last", drop=2),
            Col("department", drop=3),
            Col("manager", drop=4),
            "status",
        ),
        [
            (r.username, r.email, r.first_name, r.last_name, r.department, r.manager, r.status)
            for r in records
        ],
    )
