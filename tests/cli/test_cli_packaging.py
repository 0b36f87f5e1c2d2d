"""The shipped packages and the licence travel inside the installed package, not the checkout.

`packages list` and `packages show` find the packages through importlib.resources, so they are
run here from a directory that holds no checkout. What the wheel takes is decided by
pyproject.toml's package-data globs: every shipped file must match one (a wheel built from this
pyproject was checked by hand with `pip wheel --no-deps -w dist .`; building one here would need
the package index).
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

from cli_inprocess import invoke

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SHIPPED = Path(str(resources.files("sigsci_iga").joinpath("packages_data")))


def test_the_shipped_packages_are_found_inside_the_installed_package() -> None:
    assert SHIPPED.is_dir()
    assert (SHIPPED / "signalsciences.yaml").is_file()
    assert len(list((SHIPPED / "saviynt").glob("*.yaml"))) == 17


def test_packages_list_names_every_shipped_package_from_a_directory_without_a_checkout(
    tmp_path: Path,
) -> None:
    done = invoke("packages", "list", "--json", env={}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    listed = json.loads(done.stdout)
    names = {p["name"] for p in listed}
    expected = {f.relative_to(SHIPPED).with_suffix("").as_posix() for f in SHIPPED.rglob("*.yaml")}
    assert names == expected
    assert "signalsciences" in names
    assert "saviynt/airtable" in names
    assert all(p["version"] and p["description"] for p in listed)


def test_packages_list_prints_a_table_that_fits_80_columns(tmp_path: Path) -> None:
    done = invoke("packages", "list", env={"COLUMNS": "80"}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "saviynt/adobe-creative-cloud" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_packages_show_prints_the_package_exactly_as_shipped(tmp_path: Path) -> None:
    done = invoke("packages", "show", "signalsciences", env={}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.stdout == (SHIPPED / "signalsciences.yaml").read_text(encoding="utf-8")


def test_packages_show_finds_a_converted_package_by_its_short_name_and_writes_a_valid_copy(
    tmp_path: Path,
) -> None:
    done = invoke("packages", "show", "airtable", "-o", "airtable.yaml", env={}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    copy = tmp_path / "airtable.yaml"
    assert copy.read_bytes() == (SHIPPED / "saviynt" / "airtable.yaml").read_bytes()
    validated = invoke("packages", "validate", "airtable.yaml", env={}, cwd=tmp_path)
    assert validated.code == 0, validated.stderr
    assert "package 'airtable'" in validated.stdout


def test_an_unknown_package_name_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    done = invoke("packages", "show", "signalscience", env={}, cwd=tmp_path)
    assert done.code == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: shipped package 'signalscience' is not one of")
    assert "did you mean 'signalsciences'?" in line


def test_the_wheel_takes_every_shipped_package_file() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["sigsci_iga"]
    package_root = ROOT / "src" / "sigsci_iga"
    matched = {path for pattern in patterns for path in package_root.glob(pattern)}
    shipped = {path for path in (package_root / "packages_data").rglob("*") if path.is_file()}
    assert shipped
    assert shipped <= matched


def test_the_licence_is_an_spdx_expression_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    # Setuptools before 77 reads a table licence only, and warns about it from 77 on.
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"][0]
