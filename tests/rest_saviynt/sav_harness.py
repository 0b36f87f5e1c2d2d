"""Helpers for the Saviynt conversion tests: the reference exports and the converted SigSci package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from sigsci_iga.connectors.rest.loader import BoundPackage, load_package
from sigsci_iga.connectors.rest.saviynt import ConversionResult, convert_saviynt
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN

ROOT = Path(__file__).resolve().parents[2]
#: CI lays `shared/` beside the checkout; the exports are public reference material, not ours.
REFERENCE = ROOT.parent / "shared" / "reference"
EXPORTS = REFERENCE / "saviynt-packages"
GENERATED = ROOT / "packages" / "saviynt"
DOC = ROOT / "docs" / "saviynt-conversion.md"
SIM_PARAMS = {"base_url": "http://sim", "corpname": DEMO_CORP, "api_user": DEMO_EMAIL}
SIM_ENV = {"SIGSCI_TOKEN": DEMO_TOKEN}


def exports() -> list[Path]:
    """The 17 reference exports; a missing folder fails the test (it must not pass silently)."""
    found = sorted(EXPORTS.glob("*.json"))
    if not found:
        pytest.fail(
            f"the Saviynt reference exports are missing: {EXPORTS} (shared/ beside the clone)"
        )
    return found


def export(name: str) -> Path:
    path = EXPORTS / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"the Saviynt reference export is missing: {path} (shared/ beside the clone)")
    return path


@cache
def converted(name: str) -> ConversionResult:
    """A reference export, converted once per test session."""
    return convert_saviynt(export(name))


def bound_sigsci(directory: Path, yaml_text: str | None = None) -> BoundPackage:
    """The converted Signal Sciences package, written, loaded and bound to the simulator."""
    file = directory / "signal-sciences.yaml"
    file.write_text(yaml_text or converted("Signal-Sciences").to_yaml())
    return load_package(file).bind(SIM_PARAMS, env=SIM_ENV)
