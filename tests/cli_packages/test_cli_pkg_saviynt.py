"""`packages import-saviynt` on the public Saviynt exports, from the command line."""

from __future__ import annotations

import json

import yaml
from cli_pkg_harness import Cli

from fixture_files import saviynt_export
from sigsci_iga.connectors.rest.saviynt import convert_saviynt


def test_import_saviynt_writes_a_valid_package_and_reports_parameters_and_warnings(
    cli: Cli,
) -> None:
    expected = convert_saviynt(saviynt_export("Signal-Sciences"))

    result = cli.ok(
        "packages", "import-saviynt", saviynt_export("Signal-Sciences"), "-o", "sigsci.yaml"
    )
    report = result.stdout

    assert result.stderr == ""
    assert "Saviynt connection Signal-Sciences.json -> package 'signal_sciences'" in report
    assert expected.warnings
    assert f"warnings ({len(expected.warnings)}):" in report
    assert not expected.refusals
    assert "refusals" not in report
    assert (
        "placeholder @CORPNAME@ becomes the required parameter 'corpname' (${params.corpname})"
        in report
    )
    assert (
        "accountParams.statusAndThresholdConfig.status: wrong key 'status' accepted as "
        "'activeStatus'" in report
    )
    assert report.rstrip().endswith(
        "wrote sigsci.yaml; fill in its parameters, then: sigsci-iga packages validate sigsci.yaml"
    )

    written = (cli.workdir / "sigsci.yaml").read_text(encoding="utf-8")
    package = yaml.safe_load(written)
    assert package["parameters"]["corpname"] == {
        "description": "Replaces the Saviynt placeholder @CORPNAME@ (edited by hand in EIC).",
        "required": True,
    }
    calls = json.dumps([package["import"], package["provisioning"]])
    assert "@CORPNAME@" not in calls
    assert "/corps/${params.corpname}/users" in calls
    # The status rule reads the column the export meant (its `status` key for `activeStatus`).
    assert package["import"]["accounts"]["status"] == {
        "path": "status",
        "active_values": ["active"],
    }
    # What the CLI wrote is what the library converts.
    assert written == expected.to_yaml()

    validated = cli.ok("packages", "validate", "sigsci.yaml")
    assert validated.stdout.startswith("sigsci.yaml: ok — package 'signal_sciences'")


def test_import_saviynt_lists_each_refusal_with_its_attribute_and_json_path(cli: Cli) -> None:
    source = saviynt_export("Google-Analytics")
    expected = convert_saviynt(source).refusals
    assert expected  # the export holds `if {...}` blocks, a dependent type, a broken pagination

    result = cli.ok("packages", "import-saviynt", source, "-o", "ga.yaml")

    report = result.stdout
    assert f"refusals ({len(expected)}):" in report
    for refusal in expected:
        assert f"{refusal.attribute}: {refusal.path}: " in report
    # The `if` statement of a column, located by attribute and JSON path, with the reason.
    assert (
        "ImportAccountEntJSON: accountParams.call.call1.colsToPropsMap.customproperty1: "
        "unsupported expression (statements are not allowed (`if`))" in report
    )
    assert "AddAccessJSON: call[0].name: the entitlement type 'Subproperty' was refused" in report
    # What could be converted still loads.
    assert cli.ok("packages", "validate", "ga.yaml").stdout.startswith("ga.yaml: ok")
