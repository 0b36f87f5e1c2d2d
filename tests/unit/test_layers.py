"""The layers' import rules, read from the source with `ast` (nothing is imported to check)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import sigsci_iga

PACKAGE_ROOT = Path(sigsci_iga.__file__).resolve().parent


@dataclass(frozen=True)
class Rule:
    """Modules at or under `layer` must not import `forbidden` (or below), except `allowed`."""

    layer: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    Rule("sigsci_iga.connectors.rest", ("sigsci_iga.connectors.signalsciences",)),
    Rule("sigsci_iga.connectors.signalsciences", ("sigsci_iga.connectors.rest",)),
    Rule(
        "sigsci_iga.provisioning",
        ("sigsci_iga.connectors",),
        allowed=("sigsci_iga.connectors.base", "sigsci_iga.connectors.http"),
    ),
    Rule(
        "sigsci_iga.importer",
        ("sigsci_iga.connectors",),
        allowed=("sigsci_iga.connectors.base", "sigsci_iga.connectors.http"),
    ),
    Rule(
        "sigsci_iga.connectors",
        (
            "sigsci_iga.store",
            "sigsci_iga.importer",
            "sigsci_iga.provisioning",
            "sigsci_iga.app",
            "sigsci_iga.cli",
        ),
    ),
    Rule(
        "sigsci_iga.store",
        (
            "sigsci_iga.connectors",
            "sigsci_iga.importer",
            "sigsci_iga.provisioning",
            "sigsci_iga.app",
            "sigsci_iga.cli",
            "sigsci_iga.scheduler",
        ),
    ),
    Rule("sigsci_iga.domain", ("sigsci_iga",), allowed=("sigsci_iga.domain", "sigsci_iga.errors")),
    # Interfaces go through the application layer: no use case is decided in the CLI.
    Rule(
        "sigsci_iga.cli",
        ("sigsci_iga.store", "sigsci_iga.importer", "sigsci_iga.provisioning"),
    ),
    Rule("sigsci_iga.app", ("sigsci_iga.cli", "sigsci_iga.sim", "sigsci_iga.scheduler")),
    # The scheduler runs jobs through the application layer only, and is no interface.
    Rule(
        "sigsci_iga.scheduler",
        (
            "sigsci_iga.cli",
            "sigsci_iga.sim",
            "sigsci_iga.connectors",
            "sigsci_iga.importer",
            "sigsci_iga.provisioning",
        ),
    ),
    Rule(
        "sigsci_iga.importer",
        ("sigsci_iga.provisioning", "sigsci_iga.app", "sigsci_iga.cli"),
    ),
    Rule(
        "sigsci_iga.provisioning",
        ("sigsci_iga.importer", "sigsci_iga.app", "sigsci_iga.cli"),
    ),
    Rule(
        "sigsci_iga.sim",
        (
            "sigsci_iga.store",
            "sigsci_iga.importer",
            "sigsci_iga.provisioning",
            "sigsci_iga.cli",
            "sigsci_iga.connectors.rest",
        ),
    ),
)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(module: str, source: str, *, is_package: bool = False) -> list[tuple[str, int]]:
    """Every name a module imports, as (dotted name, line), relative imports resolved.

    `from a.b import c` counts as importing `a.b.c`: c may be a module, and a rule about `a.b`
    covers it either way.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return found


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """What `module` imports against the rules, one readable line each."""
    found = []
    for rule in RULES:
        if not under(module, rule.layer):
            continue
        for name, line in imports(module, source, is_package=is_package):
            banned = next((f for f in rule.forbidden if under(name, f)), None)
            if banned is None or any(under(name, a) for a in rule.allowed):
                continue
            found.append(
                f"{module} imports {name} (line {line}): {rule.layer} must not import {banned}"
                + (f" except {', '.join(rule.allowed)}" if rule.allowed else "")
            )
    return found


def source_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in PACKAGE_ROOT.rglob("*.py"))


def test_every_module_under_src_follows_the_layer_rules() -> None:
    found = [
        line
        for module, path in source_modules()
        for line in violations(module, path.read_text(), is_package=path.name == "__init__.py")
    ]
    assert not found, "layer rules broken:\n" + "\n".join(found)


def test_the_rules_see_every_layer_they_are_about() -> None:
    modules = [m for m, _ in source_modules()]
    for rule in RULES:
        assert any(under(m, rule.layer) for m in modules), f"no module under {rule.layer}"


def test_a_broken_rule_names_the_module_and_the_import() -> None:
    source = "import os\nfrom sigsci_iga.connectors.signalsciences.paths import api_path\n"

    found = violations("sigsci_iga.connectors.rest.runtime", source)

    assert found == [
        "sigsci_iga.connectors.rest.runtime imports "
        "sigsci_iga.connectors.signalsciences.paths.api_path (line 2): "
        "sigsci_iga.connectors.rest must not import sigsci_iga.connectors.signalsciences"
    ]


def test_relative_and_function_level_imports_count_too() -> None:
    source = "def late():\n    from ...store import Repository\n"

    found = violations("sigsci_iga.connectors.rest.runtime", source)

    assert [f.split(" (")[0] for f in found] == [
        "sigsci_iga.connectors.rest.runtime imports sigsci_iga.store.Repository"
    ]


def test_the_domain_may_import_only_itself_and_the_errors() -> None:
    source = (
        "from sigsci_iga.errors import InvalidInputError\n"
        "from sigsci_iga.domain.model import CorpRole\n"
        "from sigsci_iga.settings import Settings\n"
    )

    found = violations("sigsci_iga.domain.diff", source)

    assert len(found) == 1
    assert "imports sigsci_iga.settings.Settings (line 3)" in found[0]


def test_provisioning_may_use_the_contract_and_the_call_records_but_no_connector() -> None:
    source = (
        "from sigsci_iga.connectors.base import Step\n"
        "from sigsci_iga.connectors.http.calls import capture_calls\n"
        "from sigsci_iga.connectors.rest.runtime import RestConnector\n"
    )

    found = violations("sigsci_iga.provisioning.worker", source)

    assert len(found) == 1
    assert "imports sigsci_iga.connectors.rest.runtime.RestConnector (line 3)" in found[0]


def test_the_scheduler_reaches_jobs_only_through_the_application_layer() -> None:
    source = (
        "from sigsci_iga.app import run_import\n"
        "from sigsci_iga.store import Repository\n"
        "from sigsci_iga.importer.run import Importer\n"
    )

    found = violations("sigsci_iga.scheduler.engine", source)

    assert len(found) == 1
    assert "imports sigsci_iga.importer.run.Importer (line 3)" in found[0]
