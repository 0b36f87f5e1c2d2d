"""`sigsci-iga packages` and `endpoints`: connection packages and the endpoints that use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import Col, fail, print_json, say, say_block, show_table
from sigsci_iga.domain.tasks import Operation
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
OPERATIONS = tuple(op.value for op in Operation)


def _params(values: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(InvalidInputError(f"--param {item!r} is not NAME=VALUE"))
        params[name.strip()] = value
    return params


@packages_app.command("list")
def packages_list(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """The packages that ship with sigsci-iga (no checkout needed)."""
    try:
        shipped = app.shipped_packages()
    except SigsciIgaError as exc:
        fail(exc)
    if json_output:
        print_json(
            [{"name": p.name, "version": p.version, "description": p.description} for p in shipped]
        )
        return
    show_table(
        (Col("name", whole=True), "version", "description"),
        [(p.name, p.version, p.description) for p in shipped],
        title=f"{len(shipped)} shipped packages (sigsci-iga packages show NAME)",
    )


@packages_app.command("show")
def packages_show(
    name: Annotated[
        str, typer.Argument(help="A name from `packages list` (`airtable` for `saviynt/airtable`).")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the package to a file.")
    ] = None,
) -> None:
    """Print a shipped package's YAML, to read or to copy and edit."""
    try:
        package = app.shipped_package(name)
    except SigsciIgaError as exc:
        fail(exc)
    text = package.path.read_text(encoding="utf-8")
    if output is None:
        say_block(text)
        return
    if output.exists() and not output.is_file():
        fail(InvalidInputError(f"output {output} exists and is not a regular file"))
    output.write_text(text, encoding="utf-8")
    say(f"wrote {output}; then: sigsci-iga packages validate {output}")


@packages_app.command("validate")
def packages_validate(
    file: Annotated[Path, typer.Argument(help="The package file (YAML or JSON).")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the package's summary as JSON.")
    ] = False,
) -> None:
    """Check a package: schema (unknown keys refused), templates and expressions."""
    try:
        summary = app.validate_package(file)
    except SigsciIgaError as exc:
        fail(exc)
    if json_output:
        print_json(
            {
                "file": str(file),
                "valid": True,
                "name": summary.name,
                "version": summary.version,
                "calls": summary.calls,
                "parameters": summary.parameters,
                "operations": list(summary.operations),
            }
        )
        return
    say(
        f"{file}: ok — package {summary.name!r} {summary.version}, {summary.calls} calls, "
        f"{summary.parameters} parameters; provisioning: {', '.join(summary.operations) or 'none'}"
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
        result = app.convert_saviynt(file, output)
    except SigsciIgaError as exc:
        fail(exc)
    say_block(result.report())
    if output is None:
        say_block(result.to_yaml())
    else:
        say(f"wrote {output}; fill in its parameters, then: sigsci-iga packages validate {output}")


@packages_app.command("schema")
def packages_schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of the package format (for editors and CI checks)."""
    schema = app.package_schema()
    if output is None:
        print_json(schema)
        return
    output.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {output}")


@packages_app.command("render")
def packages_render(
    file: Annotated[Path, typer.Argument(help="The package file (YAML or JSON).")],
    operation: Annotated[str, typer.Option("--operation", help=", ".join(OPERATIONS))],
    account: Annotated[str, typer.Option("--account", help="The account's email.")],
    entitlement: Annotated[
        list[str] | None, typer.Option("--entitlement", help="A site (repeat for create_account).")
    ] = None,
    type_: Annotated[str, typer.Option("--type", help="Entitlement type.")] = "Site",
    role: Annotated[str | None, typer.Option("--role", help="Role for create/update.")] = None,
    param: ParamOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the calls (method, path, body) as JSON.")
    ] = False,
) -> None:
    """Print the exact requests an operation would send (secrets masked); nothing is sent."""
    # The API's spelling; the command's (`create-account`) is read the same.
    chosen = operation.replace("-", "_")
    if chosen not in OPERATIONS:
        fail(InvalidInputError(f"--operation must be one of {', '.join(OPERATIONS)}"))
    try:
        calls = app.render_operation(
            file,
            Operation(chosen),
            account=account,
            entitlements=entitlement or [],
            entitlement_type=type_,
            role=role,
            params=_params(param),
        )
    except SigsciIgaError as exc:
        fail(exc)
    if json_output:
        print_json([{"method": c.method, "path": c.path, "body": c.body} for c in calls])
        return
    for call in calls:
        say(f"{call.method} {call.path}")
        if call.body is not None:
            say_block(json.dumps(call.body, indent=2, sort_keys=True))
    say(f"{len(calls)} call(s); nothing was sent")


@endpoints_app.command("list")
def endpoints_list(
    include_retired: Annotated[
        bool, typer.Option("--all", help="Also list removed endpoints kept for their journal.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Registered endpoints."""
    with context.session() as ctx:
        endpoints = app.list_endpoints(ctx, include_retired=include_retired)
    if json_output:
        print_json([e.to_json() for e in endpoints])
        return
    show_table(
        (
            "name",
            Col("connector", drop=3),
            "corp",
            Col("api url", drop=2),
            Col("email", drop=1),
            Col("credentials", drop=4),
            Col("checkpoint", drop=5),
        ),
        [
            (
                e.name + (" (removed)" if e.retired_at else ""),
                e.connector,
                e.corp,
                e.api_url,
                e.email,
                ", ".join(f"{k}={v}" for k, v in sorted(e.credentials.items())) or "(settings)",
                e.checkpoint.last_activity.isoformat(timespec="seconds")
                if e.checkpoint.last_activity
                else "",
            )
            for e in endpoints
        ],
    )


@endpoints_app.command("add")
def endpoints_add(
    name: Annotated[str, typer.Argument(help="A name for the endpoint (--endpoint NAME).")],
    corp: Annotated[str, typer.Option("--corp", help="The corp's short name.")],
    email: Annotated[str, typer.Option("--email", help="The API token owner's email.")],
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="API host (default: SIGSCI_API_URL's).")
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", help="The environment variable that holds its API token."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="A file (a mounted secret) that holds its API token."),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Or a variable holding a password (session login)."),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="Or a file holding a password.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the registered endpoint as JSON.")
    ] = False,
) -> None:
    """Register a Signal Sciences corp with its own caller and token (stored as a reference)."""
    token = _ref(token_env, token_file, "--token-env", "--token-file")
    password = _ref(password_env, password_file, "--password-env", "--password-file")
    with context.session() as ctx:
        info = app.register_native(
            ctx, name, corp=corp, email=email, api_url=api_url, token=token, password=password
        )
    if json_output:
        print_json(info.to_json())
    else:
        say(f"endpoint {info.name} (corp {info.corp}, {info.api_url}) registered")


def _ref(env: str | None, file: Path | None, env_flag: str, file_flag: str) -> str | None:
    if env and file:
        fail(InvalidInputError(f"choose one of {env_flag} and {file_flag}"))
    if env:
        return f"env:{env}"
    if file:
        return f"file:{file.resolve()}"
    return None


@endpoints_app.command("add-rest")
def endpoints_add_rest(
    name: Annotated[str, typer.Argument(help="A name for the endpoint (--endpoint NAME).")],
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
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="A secret parameter as NAME=env:VARIABLE or NAME=file:/path (repeat); "
            "default: the variable the package declares.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the registered endpoint as JSON.")
    ] = False,
) -> None:
    """Register an endpoint run by the rest connector through a package."""
    params = _params(param)
    secrets = _params(secret)
    with context.session() as ctx:
        info = app.register_rest(
            ctx,
            name,
            package=package,
            corp=corp,
            params=params,
            caller=caller,
            secrets={k: _absolute_ref(v) for k, v in secrets.items()},
        )
    if json_output:
        print_json(info.to_json())
    else:
        say(f"endpoint {info.name} ({info.connector}, {info.api_url}) registered")


def _absolute_ref(ref: str) -> str:
    kind, sep, target = ref.partition(":")
    if sep and kind == "file" and target and not target.startswith("/"):
        return f"file:{Path(target).resolve()}"
    return ref


@endpoints_app.command("remove")
def endpoints_remove(
    name: Annotated[str, typer.Argument(help="The endpoint's name (endpoints list).")],
    force: Annotated[
        bool, typer.Option("--force", help="Discontinue the endpoint's open tasks first.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was removed as JSON.")
    ] = False,
) -> None:
    """Remove an endpoint and what was imported for it (kept, retired, if it has a journal)."""
    with context.session() as ctx:
        removal = app.remove_endpoint(ctx, name, force=force)
    if json_output:
        print_json(
            {
                "endpoint": removal.endpoint,
                "outcome": removal.outcome,
                "discontinued": removal.discontinued,
            }
        )
        return
    if removal.discontinued:
        say(f"{removal.discontinued} open task(s) discontinued")
    if removal.outcome == "retired":
        say(f"endpoint {name} retired: its journal is kept, the rest is not used")
    else:
        say(f"endpoint {name} removed")
