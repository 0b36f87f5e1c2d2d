"""The 17 public Saviynt exports: each converts to a loadable package, refusals are located,
expressions are counted as docs/saviynt-conversion.md says, and the generated files are up to date."""

from __future__ import annotations

from pathlib import Path

import pytest
from sav_harness import DOC, GENERATED, converted

from fixture_files import SAVIYNT_EXPORTS, saviynt_exports
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.saviynt import (
    conversion_report,
    package_filename,
    render_conversion_doc,
)
from sigsci_iga.connectors.rest.saviynt_report import KNOWN_ATTRIBUTES

NAMES = [
    "Adobe-Creative-Cloud", "Airtable", "Cloud-Foundry", "Collibra", "Degreed", "Everbridge",
    "FactSet", "Genesys-PureCloud", "Google-Analytics", "LaunchDarkly", "LeanIX", "OneTrust",
    "OpsGenie", "Qualtrics", "RingCentral", "Signal-Sciences", "VectorFlow",
]  # fmt: skip


def test_the_reference_folder_holds_the_17_saviynt_exports() -> None:
    assert [p.stem for p in saviynt_exports()] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_export_converts_to_a_package_the_loader_accepts(name: str, tmp_path: Path) -> None:
    result = converted(name)
    assert result.complete, result.report()
    file = tmp_path / package_filename(SAVIYNT_EXPORTS / f"{name}.json")
    file.write_text(result.to_yaml())
    loaded = load_package(file)
    assert loaded.spec.import_.accounts.calls
    for finding in result.refusals:
        # Every refusal names the attribute and the JSON path inside it.
        assert finding.attribute in KNOWN_ATTRIBUTES, finding
        assert finding.path, finding
        assert finding.message


def test_refusals_are_the_known_broken_parts_of_the_saviynt_exports() -> None:
    refused = {name: converted(name).operations_refused for name in NAMES}
    assert refused == {
        **{name: [] for name in NAMES},
        "Collibra": ["add_access.Group"],  # body ends in `}}`
        "Google-Analytics": ["add_access.Subproperty", "remove_access.Subproperty"],
        "LeanIX": ["remove_access.Permission"],  # stray quote in the body
        "OneTrust": ["enable_account", "disable_account"],  # bodies start with `{{`
        "Qualtrics": ["create_account", "add_access.Group"],  # ${password}; body ends in `}}`
        "VectorFlow": ["create_account", "update_account", "enable_account"],  # userManager
    }
    google = {f.path: f for f in converted("Google-Analytics").refusals}
    statement = google["accountParams.call.call1.colsToPropsMap.customproperty1"]
    assert "statements are not allowed" in statement.message
    assert statement.text is not None
    assert statement.text.startswith("${if(response.name!=null)")
    dependent = google["entitlementParams.entTypes.Subproperty.call.call1.inputParams"]
    assert "dependent call" in dependent.message


def test_invalid_json_bodies_are_refused_with_attribute_path_and_text() -> None:
    (finding,) = [f for f in converted("OneTrust").refusals if f.attribute == "EnableAccountJSON"]
    assert finding.path == "call[0].httpParams"
    assert "not valid JSON" in finding.message
    assert finding.text == '{{"Operation":[{"value":{"active":true}}]}'


def test_expression_counts_match_the_reference_and_at_least_95_percent_are_supported() -> None:
    results = [converted(name) for name in NAMES]
    total = sum(r.expressions_total for r in results)
    supported = sum(r.expressions_supported for r in results)
    kept = sum(r.expressions_converted for r in results)
    assert total == 509  # "Counting expressions" in docs/saviynt-conversion.md
    assert supported == 504  # all but the 2 if-blocks and the 3 malformed ones
    assert supported / total >= 0.95
    assert converted("Signal-Sciences").expressions_converted == 18
    # Refused operations take their expressions with them (VectorFlow's userManager alone: 110).
    assert kept == 357
    assert all(r.expressions_converted <= r.expressions_supported for r in results)


def test_the_committed_packages_are_the_current_conversions() -> None:
    for path in saviynt_exports():
        file = GENERATED / package_filename(path)
        assert file.is_file(), f"{file} is missing: regenerate with export_packages()"
        assert file.read_text() == converted(path.stem).to_yaml(), f"{file} is stale"


def test_the_report_has_a_row_per_package_totals_and_located_refusals() -> None:
    report = conversion_report(saviynt_exports())
    for name in NAMES:
        assert f"| {name} |" in report
    assert "| **All 17** | 17 packages load |" in report
    assert "504 of 509 (99.0 %)" in report
    assert "- OneTrust" not in report  # refusals are grouped under a bold package name
    assert "**OneTrust**" in report
    assert "EnableAccountJSON: call[0].httpParams: the body is not valid JSON" in report


def test_the_doc_holds_the_current_report() -> None:
    document = DOC.read_text()
    assert render_conversion_doc(document, saviynt_exports()) == document, (
        "regenerate the doc's table"
    )
