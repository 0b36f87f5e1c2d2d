"""Public reference files the tests read, kept under tests/fixtures/ so that a fresh clone runs them.

Where each file comes from is in the README.md beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The 17 Saviynt EIC REST connection exports, copied from the public saviynt/saviynt-connectors.
SAVIYNT_EXPORTS = FIXTURES / "saviynt"


def saviynt_exports() -> list[Path]:
    """Every Saviynt export; none found fails the test, since a silent empty scan would pass."""
    found = sorted(SAVIYNT_EXPORTS.glob("*.json"))
    if not found:
        pytest.fail(f"no Saviynt exports in {SAVIYNT_EXPORTS} (tests/fixtures/saviynt/)")
    return found


def saviynt_export(name: str) -> Path:
    """One Saviynt export by its stem, e.g. `Signal-Sciences`."""
    path = SAVIYNT_EXPORTS / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"the Saviynt export is missing: {path} (tests/fixtures/saviynt/)")
    return path
