"""Regular expressions run on RE2: linear time, Java replacements, and a load-time refusal of the rest."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sigsci_iga.connectors.rest.expressions import (
    EvaluationError,
    TemplateError,
    compile_expression,
)
from sigsci_iga.connectors.rest.templates import compile_template

ROOTS = frozenset({"user"})
WHERE = "pkg.yaml: provisioning.create_account[0].body.name"


def value(text: str, bindings: dict[str, Any] | None = None) -> Any:
    return compile_expression(text, where=WHERE, roots=ROOTS).evaluate(bindings or {})


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pattern", ["(a|a)*c", "(a|aa)*c", "(a+)+c", "(a*)*c", "(.*a){12}c"])
def test_patterns_that_backtrack_exponentially_elsewhere_run_in_linear_time(pattern: str) -> None:
    subject = "a" * 50_000
    started = time.monotonic()

    replaced = value(f"user.x.replaceAll('{pattern}', '-')", {"user": {"x": subject}})
    parts = value(f"user.x.split('{pattern}')", {"user": {"x": subject}})

    assert replaced == subject
    assert parts == [subject]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("pattern", "marker", "construct"),
    [
        # `pattern` is the expression's source text; `marker` is where the construct starts in it.
        ("(a)\\\\1", "\\\\1", "backreference"),
        ("(?<n>a)\\\\k<n>", "\\\\k", "backreference"),
        ("a(?=b)", "(?=", "lookahead"),
        ("a(?!b)", "(?!", "negative lookahead"),
        ("(?<=a)b", "(?<=", "lookbehind"),
        ("(?<!a)b", "(?<!", "negative lookbehind"),
        ("(?>a+)b", "(?>", "atomic group"),
        ("a++b", "++", "possessive quantifier"),
        ("[a-z&&[^b]]", "&&", "character class intersection"),
        ("\\\\Gx", "\\\\G", "\\G"),
    ],
)
def test_constructs_the_linear_engine_lacks_are_refused_at_compile_time_with_their_column(
    pattern: str, marker: str, construct: str
) -> None:
    text = f"user.x.replaceAll('{pattern}', '')"

    with pytest.raises(TemplateError) as caught:
        compile_expression(text, where=WHERE, roots=ROOTS)

    error = caught.value
    assert error.where == WHERE
    assert construct in error.reason
    assert "RE2" in error.reason
    assert error.column == text.index(marker) + 1


def test_split_patterns_are_checked_at_compile_time_too() -> None:
    text = "user.x.split('(?=,)')"
    with pytest.raises(TemplateError, match="lookahead") as caught:
        compile_expression(text, where=WHERE, roots=ROOTS)
    assert caught.value.column == text.index("(?=") + 1


def test_a_refused_pattern_in_a_template_is_located_within_the_template() -> None:
    template = "https://h/${user.x.replaceAll('(?<=@).*', '')}"
    with pytest.raises(TemplateError) as caught:
        compile_template(template, where=WHERE, roots=ROOTS)
    assert caught.value.column == template.index("(?<=") + 1
    assert "lookbehind" in caught.value.reason


def test_a_pattern_computed_at_run_time_is_refused_by_the_engine_with_the_reason() -> None:
    with pytest.raises(EvaluationError, match="backreference"):
        value("user.x.replaceAll(user.p, '')", {"user": {"x": "aa", "p": "(a)\\1"}})
    with pytest.raises(EvaluationError, match="invalid regex"):
        value("user.x.replaceAll(user.p, '')", {"user": {"x": "aa", "p": "(a"}})


def test_refusing_a_pattern_prints_nothing_on_standard_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(TemplateError):
        compile_expression("user.x.replaceAll('a(?=b)', '')", where=WHERE, roots=ROOTS)
    with pytest.raises(TemplateError):
        compile_expression("user.x.replaceAll('a{5000}', '')", where=WHERE, roots=ROOTS)
    with pytest.raises(EvaluationError):
        value("user.x.replaceAll(user.p, '')", {"user": {"x": "a", "p": "(?=a)"}})
    assert capfd.readouterr().err == ""


def test_java_named_groups_and_replacement_references_keep_their_meaning() -> None:
    dates = "'2024-01-02'.replaceAll('(?<y>[0-9]+)-(?<m>[0-9]+)-(?<d>[0-9]+)', '${d}/${m}/${y}')"
    assert value(dates) == "02/01/2024"
    assert value("'2024-01-02'.replaceAll('([0-9]+)-([0-9]+)', '$2\\\\$$1')") == "01$2024-02"
    assert value("'a.b'.replaceAll('[.]', '\\\\\\\\')") == "a\\b"


def test_java_character_classes_are_ascii_as_in_java() -> None:
    # Java's \\w and \\d match ASCII only (without UNICODE_CHARACTER_CLASS); so does RE2.
    assert value("'h\u00e9llo 42\u0663'.replaceAll('\\\\w', '-')") == "-\u00e9--- --\u0663"


def test_empty_matches_replace_as_in_java() -> None:
    assert value("'baaac'.replaceAll('a*', 'X')") == "XbXXcX"
    assert value("'abc'.split('')") == ["a", "b", "c"]
    assert value("'a1b2'.split('[0-9]')") == ["a", "b"]
