"""`packages validate` and `packages schema` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_pkg_harness import PACKAGE, Cli

#: The update_account call of the shipped package: its one `role` template.
UPDATE_BODY = "      body:\n        role: ${account.role}\n      success: {statuses: [200, 204]}"
UPDATE_ROLE_PATH = "provisioning.update_account[0].body.role"


def _variant(directory: Path, name: str, old: str, new: str) -> Path:
    """The shipped package with one exact piece of text replaced, written as `name`."""
    text = PACKAGE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    (directory / name).write_text(text.replace(old, new), encoding="utf-8")
    return directory / name


def test_validate_accepts_the_shipped_package_with_a_one_line_summary(cli: Cli) -> None:
    result = cli.ok("packages", "validate", PACKAGE)
    document = yaml.safe_load(PACKAGE.read_text(encoding="utf-8"))

    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{PACKAGE}: ok")
    assert f"package {document['name']!r} {document['version']}" in line
    assert f"{len(document['parameters'])} parameters" in line
    assert line.endswith(f"provisioning: {', '.join(sorted(document['provisioning']))}")


def test_validate_as_json_gives_the_same_summary(cli: Cli) -> None:
    result = cli.ok("packages", "validate", str(PACKAGE), "--json")
    document = yaml.safe_load(PACKAGE.read_text(encoding="utf-8"))

    summary = json.loads(result.stdout)
    assert (summary["valid"], summary["name"], summary["version"]) == (
        True,
        document["name"],
        document["version"],
    )
    assert summary["parameters"] == len(document["parameters"])
    assert summary["operations"] == sorted(document["provisioning"])


def test_validate_refuses_an_unknown_key_with_one_error_naming_the_file_and_json_path(
    cli: Cli,
) -> None:
    _variant(
        cli.workdir,
        "typo.yaml",
        '        members: ["${account.email}"]\n        success:',
        '        members: ["${account.email}"]\n        succes:',
    )

    result = cli.run("packages", "validate", "typo.yaml")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr
    header, problem = result.stderr.strip().splitlines()
    assert header == "error: typo.yaml: invalid package (1 problem(s)):"
    assert problem.strip().startswith("provisioning.add_access.Site[0].succes: unknown key")


@pytest.mark.parametrize(
    ("template", "reason"),
    [("${user.__class__}", "`__`"), ("${new java.io.File('x')}", "`new`")],
    ids=["class-access", "new-object"],
)
def test_validate_refuses_a_sandbox_escape_template_with_one_located_error(
    cli: Cli, template: str, reason: str
) -> None:
    _variant(
        cli.workdir, "escape.yaml", UPDATE_BODY, UPDATE_BODY.replace("${account.role}", template)
    )

    result = cli.run("packages", "validate", "escape.yaml")

    assert result.code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: escape.yaml: {UPDATE_ROLE_PATH}: ")
    assert reason in line
    assert template in line


def test_schema_prints_the_json_schema_of_the_format_and_writes_it_with_o(cli: Cli) -> None:
    printed = json.loads(cli.ok("packages", "schema").stdout)

    assert {"name", "connection", "import", "provisioning"} <= printed["properties"].keys()
    assert {"name", "connection", "import"} <= set(printed["required"])

    result = cli.ok("packages", "schema", "-o", "package.schema.json")

    assert result.stdout.strip() == "wrote package.schema.json"
    written = json.loads((cli.workdir / "package.schema.json").read_text(encoding="utf-8"))
    assert written == printed
