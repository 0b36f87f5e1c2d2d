"""docs/architecture.md stays true to the code: every error it documents exists and is used."""

from __future__ import annotations

import re
from pathlib import Path

from sigsci_iga import errors

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
SOURCE = ROOT / "src" / "sigsci_iga"


def documented_errors() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Za-z]*Error)`", DOC.read_text(encoding="utf-8")))


def used_outside_the_error_module(name: str) -> bool:
    pattern = re.compile(rf"\b{name}\b")
    for path in SOURCE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == SOURCE:
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            return True
    return False


def test_the_architecture_document_names_errors() -> None:
    assert len(documented_errors()) >= 10


def test_every_documented_error_is_a_class_of_the_error_module() -> None:
    missing = sorted(n for n in documented_errors() if not hasattr(errors, n))
    assert missing == []


def test_every_documented_error_is_raised_or_mapped_somewhere_or_is_a_base() -> None:
    classes = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]

    def is_base(cls: type) -> bool:
        return any(other is not cls and issubclass(other, cls) for other in classes)

    unused = sorted(
        name
        for name in documented_errors()
        if not used_outside_the_error_module(name) and not is_base(getattr(errors, name))
    )
    assert unused == []


def test_every_error_in_the_recovery_table_is_documented() -> None:
    documented = documented_errors()
    undocumented = sorted(cls.__name__ for cls in errors.RULES if cls.__name__ not in documented)
    assert undocumented == []


def test_the_documented_exit_codes_and_http_statuses_are_the_recovery_tables() -> None:
    rows = re.findall(
        r"^\| (`[A-Z].*?) \| [^|]+ \| (\d+) \| (\d+) \|$",
        DOC.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    assert rows
    wrong = []
    for names, exit_code, status in rows:
        for name in re.findall(r"`([A-Z][A-Za-z]*Error)`", names):
            rule = errors.rule_for(getattr(errors, name))
            if (rule.exit_code, rule.http_status) != (int(exit_code), int(status)):
                wrong.append((name, exit_code, status, rule))
    assert wrong == []
