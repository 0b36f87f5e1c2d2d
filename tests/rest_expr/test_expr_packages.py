"""Every `${...}` in the 17 public Saviynt packages: classified, counted and compiled."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixture_files import saviynt_exports
from sigsci_iga.connectors.rest.expressions import (
    TemplateError,
    classify_expression,
    compile_expression,
)
from sigsci_iga.connectors.rest.templates import find_expressions

#: Every binding variable known to Saviynt REST connections, as `saviynt_exprs.SAVIYNT_ROOTS`.
PERMISSIVE_ROOTS = frozenset(
    {
        "user", "account", "entitlementValue", "requestAccessAttributes", "reqAttrs",
        "access_token", "connection", "task", "arsTasks", "requestid", "businessJustification",
        "approvers", "userManager", "managerAccount", "userAccount", "accountName", "endpoints",
        "ServiceAccountOwnerMap", "password", "randomPassword", "response", "headers", "id",
        "entitlementID", "refresh_token",
    }
)  # fmt: skip
SUPPORTED = ("path", "null_default", "ternary_or_operator", "method_call")


@dataclass(frozen=True)
class Found:
    """One `${...}` (or one unterminated `${`) found in a package attribute."""

    package: str
    attribute: str
    body: str | None  # None: the string has an unterminated `${`
    kind: str


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _scan(paths: list[Path]) -> list[Found]:
    found: list[Found] = []
    for path in paths:
        document = json.loads(path.read_text(encoding="utf-8"))
        for connection in document.values():
            for attribute in connection.get("EXTERNAL_ATTR", []):
                name = attribute["attributename"]
                text = attribute.get("encryptedattributevalue") or ""
                if name == "ConnectionJSON" or not text:
                    continue  # ConnectionJSON is encrypted in exports
                try:
                    parsed = json.loads(text)
                except ValueError:
                    continue
                for string in _strings(parsed):
                    try:
                        bodies = find_expressions(string)
                    except TemplateError:
                        found.append(Found(path.stem, name, None, "malformed"))
                        continue
                    found.extend(
                        Found(path.stem, name, body, classify_expression(body)) for body in bodies
                    )
    return found


@pytest.fixture(scope="module")
def found() -> list[Found]:
    return _scan(saviynt_exports())


def test_the_classification_matches_the_measured_table(found: list[Found]) -> None:
    counts = Counter(item.kind for item in found)
    assert len(found) == 509
    assert counts == {
        "path": 406,
        "null_default": 86,
        "ternary_or_operator": 4,
        "method_call": 3,
        "statement": 7,
        "malformed": 3,
    }


def test_at_least_95_percent_of_real_expressions_are_supported_and_all_of_them_compile(
    found: list[Found],
) -> None:
    supported = [item for item in found if item.kind in SUPPORTED]
    assert len(supported) / len(found) >= 0.95
    for item in supported:
        assert item.body is not None
        compile_expression(
            item.body, where=f"{item.package}: {item.attribute}", roots=PERMISSIVE_ROOTS
        )


def test_statements_compile_only_when_they_are_a_lone_return(found: list[Found]) -> None:
    compiled, refused = [], []
    for item in found:
        if item.kind != "statement":
            continue
        assert item.body is not None
        try:
            compile_expression(item.body, where=item.package, roots=PERMISSIVE_ROOTS)
        except TemplateError as exc:
            refused.append(exc.reason)
        else:
            compiled.append(item.body)
    assert all(body.strip().startswith("return ") for body in compiled)
    assert len(compiled) == 5
    assert refused == ["statements are not allowed (`if`)"] * 2


def test_the_malformed_ones_are_the_known_broken_pagination_expressions(found: list[Found]) -> None:
    malformed = Counter(item.package for item in found if item.kind == "malformed")
    assert malformed == {"Adobe-Creative-Cloud": 2, "Google-Analytics": 1}


def test_signal_sciences_expressions_are_all_plain_paths(found: list[Found]) -> None:
    sigsci = [item for item in found if item.package == "Signal-Sciences"]
    assert len(sigsci) == 18
    assert {item.kind for item in sigsci} == {"path"}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("user.email", "path"),
        ("${user.email}", "path"),
        ("response.call1.message.data[0].id", "path"),
        ("user['X-Team']", "path"),
        ("user.city==null?'':user.city", "null_default"),
        ("(user.city == null) ? '' : user?.city", "null_default"),
        ("user.city != null ? user.city : 'none'", "null_default"),
        ("user.city ?: ''", "null_default"),
        ("user.city==null?'':user.town", "ternary_or_operator"),
        ("(user.regioncode=='Employee')?'a':'b'", "ternary_or_operator"),
        ("'a' + user.x", "ternary_or_operator"),
        ("user.x.trim()", "method_call"),
        ("Math.addExact(1, 2)", "method_call"),
        ("return response.name;", "statement"),
        ("if(x){return 1}", "statement"),
        ("def a = 1", "statement"),
        ("new Date()", "statement"),
        ("x > 0 ? 'a : null", "malformed"),
        ("${user.x", "malformed"),
        ("(user.x", "malformed"),
        ("", "malformed"),
    ],
)
def test_classify_expression_sorts_forms_like_the_reference_table(text: str, kind: str) -> None:
    assert classify_expression(text) == kind
