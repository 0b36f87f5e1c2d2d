"""Templates (`${...}` in strings) and JSON templates: typed values, keys, escapes, no injection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sigsci_iga.connectors.rest.expressions import EvaluationError, TemplateError
from sigsci_iga.connectors.rest.templates import (
    JsonTemplate,
    Template,
    compile_json,
    compile_template,
    find_expressions,
)

ROOTS = frozenset({"user", "account", "entitlementValue", "access_token", "response"})
WHERE = "pkg.yaml: provisioning.create_account.calls[0]"
USER: dict[str, Any] = {
    "email": "ada@example.com",
    "name": "Ada",
    "role": "admin",
    "age": 36,
    "active": True,
    "middlename": None,
    "sites": ["a", "b"],
    "profile": {"lang": "en"},
}


def render(text: str, bindings: dict[str, Any] | None = None) -> Any:
    """Compile a template with the test roots and render it with the test user."""
    template = compile_template(text, where=WHERE, roots=ROOTS)
    return template.render({"user": USER} if bindings is None else bindings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${user.email}", "ada@example.com"),
        ("${user.age}", 36),
        ("${user.active}", True),
        ("${user.middlename}", None),
        ("${user.sites}", ["a", "b"]),
        ("${user.profile}", {"lang": "en"}),
    ],
)
def test_a_template_that_is_one_expression_renders_the_raw_value(text: str, expected: Any) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://h/users/${user.email}/invite", "https://h/users/ada@example.com/invite"),
        (" ${user.age}", " 36"),
        ("${user.age}${user.active}", "36true"),
        ("m=${user.middlename}.", "m=."),
        ("sites=${user.sites}", 'sites=["a","b"]'),
        ("p=${user.profile}", 'p={"lang":"en"}'),
        ("no expressions at all", "no expressions at all"),
        ("", ""),
        ("cost: $5 and $$ and $ {x}", "cost: $5 and $$ and $ {x}"),
    ],
)
def test_a_mixed_template_renders_text_with_null_as_empty(text: str, expected: str) -> None:
    assert render(text) == expected


def test_double_dollar_brace_is_a_literal_dollar_brace() -> None:
    template = compile_template("literal $${user.email} and ${user.name}", where=WHERE, roots=ROOTS)
    assert template.render({"user": USER}) == "literal ${user.email} and Ada"
    assert template.roots() == frozenset({"user"})
    assert find_expressions("literal $${user.email} and ${user.name}") == ["user.name"]
    assert compile_template("$${x}", where=WHERE, roots=ROOTS).render({}) == "${x}"


def test_constant_templates_report_it_and_render_without_bindings() -> None:
    constant = compile_template("https://h/a", where=WHERE, roots=ROOTS)
    assert constant.is_constant
    assert constant.roots() == frozenset()
    assert constant.render({}) == "https://h/a"
    assert not compile_template("${1 + 1}", where=WHERE, roots=ROOTS).is_constant


def test_render_text_always_gives_a_string() -> None:
    template = compile_template("${user.age}", where=WHERE, roots=ROOTS)
    assert isinstance(template, Template)
    assert template.render_text({"user": USER}) == "36"
    assert (
        compile_template("${user.middlename}", where=WHERE, roots=ROOTS).render_text({"user": USER})
        == ""
    )


def test_find_expressions_balances_braces_and_skips_quoted_ones() -> None:
    text = "a ${x} b ${y ? '}' : \"{\"} c ${m.get('k}')} ${ {-> 1} }"
    assert find_expressions(text) == ["x", "y ? '}' : \"{\"", "m.get('k}')", " {-> 1} "]
    assert find_expressions("no templates") == []


def test_find_expressions_refuses_an_unterminated_expression() -> None:
    with pytest.raises(TemplateError) as caught:
        find_expressions("ok ${x} then ${y + 'never closed}", where="w")
    assert caught.value.column == 14
    assert caught.value.where == "w"
    assert "quote at column 20 is never closed" in caught.value.reason


def test_evaluation_errors_name_where_and_the_expression() -> None:
    template = compile_template("/users/${account.accountID}", where=WHERE, roots=ROOTS)
    with pytest.raises(EvaluationError) as caught:
        template.render({})
    assert caught.value.where == WHERE
    assert caught.value.text == "account.accountID"


BODY: dict[str, Any] = {
    "role": "${user.role}",
    "age": "${user.age}",
    "active": "${user.active}",
    "middle": "${user.middlename}",
    "label": "${user.name} (${user.email})",
    "memberships": {"data": [{"site": {"name": "${entitlementValue.entitlementID}"}}]},
    "${user.role}_since": "2024",
    "$${literal}": "$${kept}",
    "constant": [1, 2.5, True, None, "text"],
}


def test_a_json_template_keeps_types_and_renders_keys() -> None:
    template = compile_json(BODY, where=WHERE + ".body", roots=ROOTS)
    assert isinstance(template, JsonTemplate)
    rendered = template.render({"user": USER, "entitlementValue": {"entitlementID": "www"}})
    assert rendered == {
        "role": "admin",
        "age": 36,
        "active": True,
        "middle": None,
        "label": "Ada (ada@example.com)",
        "memberships": {"data": [{"site": {"name": "www"}}]},
        "admin_since": "2024",
        "${literal}": "${kept}",
        "constant": [1, 2.5, True, None, "text"],
    }
    assert template.roots() == frozenset({"user", "entitlementValue"})
    assert not template.is_constant
    assert compile_json({"a": [1, "x"]}, where=WHERE, roots=ROOTS).is_constant


def test_rendering_twice_gives_independent_values() -> None:
    template = compile_json({"list": [1], "sites": "${user.sites}"}, where=WHERE, roots=ROOTS)
    first = template.render({"user": USER})
    first["list"].append(2)
    first["sites"].append("c")
    assert template.render({"user": USER}) == {"list": [1], "sites": ["a", "b"]}
    assert USER["sites"] == ["a", "b"]


HOSTILE_VALUES = [
    'Ada "The Admin", "role": "owner',
    'Ada}}, {"role": "owner"',
    "${user.role}",
    "${access_token}",
    'back\\slash \\" \\u0000',
    "$${x} and {{7*7}} and #{7*7}",
    "line\nbreak\ttab",
    "' + access_token + '",
]


@pytest.mark.parametrize("hostile", HOSTILE_VALUES)
def test_values_that_look_like_json_or_templates_are_inserted_verbatim(hostile: str) -> None:
    template = compile_json(
        {"name": "${user.name}", "label": "Name: ${user.name}!", "${user.name}": "key"},
        where=WHERE,
        roots=ROOTS,
    )
    bindings = {"user": {**USER, "name": hostile}, "access_token": "SECRET"}
    rendered = template.render(bindings)
    assert rendered == {"name": hostile, "label": f"Name: {hostile}!", hostile: "key"}
    text = json.dumps(rendered)
    assert json.loads(text) == rendered
    assert "SECRET" not in text


def test_a_rendered_value_is_never_compiled_again() -> None:
    template = compile_template("${user.name}", where=WHERE, roots=ROOTS)
    assert template.render({"user": {"name": "${user.secret}", "secret": "S"}}) == "${user.secret}"


def test_compile_errors_in_json_name_the_json_path() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_json(
            {"memberships": {"data": [{"site": {"name": "${usr.x}"}}]}},
            where="pkg.yaml: provisioning.create_account.calls[0].body",
            roots=ROOTS,
        )
    assert caught.value.where == (
        "pkg.yaml: provisioning.create_account.calls[0].body.memberships.data[0].site.name"
    )
    assert caught.value.column == 3
    assert "did you mean 'user'?" in caught.value.reason


def test_compile_errors_in_keys_and_odd_keys_name_their_path() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_json({"a": {"${user.x;}": 1}}, where="w", roots=ROOTS)
    assert caught.value.where == 'w.a["${user.x;}"] (key)'
    with pytest.raises(TemplateError) as caught:
        compile_json({"urn:x:2.0:User": {"k": "${nope}"}}, where="w", roots=ROOTS)
    assert caught.value.where == 'w["urn:x:2.0:User"].k'


def test_non_json_input_is_refused_at_compile_time() -> None:
    with pytest.raises(TemplateError, match="not a JSON value"):
        compile_json({"a": {1, 2}}, where="w", roots=ROOTS)
    with pytest.raises(TemplateError, match="keys must be strings"):
        compile_json({1: "a"}, where="w", roots=ROOTS)
    with pytest.raises(TemplateError, match="finite"):
        compile_json([float("nan")], where="w", roots=ROOTS)


def test_two_keys_rendering_the_same_name_are_an_error_not_a_silent_overwrite() -> None:
    template = compile_json({"${user.role}": 1, "admin": 2}, where="w", roots=ROOTS)
    with pytest.raises(EvaluationError, match="two keys render to the same name 'admin'"):
        template.render({"user": USER})


def test_a_key_rendering_a_non_string_reads_as_text() -> None:
    template = compile_json({"${user.age}": "${user.active}"}, where="w", roots=ROOTS)
    assert template.render({"user": USER}) == {"36": True}
