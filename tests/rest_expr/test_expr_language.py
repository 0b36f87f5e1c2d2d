"""The accepted expression language: every form, with values, and its Groovy-like semantics."""

from __future__ import annotations

import pickle
import re
from typing import Any

import pytest

from sigsci_iga.connectors.rest.expressions import (
    EvaluationError,
    Expression,
    TemplateError,
    compile_expression,
    to_text,
)

ROOTS = frozenset({"user", "account", "response", "headers", "entitlementValue", "access_token"})

BINDINGS: dict[str, Any] = {
    "user": {
        "email": "Ada@Example.com",
        "firstname": "Ada",
        "middlename": None,
        "age": 36,
        "score": 1.5,
        "active": True,
        "tags": ["admin", "ops", "dev"],
        "empty": "",
        "none_list": [],
        "manager": None,
        "X-Team": "blue",
        "nested": {"deep": {"value": 7}},
        "padded": "  spaced out \t",
        "path": "accounts/123/properties/456",
    },
    "headers": {"Link": '<https://x/p2>; rel="next"', "X-Current-Page": "3"},
    "response": {"completeResponseMap": {"nextUri": "/page 2", "total": 40}, "objectList": [1, 2]},
    "access_token": "Bearer abc",
}


def value(text: str, bindings: dict[str, Any] | None = None) -> Any:
    """Compile with the test roots and evaluate against BINDINGS (or the given bindings)."""
    return compile_expression(text, where="t", roots=ROOTS).evaluate(
        BINDINGS if bindings is None else bindings
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.email", "Ada@Example.com"),
        ("access_token", "Bearer abc"),
        ("user?.email", "Ada@Example.com"),
        ("user.nested.deep.value", 7),
        ("user['email']", "Ada@Example.com"),
        ('user["X-Team"]', "blue"),
        ("user.tags[0]", "admin"),
        ("user.tags[1+1]", "dev"),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'tab\\there'", "tab\there"),
        ("'\\u00e9'", "é"),
        ("'a' + 'b'", "ab"),
        ("42", 42),
        ("-7", -7),
        ("2.5", 2.5),
        ("1.5e3", 1500.0),
        ("null", None),
        ("true", True),
        ("false", False),
        ("(1 + 2) * 3", 9),
        ("1 + 2 * 3", 7),
        ("10 - 4 - 3", 3),
        ("user.age + 1", 37),
        ("user.score + 1", 2.5),
        ("'n=' + user.age", "n=36"),
        ("user.age + '!'", "36!"),
        ("'x' + user.active", "xtrue"),
        ("'x' + user.tags", 'x["admin","ops","dev"]'),
    ],
)
def test_each_accepted_form_evaluates_to_its_value(text: str, expected: Any) -> None:
    assert value(text) == expected


def test_string_plus_null_concatenates_nothing_not_the_text_null() -> None:
    assert value("'id=' + user.middlename") == "id="
    assert value("user.middlename + '!'") == "!"


def test_two_lists_add_up_to_their_concatenation() -> None:
    assert value("user.tags + user.none_list") == ["admin", "ops", "dev"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.age == 36", True),
        ("user.age != 36", False),
        ("'1' == 1", False),
        ("'1' != 1", True),
        ("1 == 1.0", True),
        ("true == 1", False),
        ("null == null", True),
        ("user.middlename == null", True),
        ("user.email == null", False),
        ("user.tags == user.tags", True),
        ("user.nested == user.nested", True),
        ("user.age < 40", True),
        ("user.age > 40", False),
        ("user.age <= 36", True),
        ("user.age >= 37", False),
        ("'abc' < 'abd'", True),
        ("null > 0", False),
        ("null < 0", True),
        ("false < true", True),
        ("response?.objectList?.size() > 0", True),
        ("user?.missing?.size() > 0", False),
    ],
)
def test_comparisons_follow_groovy_value_semantics(text: str, expected: bool) -> None:
    assert value(text) is expected


@pytest.mark.parametrize("text", ["user.age < 'a'", "user.tags > 1", "user.active < 1"])
def test_ordering_values_of_different_kinds_is_an_evaluation_error(text: str) -> None:
    with pytest.raises(EvaluationError, match="cannot compare"):
        value(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.active && user.age > 30", True),
        ("user.active && user.empty", False),
        ("user.empty || user.tags", True),
        ("!user.active", False),
        ("!user.empty", True),
        ("!user.none_list", True),
        ("!0", True),
        ("!!user.email", True),
    ],
)
def test_logic_uses_groovy_truth_and_returns_booleans(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_logic_short_circuits_so_the_right_side_may_be_invalid() -> None:
    assert value("user.manager != null && user.manager.email == 'x'") is False
    assert value("user.manager == null || user.manager.email == 'x'") is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.middlename == null ? '' : user.middlename", ""),
        ("user.firstname == null ? '' : user.firstname", "Ada"),
        ("(user.age > 30) ? 'senior' : 'junior'", "senior"),
        ("user.age > 40 ? 'a' : user.age > 30 ? 'b' : 'c'", "b"),
        ("user.active ? user.age > 3 ? 'x' : 'y' : 'z'", "x"),
        (
            "response?.completeResponseMap?.nextUri == null ? null : "
            "'https://h' + response.completeResponseMap.nextUri.replaceAll(' ', '+')",
            "https://h/page+2",
        ),
    ],
)
def test_the_ternary_picks_a_branch_by_groovy_truth(text: str, expected: Any) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.middlename ?: 'n/a'", "n/a"),
        ("user.empty ?: 'n/a'", "n/a"),
        ("user.none_list ?: 'n/a'", "n/a"),
        ("user.firstname ?: 'n/a'", "Ada"),
        ("user?.manager?.email ?: user.email", "Ada@Example.com"),
        ("user.middlename ?: user.manager ?: 'last'", "last"),
    ],
)
def test_elvis_defaults_null_and_empty_values(text: str, expected: Any) -> None:
    assert value(text) == expected


def test_elvis_follows_groovy_truth_for_zero_and_false_too() -> None:
    assert value("0 ?: 5") == 5
    assert value("false ?: 'x'") == "x"


def test_null_safe_navigation_gives_null_where_plain_navigation_raises() -> None:
    assert value("user?.manager?.email") is None
    assert value("user.manager?.email") is None
    assert value("user.manager?.email?.trim()") is None
    assert value("user.manager?.trim()") is None
    with pytest.raises(EvaluationError) as caught:
        value("user.manager.email")
    assert caught.value.reason.startswith("'user.manager' is null")
    assert caught.value.where == "t"
    assert caught.value.text == "user.manager.email"


def test_calling_a_method_on_null_without_safe_navigation_raises_naming_the_path() -> None:
    with pytest.raises(EvaluationError, match=r"'user\.middlename' is null, so calling \.trim\(\)"):
        value("user.middlename.trim()")


def test_indexing_null_raises_and_get_is_the_null_safe_spelling() -> None:
    with pytest.raises(EvaluationError, match=r"'user\.manager' is null"):
        value("user.manager[0]")
    assert value("user.manager?.get(0)") is None


def test_a_missing_key_is_null_like_a_groovy_map() -> None:
    assert value("user.nope") is None
    assert value("user['nope']") is None
    assert value("user.get('nope')") is None


def test_a_declared_root_missing_from_the_bindings_is_null() -> None:
    assert value("account?.accountID", {}) is None
    with pytest.raises(EvaluationError, match="'account' is null"):
        value("account.accountID", {})


def test_list_index_out_of_range_is_null_and_negative_counts_from_the_end() -> None:
    assert value("user.tags[9]") is None
    assert value("user.tags[-1]") == "dev"
    assert value("user.tags[-9]") is None
    with pytest.raises(EvaluationError, match="out of range"):
        value("user.tags.get(9)")


def test_strings_index_by_character_and_refuse_out_of_range() -> None:
    assert value("user.firstname[0]") == "A"
    with pytest.raises(EvaluationError, match="out of range"):
        value("user.firstname[9]")


def test_reading_a_property_of_a_non_object_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="is a list, not an object"):
        value("user.tags.name")
    with pytest.raises(EvaluationError, match="is a string, not an object"):
        value("user.email.length")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user.path.split('/')", ["accounts", "123", "properties", "456"]),
        ("user.path.split('/')[3]", "456"),
        ("'a,b,,'.split(',')", ["a", "b"]),
        ("''.split(',')", [""]),
        ("'a1b22c'.split('[0-9]+')", ["a", "b", "c"]),
        ("' a  b '.split()", ["a", "b"]),
        ("user.email.replace('@', ' at ')", "Ada at Example.com"),
        ("'a.b.c'.replace('.', '')", "abc"),
        ("'2024-01-02'.replaceAll('(\\\\d+)-(\\\\d+)-(\\\\d+)', '$3/$2/$1')", "02/01/2024"),
        ("'a b'.replaceAll(' ', '\\\\$')", "a$b"),
        ("user.padded.trim()", "spaced out"),
        ("user.email.toLowerCase()", "ada@example.com"),
        ("user.email.toUpperCase()", "ADA@EXAMPLE.COM"),
        ("user.email.contains('@')", True),
        ("user.tags.contains('ops')", True),
        ("user.tags.contains('nope')", False),
        ("user.firstname.equals('Ada')", True),
        ("user.age.equals(36)", True),
        ("user.age.equals(36.0)", False),
        ("user.firstname.equalsIgnoreCase('ADA')", True),
        ("user.email.startsWith('Ada')", True),
        ("user.email.endsWith('.org')", False),
        ("user.tags.size()", 3),
        ("user.nested.size()", 1),
        ("user.email.size()", 15),
        ("user.email.length()", 15),
        ("user.empty.isEmpty()", True),
        ("user.tags.isEmpty()", False),
        ("user.email.substring(4)", "Example.com"),
        ("user.email.substring(0, 3)", "Ada"),
        ("user.email.indexOf('@')", 3),
        ("user.tags.indexOf('dev')", 2),
        ("user.tags.indexOf('x')", -1),
        ("user.age.toString()", "36"),
        ("user.active.toString()", "true"),
        ("user.nested.toString()", '{"deep":{"value":7}}'),
        ("user.nested.get('deep').get('value')", 7),
        ("user.tags.get(1)", "ops"),
        ("user.tags.join(', ')", "admin, ops, dev"),
        ("user.tags.join()", "adminopsdev"),
        ("user?.email?.split('@')[1]?.toLowerCase()", "example.com"),
    ],
)
def test_whitelisted_methods_behave_like_their_groovy_counterparts(
    text: str, expected: Any
) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("user.email.substring(20)", "out of range"),
        ("user.tags.trim()", "needs a string receiver"),
        ("user.age.contains('3')", "works on strings and lists"),
        ("user.email.startsWith(3)", "needs a string argument"),
        ("user.tags.length()", "use size()"),
        ("user.email.join(',')", "works on lists"),
        ("user.email * 3", "cannot apply * to a string and an integer"),
        ("-user.email", "cannot negate"),
        ("user.email.replaceAll(user.empty + '(a', 'b')", "invalid regex"),
        ("user.email.replaceAll(user.empty + '(a)\\\\1', 'b')", "backreference"),
    ],
)
def test_methods_on_the_wrong_kind_of_value_raise_evaluation_errors(text: str, reason: str) -> None:
    with pytest.raises(EvaluationError, match=re.escape(reason)):
        value(text)


def test_header_links_parse_with_the_leanix_pagination_expression() -> None:
    expression = (
        "headers?.Link?.split(',')?.size()==4?headers?.Link?.split(',')[2]?.replace('<', '')"
        "?.replace('>;rel=\"next\"','')?.trim():headers?.Link?.split(',')?.size()==3&&"
        "headers?.Link?.split(',')[1]?.contains('next')?headers?.Link?.split(',')[1]"
        "?.replace('<', '')?.replace('>;rel=\"next\"','')?.trim():null"
    )
    three = {"headers": {"Link": '<a>;rel="prev",<https://h/p3>;rel="next",<z>;rel="last"'}}
    assert value(expression, three) == "https://h/p3"
    assert value(expression, {"headers": {}}) is None


def test_math_add_exact_adds_integers_and_refuses_overflow_and_text() -> None:
    assert value("Math.addExact(user.age, 1)") == 37
    assert value("'p=' + Math.addExact(2, 3)") == "p=5"
    with pytest.raises(EvaluationError, match="integer overflow"):
        value("Math.addExact(9223372036854775807, 1)")
    with pytest.raises(EvaluationError, match="needs integers"):
        value("Math.addExact(headers['X-Current-Page'], 1)")


def test_integer_arithmetic_beyond_64_bits_is_refused() -> None:
    with pytest.raises(EvaluationError, match="integer overflow"):
        value("9223372036854775807 + 1")


@pytest.mark.parametrize(
    "text",
    ["return user.email;", "  return user.email ;  ", "return user.email", "return (user.email);"],
)
def test_a_lone_return_is_rewritten_to_its_value(text: str) -> None:
    expression = compile_expression(text, where="t", roots=ROOTS)
    assert expression.evaluate(BINDINGS) == "Ada@Example.com"
    assert expression.source == text


def test_a_return_with_a_string_holding_a_semicolon_keeps_the_string() -> None:
    assert value("return 'a;b';") == "a;b"


def test_roots_lists_the_binding_roots_an_expression_reads() -> None:
    expression = compile_expression(
        "user.email + (account?.name ?: '') + Math.addExact(1, 2)", where="t", roots=ROOTS
    )
    assert expression.roots() == frozenset({"user", "account"})


def test_evaluate_returns_a_plain_copy_not_the_bindings_own_objects() -> None:
    bindings = {"user": {"tags": ["a"]}}
    result = value("user.tags", bindings)
    result.append("b")
    assert bindings["user"]["tags"] == ["a"]


def test_non_json_values_in_the_bindings_are_refused_when_they_reach_the_result() -> None:
    with pytest.raises(EvaluationError, match="not JSON"):
        value("user.when", {"user": {"when": object()}})


def test_expressions_compare_by_source_and_tree_and_pickle_their_errors() -> None:
    first = compile_expression("user.email", where="a", roots=ROOTS)
    second = compile_expression("user.email", where="b", roots=ROOTS)
    assert first == second
    assert isinstance(first, Expression)
    error = TemplateError(where="w", text="x", reason="r", column=2)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - round-trips our own object
    assert (copy.where, copy.text, copy.reason, copy.column) == ("w", "x", "r", 2)
    evaluation = pickle.loads(pickle.dumps(EvaluationError(where="w", text="x", reason="r")))  # noqa: S301 - round-trips our own object
    assert evaluation.reason == "r"


def test_to_text_renders_null_as_empty_and_containers_as_json() -> None:
    assert to_text(None) == ""
    assert to_text(True) == "true"
    assert to_text(1.0) == "1.0"
    assert to_text({"a": [1, None]}) == '{"a":[1,null]}'
    with pytest.raises(ValueError, match="not JSON"):
        to_text({1, 2})


def test_huge_numbers_from_the_bindings_fail_as_evaluation_errors() -> None:
    with pytest.raises(EvaluationError, match="too large"):
        value("user.big * 1.5", {"user": {"big": 2**1100}})


def test_a_name_that_starts_with_return_is_not_the_return_keyword() -> None:
    expression = compile_expression("returnCode", where="t", roots={"returnCode"})
    assert expression.evaluate({"returnCode": 3}) == 3
