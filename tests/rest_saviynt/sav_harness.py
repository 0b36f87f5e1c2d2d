"""Helpers for the Saviynt conversion tests: the public exports and the converted SigSci package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fixture_files import saviynt_export
from sigsci_iga.connectors.rest.loader import BoundPackage, load_package
from sigsci_iga.connectors.rest.saviynt import ConversionResult, convert_saviynt
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "src" / "sigsci_iga" / "packages_data" / "saviynt"
DOC = ROOT / "docs" / "saviynt-conversion.md"
SIM_PARAMS = {"base_url": "http://sim", "corpname": DEMO_CORP, "api_user": DEMO_EMAIL}
SIM_ENV = {"SIGSCI_TOKEN": DEMO_TOKEN}


@cache
def converted(name: str) -> ConversionResult:
    """A public export (tests/fixtures/saviynt/), converted once per test session."""
    return convert_saviynt(saviynt_export(name))


def bound_sigsci(directory: Path, yaml_text: str | None = None) -> BoundPackage:
    """The converted Signal Sciences package, written, loaded and bound to the simulator."""
    file = directory / "signal-sciences.yaml"
    file.write_text(yaml_text or converted("Signal-Sciences").to_yaml())
    return load_package(file).bind(SIM_PARAMS, env=SIM_ENV)
