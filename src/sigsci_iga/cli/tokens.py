"""`sigsci-iga tokens`: the service tokens callers of the HTTP API authenticate with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import Col, print_json, say, show_table

tokens_app = typer.Typer(
    no_args_is_help=True, help="Service tokens for the HTTP API (stored only as keyed hashes)."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A unique name (lower-case), never reused.")],
    role: Annotated[
        app.Role, typer.Option("--role", help="What the token may do.", case_sensitive=False)
    ],
    expires: Annotated[
        str,
        typer.Option("--expires", help="Lifetime: 30m, 12h, 90d, 2w, or never."),
    ] = "90d",
    json_output: JsonOption = False,
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    with context.session() as ctx:
        lifetime = app.parse_lifetime(expires)
        issued = app.create_token(ctx, name, role, expires_in=lifetime)
        now = ctx.clock()
    if json_output:
        print_json(issued.to_json(now))
        return
    record = issued.record
    say(
        f"token {record.name} created: role {record.role.value}, "
        f"expires {_when(record.expires_at) if record.expires_at else 'never'}"
    )
    say("Store it now; it is shown only this once:")
    # The token is the last line of standard output, so scripts can take it with `tail -n 1`.
    say(issued.token.get_secret_value())


@tokens_app.command("list")
def tokens_list(json_output: JsonOption = False) -> None:
    """Every token: name, role, state, created, expires, last used, revoked."""
    with context.session() as ctx:
        records = app.list_tokens(ctx)
        now = ctx.clock()
    if json_output:
        print_json([app.token_summary(r, now) for r in records])
        return
    show_table(
        (
            "name",
            "role",
            "state",
            Col("created", drop=3),
            "expires",
            Col("last used", drop=1),
            Col("revoked", drop=2),
        ),
        (
            (
                r.name,
                r.role.value,
                r.state(now),
                _when(r.created_at),
                _when(r.expires_at) if r.expires_at else "never",
                _when(r.last_used_at),
                _when(r.revoked_at),
            )
            for r in records
        ),
        title=f"{len(records)} tokens",
    )


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a token at once; it stays listed, and its name is never reused."""
    with context.session() as ctx:
        record = app.revoke_token(ctx, name)
        now = ctx.clock()
    if json_output:
        print_json(app.token_summary(record, now))
        return
    say(f"token {record.name} revoked at {_when(record.revoked_at)}")
