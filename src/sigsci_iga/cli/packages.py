"""`sigsci-iga packages` and `endpoints`: connection packages and the endpoints that use them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sigsci_iga.cli import context
from sigsci_iga.cli.output import fail, print_json, stdout
from sigsci_iga.connectors.base import (
    AddToSite,
    DeleteAccount,
    Invite,
    RemoveFromSite,
    SetRole,
    Step,
)
from sigsci_iga.connectors.rest.loader import LoadedPackage, load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.rest.saviynt import import_saviynt
from sigsci_iga.connectors.rest.spec import package_json_schema
from sigsci_iga.errors import InvalidInputError, SigsciIgaError

packages_app = typer.Typer(no_args_is_help=True, help="Connection packages for the rest connector.")
endpoints_app = typer.Typer(no_args_is_help=True, help="Governed endpoints (corps, packages).")

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A package parameter as NAME=VALUE (repeat); secrets come from "
        "their environment variable.",
    ),
]
OPERATIONS = ("create-account", "update-account", "add-access", "remove-access", "remove-account")


def _params(values: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(InvalidInputError(f"--param {item!r} is not NAME=VALUE"))
        params[name.strip()] = value
    return params


def _load(file: Path) -> LoadedPackage:
    try:
        return load_package(file)
    except SigsciIgaError as exc:
        fail(exc)


@packages_app.command("validate")
def packages_validate(file: Path) -> None:
    """Check a package: schema (unknown keys refused), templates and expressions."""
    package = _load(file)
    spec = package.spec
    ops = (
        sorted(
            name for name, value in spec.provisioning.model_dump(exclude_none=True).items() if value
        )
        if spec.provisioning is not None
        else []
    )
    stdout().print(
        f"{file}: ok — package {spec.name!r} {spec.version}, {len(package.requests)} calls, "
        f"{len(spec.parameters)} parameters; provisioning: {', '.join(ops) or 'none'}"
    )


@packages_app.command("import-saviynt")
def packages_import_saviynt(
    file: Annotated[
        Path, typer.Argument(help="A Saviynt Transport export, or one JSON attribute.")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the package YAML here.")
    ] = None,
) -> None:
    """Convert a Saviynt REST connection into a native package, with a report of every finding."""
    try:
        result = import_saviynt(file, output)
    except SigsciIgaError as exc:
        fail(exc)
    out = stdout()
    out.print(result.report(), soft_wrap=True, markup=False, highlight=False)
    if output is None:
        out.print(result.to_yaml(), soft_wrap=True, markup=False, highlight=False)
    else:
        out.print(
            f"wrote {output}; fill in its parameters, then: sigsci-iga packages validate {output}"
        )


@packages_app.command("schema")
def packages_schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of the package format (for editors and CI checks)."""
    schema = package_json_schema()
    if output is None:
        print_json(schema)
        return
    output.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    stdout().print(f"wrote {output}")


def _step(
    operation: str, account: str, entitlement: list[str], type_: str, role: str | None
) -> Step:
    email = account.strip().lower()
    if operation == "create-account":
        return Invite(email, role or "user", tuple(entitlement))
    if operation == "update-account":
        if not role:
            fail(InvalidInputError("update-account needs --role"))
        return SetRole(email, role)
    if operation in ("add-access", "remove-access"):
        if type_ != "Site" or not entitlement:
            if operation == "add-access" and role:
                return SetRole(email, role)
            fail(
                InvalidInputError(
                    f"{operation} needs --entitlement SITE (or --role for add-access)"
                )
            )
        if operation == "add-access":
            return AddToSite(entitlement[0], (email,))
        return RemoveFromSite(entitlement[0], email)
    if operation == "remove-account":
        return DeleteAccount(email)
    fail(InvalidInputError(f"--operation must be one of {', '.join(OPERATIONS)}"))


@packages_app.command("render")
def packages_render(
    file: Path,
    operation: Annotated[str, typer.Option("--operation", help=", ".join(OPERATIONS))],
    account: Annotated[str, typer.Option("--account", help="The account's email.")],
    entitlement: Annotated[
        list[str] | None, typer.Option("--entitlement", help="A site (repeat for create-account).")
    ] = None,
    type_: Annotated[str, typer.Option("--type", help="Entitlement type.")] = "Site",
    role: Annotated[str | None, typer.Option("--role", help="Role for create/update.")] = None,
    param: ParamOption = None,
) -> None:
    """Print the exact requests an operation would send (secrets masked); nothing is sent."""
    package = _load(file)
    # Secrets are masked in the output anyway; a missing one must not stop a preview.
    env = dict(os.environ)
    for parameter in package.spec.parameters.values():
        if parameter.secret and parameter.env and not env.get(parameter.env):
            env[parameter.env] = "unset-secret"
    try:
        bound = package.bind(_params(param), env=env)
        step = _step(operation, account, entitlement or [], type_, role)
        calls = RestConnector(bound).describe_all(step)
    except SigsciIgaError as exc:
        fail(exc)
    out = stdout()
    for call in calls:
        # Verbatim: rich markup and emoji codes would rewrite `[b]` or `:x:` in a value.
        out.print(f"{call.method} {call.path}", soft_wrap=True, markup=False, emoji=False)
        if call.body is not None:
            body = json.dumps(call.body, indent=2, sort_keys=True)
            out.print(body, soft_wrap=True, markup=False, emoji=False)
    out.print(f"{len(calls)} call(s); nothing was sent")


@endpoints_app.command("list")
def endpoints_list(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered endpoints."""
    with context.repository() as repo:
        endpoints = repo.list_endpoints()
    if json_output:
        print_json([e.to_json() for e in endpoints])
        return
    table = Table("name", "connector", "corp", "api url", "email", "package", "checkpoint")
    for e in endpoints:
        table.add_row(
            e.name,
            e.connector,
            e.corp,
            e.api_url,
            e.email or "",
            str(e.settings.get("package", "")),
            e.checkpoint.last_activity.isoformat(timespec="seconds")
            if e.checkpoint.last_activity
            else "",
        )
    stdout().print(table)


@endpoints_app.command("add-rest")
def endpoints_add_rest(
    name: str,
    package: Annotated[Path, typer.Option("--package", help="The package file (YAML or JSON).")],
    corp: Annotated[
        str, typer.Option("--corp", help="The corp (or tenant) this endpoint governs.")
    ],
    param: ParamOption = None,
    caller: Annotated[
        str | None,
        typer.Option(
            "--caller",
            help="An account every full read must list (default: the `email` parameter): an "
            "import whose accounts list lacks it is a glitch and changes nothing.",
        ),
    ] = None,
) -> None:
    """Register an endpoint run by the rest connector through a package."""
    loaded = _load(package)
    params = _params(param)
    try:
        bound = loaded.bind(params)
        with context.repository() as repo:
            info = repo.add_endpoint(
                name,
                corp=corp,
                api_url=bound.base_url,
                email=(caller or bound.params.get("email") or "").strip().lower() or None,
                connector="rest",
                settings={"package": str(package.resolve()), "params": params},
            )
    except SigsciIgaError as exc:
        fail(exc)
    stdout().print(f"endpoint {info.name} ({info.connector}, {info.api_url}) registered")
