"""`packages render`: the exact requests of an operation, secrets masked, nothing sent.

Each render is pointed at a live simulator (`--param base_url=...`) whose call counter must stay
at zero, with the demo token in SIGSCI_TOKEN (the harness checks it never shows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cli_pkg_harness import NATIVE_PARAMS, PACKAGE, TOKEN_ENV, Cli, Result, Sim, param_args

from sigsci_iga.sim import DEMO_CORP

SITES_PATH = f"/api/v0/corps/{DEMO_CORP}/sites"
USERS_PATH = f"/api/v0/corps/{DEMO_CORP}/users"


def _render(
    cli: Cli, sim: Sim, operation: str, *args: str, package: Path = PACKAGE
) -> list[tuple[str, Any]]:
    """Render with the token set; the simulator receives nothing. Returns (request line, body)."""
    params = {**NATIVE_PARAMS, "base_url": sim.url}
    result = cli.ok(
        "packages",
        "render",
        package,
        "--operation",
        operation,
        *args,
        *param_args(params),
        env=TOKEN_ENV,
    )
    assert result.stderr == ""
    assert sim.calls_total() == 0
    return _parse(result)


def _parse(result: Result) -> list[tuple[str, Any]]:
    """Split the output into calls: a `METHOD PATH` line, then its JSON body if any."""
    lines = result.stdout.splitlines()
    calls: list[tuple[str, Any]] = []
    trailer = lines.pop()
    assert trailer.endswith("call(s); nothing was sent")
    while lines:
        request = lines.pop(0)
        body_lines: list[str] = []
        while lines and not lines[0].split(" ", 1)[0].isupper():
            body_lines.append(lines.pop(0))
        calls.append((request, json.loads("\n".join(body_lines)) if body_lines else None))
    assert trailer == f"{len(calls)} call(s); nothing was sent"
    return calls


def test_render_add_access_prints_the_exact_post_path_and_json_body(cli: Cli, sim: Sim) -> None:
    calls = _render(cli, sim, "add-access", "--account", "A", "--entitlement", "SITE")

    # The account is the email, lower-cased as the engine keys it; the site is kept as given.
    assert calls == [(f"POST {SITES_PATH}/SITE/members", {"members": ["a"]})]


def test_render_as_json_gives_the_same_calls_under_the_api_spelling_of_the_operation(
    cli: Cli, sim: Sim
) -> None:
    params = {**NATIVE_PARAMS, "base_url": sim.url}
    result = cli.ok(
        "packages", "render", PACKAGE, "--operation", "add_access", "--account", "A",
        "--entitlement", "SITE", "--json", *param_args(params), env=TOKEN_ENV,
    )  # fmt: skip

    assert json.loads(result.stdout) == [
        {"method": "POST", "path": f"{SITES_PATH}/SITE/members", "body": {"members": ["a"]}}
    ]
    assert sim.calls_total() == 0


def test_render_masks_a_secret_rendered_into_a_request(cli: Cli, sim: Sim) -> None:
    text = PACKAGE.read_text(encoding="utf-8")
    old = '          members: ["${account.email}"]\n'
    assert text.count(old) == 1
    leaky = cli.workdir / "leaky.yaml"
    leaky.write_text(text.replace(old, old + "          note: ${params.token}\n"))

    calls = _render(
        cli, sim, "add-access", "--account", "a@x.example", "--entitlement", "s1", package=leaky
    )

    assert calls == [(f"POST {SITES_PATH}/s1/members", {"members": ["a@x.example"], "note": "***"})]


def test_render_create_account_with_two_entitlements_invites_into_both_sites(
    cli: Cli, sim: Sim
) -> None:
    calls = _render(
        cli,
        sim,
        "create-account",
        "--account",
        "new@x.example",
        "--role",
        "observer",
        "--entitlement",
        "www.one.example",
        "--entitlement",
        "api.two.example",
    )

    [(request, body)] = calls
    assert request == f"POST {USERS_PATH}/new@x.example/invite"
    assert body.keys() == {"role", "memberships"}
    assert body["role"] == "observer"
    # Both sites, each once (in the engine's order, which is sorted).
    assert sorted(body["memberships"]["data"], key=str) == [
        {"site": {"name": "api.two.example"}},
        {"site": {"name": "www.one.example"}},
    ]


def test_render_keeps_quotes_braces_and_markup_in_an_account_as_one_json_string(
    cli: Cli, sim: Sim
) -> None:
    # Quotes and braces cannot break the body; `[b]` and `:x:` are not console markup either.
    account = 'q"}],"role":"owner"{[b]:thumbs_up:@x.example'

    [(request, body)] = _render(cli, sim, "add-access", "--account", account, "--entitlement", "s1")
    [(invite, invited)] = _render(
        cli, sim, "create-account", "--account", account, "--entitlement", "s1"
    )

    assert request == f"POST {SITES_PATH}/s1/members"
    assert body == {"members": [account]}
    # In a path segment the account is percent-encoded: it stays one segment, and decodes back.
    method, path = invite.split(" ")
    assert method == "POST"
    segment = path.removeprefix(f"{USERS_PATH}/").removesuffix("/invite")
    assert unquote(segment) == account
    assert not set(segment) & set('"{}[]/')
    assert invited == {"role": "user", "memberships": {"data": [{"site": {"name": "s1"}}]}}


def test_render_masks_values_computed_from_a_secret_in_body_path_and_query(
    cli: Cli, sim: Sim
) -> None:
    text = PACKAGE.read_text(encoding="utf-8")
    old = '          members: ["${account.email}"]\n'
    url = "        url: /api/v0/corps/${params.corp}/sites/${entitlementValue.value}/members\n"
    assert text.count(old) == 1
    assert text.count(url) == 1
    leaky = cli.workdir / "leaky.yaml"
    leaky.write_text(
        text.replace(
            old,
            old
            + "          upper: ${params.token.toUpperCase()}\n"
            + "          tail: ${params.token.substring(4)}\n"
            + "          swapped: ${params.token.replace('-', '_')}\n",
        ).replace(
            url,
            "        url: /api/v0/corps/${params.corp}/sites/${entitlementValue.value}"
            "/members/${params.token.replaceAll('[a-z]', 'Z')}\n"
            "        query:\n"
            "          sig: ${'v1:' + params.token.toUpperCase()}\n",
        )
    )

    calls = _render(
        cli, sim, "add-access", "--account", "a@x.example", "--entitlement", "s1", package=leaky
    )

    assert calls == [
        (
            f"POST {SITES_PATH}/s1/members/***?sig=***",
            {"members": ["a@x.example"], "upper": "***", "tail": "***", "swapped": "***"},
        )
    ]
