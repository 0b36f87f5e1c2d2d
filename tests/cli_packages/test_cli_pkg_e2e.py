"""End to end from the command line: `rest` endpoints run by packages against a loopback simulator.

The shipped package (src/sigsci_iga/packages_data/signalsciences.yaml) must import what the native connector imports
and carry out every request; the package converted from Saviynt's Signal-Sciences.json must
import and provision with the differences docs/saviynt-conversion.md lists ("Signal Sciences:
converted vs native"). The simulator runs in this process, so a test can change its state.
"""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from cli_pkg_harness import (
    NATIVE_PARAMS,
    PACKAGE,
    TOKEN_ENV,
    Cli,
    Sim,
    param_args,
    shown,
)

from fixture_files import saviynt_export
from sigsci_iga.errors import Outcome
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, demo_headers

NEW = "new.hire@example.com"


def _add_rest(
    cli: Cli, name: str, package: str, params: dict[str, str], env: dict[str, str]
) -> None:
    result = cli.ok(
        "endpoints",
        "add-rest",
        name,
        "--package",
        package,
        "--corp",
        DEMO_CORP,
        *param_args(params),
        env=env,
    )
    assert result.stdout.strip().startswith(f"endpoint {name} (rest, ")


def _request(cli: Cli, endpoint: str, env: dict[str, str], *args: str, code: int = 0) -> str:
    """One `request ...` (instant provisioning: the worker runs it); its last output line."""
    result = cli.run("request", *args, "--endpoint", endpoint, env=env)
    assert result.code == code, (args, result.output)
    return result.stdout.strip().splitlines()[-1]


def _sim_accounts(sim: Sim) -> dict[str, dict[str, Any]]:
    """The simulator's raw user records, by email."""
    with sim.state.lock:
        return {email: user.to_dict() for email, user in sim.state.users.items()}


def _first_sites_page(sim: Sim) -> list[str]:
    """What one unpaginated GET /sites returns (the converted package reads only this)."""
    response = httpx.get(
        f"{sim.url}/api/v0/corps/{DEMO_CORP}/sites", headers=demo_headers(), timeout=10
    )
    response.raise_for_status()
    return sorted(site["name"] for site in response.json()["data"])


def test_the_shipped_package_imports_like_the_native_connector_and_provisions_every_request(
    cli: Cli, sim: Sim
) -> None:
    # Only the token comes from the environment; corp, email and URL are the endpoint's params.
    _add_rest(cli, "simpkg", str(PACKAGE), {**NATIVE_PARAMS, "base_url": sim.url}, TOKEN_ENV)
    imported = cli.ok("import", "--endpoint", "simpkg", env=TOKEN_ENV)
    assert "full import of simpkg -> succeeded" in imported.stdout
    rest = cli.json("accounts", "list", "--endpoint", "simpkg")

    native_cli = Cli(cli.workdir, cli.workdir / "native.db")
    native_cli.ok("import", env=sim.native_env())
    native = native_cli.json("accounts", "list", env=sim.native_env())

    assert shown(rest) == shown(native)
    everyone = _sim_accounts(sim)
    assert {a["email"] for a in rest} == everyone.keys()
    assert {a["status"] for a in rest} == {"active", "pending"}
    assert {a["role"] for a in rest} == {"owner", "admin", "user", "observer"}
    assert {a["endpoint"] for a in rest} == {"simpkg"}

    # Every request runs through the package against the simulator.
    sites = sim.sites()
    first, second, third = sites[:3]
    line = _request(
        cli,
        "simpkg",
        TOKEN_ENV,
        "create-account",
        "--email",
        NEW,
        "--role",
        "user",
        "--site",
        first,
        "--site",
        second,
    )
    assert line.endswith("completed"), line
    user = sim.user(NEW)
    assert user is not None
    assert (user["role"], user["sites"], user["status"]) == ("user", [first, second], "pending")

    line = _request(cli, "simpkg", TOKEN_ENV, "add-access", "--email", NEW, "--site", third)
    assert line.endswith("completed"), line
    assert sim.sites_of(NEW) == [first, second, third]

    line = _request(cli, "simpkg", TOKEN_ENV, "remove-access", "--email", NEW, "--site", first)
    assert line.endswith("completed"), line
    assert sim.sites_of(NEW) == [second, third]

    line = _request(cli, "simpkg", TOKEN_ENV, "update-role", "--email", NEW, "--role", "observer")
    assert line.endswith("completed"), line
    user = sim.user(NEW)
    assert user is not None
    # The role alone: the package's update never sends memberships.
    assert (user["role"], user["sites"]) == ("observer", [second, third])

    line = _request(cli, "simpkg", TOKEN_ENV, "remove-account", "--email", NEW)
    assert line.endswith("completed"), line
    assert sim.user(NEW) is None

    tasks = cli.json("tasks", "list", "--endpoint", "simpkg")
    assert [(t["operation"], t["state"]) for t in tasks] == [
        ("create_account", "completed"),
        ("add_access", "completed"),
        ("remove_access", "completed"),
        ("update_account", "completed"),
        ("remove_account", "completed"),
    ]
    assert DEMO_TOKEN.encode() not in cli.database_bytes()


def test_the_package_converted_from_saviynt_imports_and_provisions_as_documented(
    cli: Cli, sim: Sim
) -> None:
    cli.ok(
        "packages",
        "import-saviynt",
        saviynt_export("Signal-Sciences"),
        "-o",
        "signal-sciences.yaml",
    )
    parameters = yaml.safe_load((cli.workdir / "signal-sciences.yaml").read_text())["parameters"]
    # @CORPNAME@ became `corpname`; the two ConnectionJSON secrets read SIGSCI_EMAIL/SIGSCI_TOKEN.
    assert parameters.keys() == {"base_url", "corpname", "api_user", "api_token"}
    assert parameters["api_user"]["env"] == "SIGSCI_EMAIL"
    assert parameters["api_token"]["secret"] is True
    env = {parameters["api_token"]["env"]: DEMO_TOKEN}
    params = {"base_url": sim.url, "corpname": DEMO_CORP, "api_user": DEMO_EMAIL}
    _add_rest(cli, "savpkg", "signal-sciences.yaml", params, env)

    imported = cli.ok("import", "--endpoint", "savpkg", env=env)
    assert "full import of savpkg -> succeeded" in imported.stdout
    accounts = {a["email"]: a for a in cli.json("accounts", "list", "--endpoint", "savpkg")}
    entitlements = cli.json("entitlements", "list", "--endpoint", "savpkg")

    # (2) GET /sites is not paginated: only the simulator's first page of sites is imported.
    all_sites, first_page = sim.sites(), _first_sites_page(sim)
    assert len(first_page) == sim.state.config.site_page_default_limit < len(all_sites)
    assert f"read {len(accounts)} accounts and {len(first_page)} sites" in imported.stdout
    assert sorted(e["value"] for e in entitlements if e["type"] == "Site") == first_page
    # (4) The corp role is no role: one CorpRole value "" held by everyone.
    assert [(e["value"], e["holders"]) for e in entitlements if e["type"] == "CorpRole"] == [
        ("", len(accounts))
    ]

    everyone = _sim_accounts(sim)
    assert accounts.keys() == everyone.keys()
    for email, account in accounts.items():
        raw = everyone[email]
        assert account["name"] == raw["name"]
        assert account["status"] == ("active" if raw["status"] == "active" else "pending")
        # (4) The role lands in customproperty4; (5) the other columns in custom properties.
        assert account["role"] == ""
        extra = account["extra"]
        assert extra["customproperty4"] == raw["role"]
        assert extra["customproperty5"] == raw["status"]
        assert extra["customproperty6"] is raw["mfaEnabled"]
        assert account["mfa_enabled"] is False
        assert account["created"] is None
        assert extra["customproperty8"] == raw["created"]
        assert extra["displayName"] == email
        # (6) memberships is text, and empty without expand=memberships.
        assert extra["customproperty3"]["data"] == []
        # (3) Links come from the members of the sites read; owners are members of every site.
        reachable = all_sites if raw["role"] == "owner" else raw["sites"]
        assert account["sites"] == sorted(set(reachable) & set(first_page)), email
    assert {a["status"] for a in accounts.values()} == {"active", "pending"}

    # (9) Add and remove access behave like the native ones.
    member = sim.pick("user")
    before = sim.sites_of(member)
    granted = next(site for site in first_page if site not in before)
    line = _request(cli, "savpkg", env, "add-access", "--email", member, "--site", granted)
    assert line.endswith("completed"), line
    assert sim.sites_of(member) == sorted([*before, granted])
    line = _request(cli, "savpkg", env, "remove-access", "--email", member, "--site", granted)
    assert line.endswith("completed"), line
    assert sim.sites_of(member) == before

    # (7) Create hard-codes the site `staging`, which the corp lacks: the invite is refused.
    assert "staging" not in all_sites
    line = _request(
        cli,
        "savpkg",
        env,
        "create-account",
        "--email",
        NEW,
        "--role",
        "observer",
        "--site",
        first_page[0],
        code=Outcome.TASKS_FAILED,
    )
    assert "failed" in line
    assert "Site not found" in line
    assert sim.user(NEW) is None

    # Once `staging` exists the invite succeeds, into `staging` only (the requested site unused).
    sim.state.add_site("staging")
    line = _request(
        cli,
        "savpkg",
        env,
        "create-account",
        "--email",
        NEW,
        "--role",
        "observer",
        "--site",
        first_page[0],
    )
    assert line.endswith("completed"), line
    user = sim.user(NEW)
    assert user is not None
    # (4) the requested role is sent (user.customproperty4 -> account.role).
    assert (user["role"], user["sites"]) == ("observer", ["staging"])

    assert DEMO_TOKEN.encode() not in cli.database_bytes()


def test_endpoints_list_shows_both_connector_kinds_and_the_database_never_holds_the_token(
    cli: Cli, sim: Sim
) -> None:
    _add_rest(cli, "simpkg", str(PACKAGE), {**NATIVE_PARAMS, "base_url": sim.url}, TOKEN_ENV)
    cli.ok("import", "--endpoint", "simpkg", env=TOKEN_ENV)
    cli.ok("import", env=sim.native_env())  # the native connector: endpoint named after the corp

    endpoints = {e["name"]: e for e in cli.json("endpoints", "list")}

    assert {name: e["connector"] for name, e in endpoints.items()} == {
        "simpkg": "rest",
        DEMO_CORP: "signalsciences",
    }
    assert {e["corp"] for e in endpoints.values()} == {DEMO_CORP}
    assert {e["api_url"] for e in endpoints.values()} == {sim.url}
    package = endpoints["simpkg"]["settings"]
    assert package["package"] == str(PACKAGE.resolve())
    # The parameters given, and no secret: the token is read from the environment at each run.
    assert package["params"] == {**NATIVE_PARAMS, "base_url": sim.url}
    assert endpoints[DEMO_CORP]["email"] == DEMO_EMAIL
    # The package's `email` parameter is the caller every full read of the endpoint must list.
    assert endpoints["simpkg"]["email"] == NATIVE_PARAMS["email"]
    assert all(e["checkpoint"]["last_activity"] for e in endpoints.values())

    stored = cli.database_bytes()
    assert b"simpkg" in stored  # the file is readable as bytes, so the check below means something
    assert DEMO_TOKEN.encode() not in stored
