"""Every operation that can grow a value is capped: text length and list length are bounded."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from sigsci_iga.connectors.rest import expressions
from sigsci_iga.connectors.rest.expressions import EvaluationError, compile_expression
from sigsci_iga.connectors.rest.templates import compile_json, compile_template

ROOTS = frozenset({"user"})
WHERE = "pkg.yaml: provisioning.update_account[0].body.note"
MIB = 1024 * 1024


def value(text: str, bindings: dict[str, Any]) -> Any:
    return compile_expression(text, where=WHERE, roots=ROOTS).evaluate(bindings)


def test_the_limits_are_module_constants_of_a_mebibyte_of_text_and_a_bounded_list() -> None:
    assert expressions.MAX_TEXT_LENGTH == MIB
    assert expressions.MAX_LIST_LENGTH == 100_000


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("user.x.replace('a', user.x)", {"x": "a" * 2000}),
        ("user.x.replace('', user.x)", {"x": "a" * 2000}),
        ("user.x.replaceAll('a', user.x)", {"x": "a" * 2000}),
        ("user.x.replaceAll('', user.x)", {"x": "a" * 2000}),
        ("user.many.join(user.x)", {"many": ["a"] * 1000, "x": "b" * 2000}),
        ("user.big + user.big", {"big": "a" * 600_000}),
        ("user.big + 1", {"big": "a" * MIB}),
        ("user.lig.toUpperCase()", {"lig": "\ufb03" * 400_000}),
        ("user.many.toString()", {"many": ["a" * 1000] * 1100}),
        ("'' + user.many", {"many": ["a" * 1000] * 1100}),
    ],
)
def test_text_beyond_the_limit_is_an_evaluation_error_naming_the_limit(
    text: str, user: dict[str, Any]
) -> None:
    with pytest.raises(EvaluationError) as caught:
        value(text, {"user": user})
    assert "limit MAX_TEXT_LENGTH" in caught.value.reason
    assert str(MIB) in caught.value.reason
    assert str(caught.value).startswith(f"{WHERE}: ")


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("user.list + user.list", {"list": [0] * 60_000}),
        ("user.csv.split(',')", {"csv": ",".join(["a"] * 150_000)}),
        ("user.csv.split()", {"csv": " ".join(["a"] * 150_000)}),
    ],
)
def test_lists_beyond_the_limit_are_an_evaluation_error_naming_the_limit(
    text: str, user: dict[str, Any]
) -> None:
    with pytest.raises(EvaluationError, match="limit MAX_LIST_LENGTH"):
        value(text, {"user": user})


@pytest.mark.timeout(30)
def test_a_replacement_that_would_be_huge_is_refused_before_it_is_built() -> None:
    # 200 copies of a mebibyte: refused from the sizes alone, without ever allocating them.
    bindings = {"user": {"x": "a" * 200, "y": "b" * MIB}}
    tracemalloc.start()
    try:
        for text in ("user.x.replace('a', user.y)", "user.x.replaceAll('a', user.y)"):
            with pytest.raises(EvaluationError, match="limit MAX_TEXT_LENGTH"):
                value(text, bindings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MIB


def test_values_just_under_the_limits_are_fine() -> None:
    assert len(value("user.a + user.a", {"user": {"a": "a" * (MIB // 2)}})) == MIB
    assert len(value("user.l + user.l", {"user": {"l": [1] * 50_000}})) == 100_000


def test_a_template_whose_parts_add_up_beyond_the_limit_is_refused() -> None:
    template = compile_template("${user.big}-${user.big}", where=WHERE, roots=ROOTS)
    with pytest.raises(EvaluationError, match="limit MAX_TEXT_LENGTH") as caught:
        template.render({"user": {"big": "a" * 600_000}})
    assert caught.value.where == WHERE


def test_a_json_template_whose_leaves_add_up_beyond_the_limit_is_refused() -> None:
    body = compile_json(
        {"a": "${user.big}", "b": ["${user.big}", "${user.big}"]},
        where="pkg.yaml: provisioning.update_account[0].body",
        roots=ROOTS,
    )
    with pytest.raises(EvaluationError, match="limit MAX_TEXT_LENGTH") as caught:
        body.render({"user": {"big": "a" * 400_000}})
    assert caught.value.where.startswith("pkg.yaml: provisioning.update_account[0].body")


@pytest.mark.timeout(30)
def test_growing_operations_nested_to_the_depth_limit_stop_at_the_first_cap() -> None:
    # The language has no loops, so an expression's steps are bounded by its size and nesting;
    # what one step can build is what the caps bound.
    text = "user.x"
    for _ in range(30):
        text = f"user.x.replace('', {text})"
    tracemalloc.start()
    try:
        with pytest.raises(EvaluationError, match="limit MAX_TEXT_LENGTH"):
            value(text, {"user": {"x": "ab"}})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Stopped at the first step past the cap: nothing near 2**30 copies was ever built.
    assert peak < 20 * MIB


@pytest.mark.parametrize(
    ("text", "nested"),
    [
        ("user.deep.toString()", "list"),
        ("user.deep == user.deep", "list"),
        ("user.deep", "list"),
        ("'' + user.deep", "dict"),
    ],
)
def test_bindings_nested_too_deeply_are_an_evaluation_error_not_a_recursion_error(
    text: str, nested: str
) -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep] if nested == "list" else {"a": deep}
    with pytest.raises(EvaluationError, match="nests too deeply"):
        value(text, {"user": {"deep": deep}})
