"""The evaluator marks every value computed from a secret, and keeps unmarked what is not."""

from __future__ import annotations

from typing import Any

import pytest

from sigsci_iga.connectors.rest.expressions import (
    EvaluationError,
    compile_expression,
)
from sigsci_iga.connectors.rest.taint import MASK, Secret, masked, reveal, tainted
from sigsci_iga.connectors.rest.templates import compile_json, compile_template

ROOTS = frozenset({"params", "user"})
TOKEN = "tok-secret-123"
BINDINGS: dict[str, Any] = {
    "params": {"token": Secret(TOKEN), "corp": "acme"},
    "user": {"email": "ann@example.com", "tags": ["a", "b"], "n": 3},
}


def value(text: str) -> Any:
    return compile_expression(text, where="w", roots=ROOTS).evaluate(BINDINGS)


@pytest.mark.parametrize(
    "text",
    [
        "params.token",
        "params.token.toUpperCase()",
        "params.token.substring(4)",
        "params.token.replace('-', '_')",
        "params.token.replaceAll('[0-9]', '#')",
        "params.token.split('-')",
        "params.token.split('-')[0]",
        "params.token.size()",
        "params.token.length()",
        "params.token.contains('secret')",
        "params.token == 'x'",
        "params.token > 'a'",
        "params.token['0'.size()]",
        "user.tags[params.token.size() - 14]",
        "!params.token.isEmpty()",
        "params.token.isEmpty() ? 'empty' : 'full'",
        "params.token.startsWith('x') ? null : user.email",
        "params.token.startsWith('x') || user.email.contains('@')",
        "user.email.contains('@') && params.token.startsWith('t')",
        "params.token.startsWith('x') ?: 'fallback'",
        "Math.addExact(params.token.size(), 1)",
        "-params.token.size()",
        "params.token.size() * 2",
        "user.tags.contains(params.token)",
        "user.tags.indexOf(params.token)",
        "user.tags.get(params.token.size() - 14)",
        "params.toString()",
        "params.token.equals(user.email)",
        "params.token.equalsIgnoreCase('TOK-SECRET-123')",
    ],
)
def test_every_operation_on_a_secret_gives_a_secret(text: str) -> None:
    assert tainted(value(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.corp", "acme"),
        ("params.size()", 2),
        ("params.isEmpty()", False),
        ("params.get('corp')", "acme"),
        ("params['corp'].toUpperCase()", "ACME"),
        ("params ? 'some' : 'none'", "some"),
        ("user.email.contains('@') || params.token.startsWith('x')", True),
        ("user.email.contains('#') && params.token.startsWith('x')", False),
        ("user.email ?: params.token", "ann@example.com"),
    ],
)
def test_what_does_not_depend_on_a_secret_stays_plain(text: str, expected: Any) -> None:
    result = value(text)
    assert not tainted(result)
    assert result == expected


def test_a_secret_keeps_its_real_value_and_shows_a_mask() -> None:
    result = value("params.token.toUpperCase()")
    assert reveal(result) == TOKEN.upper()
    assert masked(result) == MASK
    assert TOKEN.upper() not in repr(result)
    assert str(result) == MASK


def test_text_joined_from_parts_shows_only_the_secret_parts_masked() -> None:
    assert masked(value("'Bearer ' + params.token")) == "Bearer ***"
    assert masked(value("user.email + ':' + params.token + '!'")) == "ann@example.com:***!"
    assert masked(value("params.toString()")) == '{"token":"***","corp":"acme"}'
    joined = compile_expression("user.tags.join(params.token)", where="w", roots=ROOTS)
    assert masked(joined.evaluate(BINDINGS)) == "a***b"
    template = compile_template("key ${params.token} for ${user.email}", where="w", roots=ROOTS)
    rendered = template.render_text(BINDINGS)
    assert masked(rendered) == "key *** for ann@example.com"
    assert reveal(rendered) == f"key {TOKEN} for ann@example.com"


def test_a_lone_secret_in_a_json_template_stays_a_marked_leaf() -> None:
    body = compile_json(
        {"user": "${user.email}", "token": "${params.token}", "all": "${params}"},
        where="w",
        roots=ROOTS,
    )
    rendered = body.render(BINDINGS)
    assert masked(rendered) == {
        "user": "ann@example.com",
        "token": "***",
        "all": {"token": "***", "corp": "acme"},
    }
    assert reveal(rendered)["token"] == TOKEN


def test_an_object_with_a_key_computed_from_a_secret_is_masked_whole() -> None:
    body = compile_json({"${params.token}": "x", "a": "b"}, where="w", roots=ROOTS)
    rendered = body.render(BINDINGS)
    assert masked(rendered) == MASK
    assert reveal(rendered) == {TOKEN: "x", "a": "b"}


@pytest.mark.parametrize(
    "text",
    [
        "user.email.replaceAll(params.token, '')",
        "user.email.replaceAll('a', params.token)",
        "params.token.substring(99)",
        "params.token[99]",
        "params.token.split('-').get(9)",
    ],
)
def test_a_failure_on_a_secret_does_not_quote_it(text: str) -> None:
    bindings = {**BINDINGS, "params": {"token": Secret("tok(se$cret")}}
    with pytest.raises(EvaluationError) as caught:
        compile_expression(text, where="w", roots=ROOTS).evaluate(bindings)
    assert "se$cret" not in str(caught.value)
    assert "tok(" not in str(caught.value)
    assert "computed from a secret" in caught.value.reason


def test_a_secret_cannot_be_tested_for_truth_by_mistake() -> None:
    with pytest.raises(TypeError):
        bool(Secret("x"))
