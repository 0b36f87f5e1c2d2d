"""Values are checked at the edge, against what is known, before anything is written or sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_inprocess import ImportedCorp

from sigsci_iga.sim import OBSERVER_EMAIL


def sites(corp: ImportedCorp) -> list[str]:
    done = corp.run("entitlements", "list", "--type", "Site", "--json")
    return sorted(e["value"] for e in json.loads(done.stdout))


def refused(corp: ImportedCorp, *args: str) -> str:
    """Run a mistaken command: exit 2, one error line, the repository's bytes unchanged."""
    before = corp.state()
    done = corp.run(*args)
    assert done.crash is None, done.crash
    assert done.code == 2, (args, done.stdout, done.stderr)
    (line,) = done.error_lines
    assert line.startswith("error: ")
    assert corp.state() == before
    return line


def test_a_mistyped_site_in_a_request_is_refused_with_the_closest_known_site(
    imported_corp: ImportedCorp,
) -> None:
    site = sites(imported_corp)[0]

    line = refused(
        imported_corp, "request", "add-access", "--email", OBSERVER_EMAIL, "--site", site[:-1]
    )

    assert f"did you mean {site!r}?" in line


def test_a_mistyped_role_in_a_request_is_refused_with_the_closest_role(
    imported_corp: ImportedCorp,
) -> None:
    line = refused(
        imported_corp, "request", "update-role", "--email", OBSERVER_EMAIL, "--role", "admn"
    )

    assert "did you mean 'admin'?" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("accounts", "list", "--status", "activ"), "did you mean 'active'?"),
        (("accounts", "list", "--role", "Admin"), "did you mean 'admin'?"),
        (("entitlements", "list", "--type", "site"), "did you mean 'Site'?"),
        (("tasks", "list", "--status", "faild"), "did you mean 'failed'?"),
        (("provision", "run", "--dry-run", "--until-done"), "--until-done"),
        (("import", "--dry-run", "--limit", "0"), "--limit"),
        (("runs", "show", "1", "--limit", "-3"), "--limit"),
    ],
)
def test_filters_and_options_outside_the_known_values_are_refused_by_name(
    imported_corp: ImportedCorp, args: tuple[str, ...], named: str
) -> None:
    assert named in refused(imported_corp, *args)


def test_a_site_and_a_role_together_in_add_access_are_refused_not_one_dropped(
    imported_corp: ImportedCorp,
) -> None:
    line = refused(
        imported_corp, "request", "add-access", "--email", OBSERVER_EMAIL,
        "--role", "user", "--site", sites(imported_corp)[0],
    )  # fmt: skip

    assert "not both" in line


def test_an_unknown_correlation_rule_is_refused_before_identities_are_written(
    imported_corp: ImportedCorp, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "username,email,first_name,last_name\nobs,observer@testcorp.example,Ob,Server\n",
        encoding="utf-8",
    )

    line = refused(imported_corp, "identities", "load", str(people), "--rule", "bogus")

    assert "bogus" in line
    assert json.loads(imported_corp.run("identities", "list", "--json").stdout) == []


def test_a_reader_that_closes_the_pipe_early_ends_the_listing_quietly(
    imported_corp: ImportedCorp,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sigsci_iga", "accounts", "list", "--json"],
        env={**env, **imported_corp.env},
        cwd=imported_corp.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # as `| head -0` would, before the first row is written
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0
    assert errors == b""
