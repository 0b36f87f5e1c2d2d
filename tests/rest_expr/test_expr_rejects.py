"""What the language refuses at compile time, with where, column and reason, and sandbox escapes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sigsci_iga.connectors.rest import expressions, templates
from sigsci_iga.connectors.rest.expressions import (
    EvaluationError,
    TemplateError,
    compile_expression,
)
from sigsci_iga.connectors.rest.templates import compile_template

ROOTS = frozenset({"user", "account", "headers", "response", "entitlementValue", "request"})
WHERE = "pkg.yaml: provisioning.create_account.calls[0].url"


def refuse(text: str) -> TemplateError:
    """Compile and return the TemplateError (failing the test if it compiles)."""
    with pytest.raises(TemplateError) as caught:
        compile_expression(text, where=WHERE, roots=ROOTS)
    return caught.value


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        # statements
        ("user.email; user.name", 11, "statements are not allowed (`;`)"),
        ("return user.email; return 1", 18, "statements are not allowed (`;`)"),
        ("user.email + return", 14, "statements are not allowed (`return`)"),
        ("if (user.x) user.y", 1, "statements are not allowed (`if`)"),
        ("user.a ? 1 : 2 else 3", 16, "statements are not allowed (`else`)"),
        ("for (x in user.tags) x", 1, "statements are not allowed (`for`)"),
        ("while (true) 1", 1, "statements are not allowed (`while`)"),
        ("switch (user.x) 1", 1, "statements are not allowed (`switch`)"),
        ("try user.x", 1, "statements are not allowed (`try`)"),
        ("{ user.x }", 1, "blocks and closures"),
        ("user.x = 1", 8, "assignment (`=`) is not allowed"),
        ("user.x += 1", 8, "compound assignment"),
        ("String[] r = user.x.split('/')", 1, "local declarations"),
        ("String r", 1, "local declarations"),
        ("def x", 1, "statements are not allowed (`def`)"),
        # object creation and class access
        ("new java.io.File('/etc/passwd')", 1, "object creation (`new`)"),
        ("java.lang.Runtime.getRuntime()", 1, "fully qualified class names (`java.`)"),
        ("javax.script.ScriptEngineManager", 1, "fully qualified class names (`javax.`)"),
        ("groovy.util.Eval.me('1')", 1, "fully qualified class names (`groovy.`)"),
        ("com.fasterxml.jackson.databind.ObjectMapper", 1, "fully qualified class names (`com.`)"),
        ("org.codehaus.groovy.runtime.InvokerHelper", 1, "fully qualified class names (`org.`)"),
        ("user.class", 6, "class and reflection access (`.class`)"),
        ("user.email.getClass()", 12, "class and reflection access (`.getClass`)"),
        ("System.getenv('HOME')", 1, "class and reflection access (`System`)"),
        ("Runtime.getRuntime()", 1, "class and reflection access (`Runtime`)"),
        ("Thread.sleep(1000)", 1, "class and reflection access (`Thread`)"),
        ("Class.forName('x')", 1, "class and reflection access (`Class`)"),
        ("Eval.me('1')", 1, "class and reflection access (`Eval`)"),
        ("evaluate('1')", 1, "class and reflection access (`evaluate`)"),
        ("'id'.execute()", 6, "class and reflection access (`.execute`)"),
        ("Math.max(1, 2)", 6, "Math.max() is not allowed"),
        ("Math.PI", 1, "static access (Math.PI)"),
        ("Math", 1, "Math is only available as Math.addExact(a, b)"),
        ("Math?.addExact(1, 2)", 7, "Math.addExact() is not allowed"),
        ("Math.addExact(1)", 6, "Math.addExact() takes 2 arguments"),
        ("Integer.parseInt('1')", 1, "static access (Integer.parseInt())"),
        ("String.valueOf(1)", 1, "static access (String.valueOf())"),
        ("user.__class__", 6, "names starting with `__` are refused"),
        ("user['__globals__']", 6, "keys starting with `__` are refused"),
        ("user.get('__dict__')", 10, "keys starting with `__` are refused"),
        ("this.class", 1, "class and reflection access (`this`)"),
        # Groovy-only operators
        ("user.tags.collect { it -> it }", 19, "blocks and closures"),
        ("x -> x", 3, "closures and lambdas (`->`)"),
        ("user.tags*.trim()", 10, "the spread operator `*.`"),
        ("user.email.&trim", 11, "method pointers (`.&`)"),
        ("user.email =~ 'a'", 12, "regex operators"),
        ("user.email ==~ 'a'", 12, "regex operators"),
        ("user.email as String", 12, "`as` casts"),
        ("user.x instanceof String", 8, "`instanceof` is not supported"),
        ("1..3", 2, "ranges (`..`)"),
        ("user.age / 2", 10, "division"),
        ("user.age % 2", 10, "modulo"),
        ("user.a & user.b", 8, "bitwise operators"),
        ("@Grab('x')", 1, "annotations"),
        ('"hi $user"', 1, "Groovy interpolation"),
        # methods outside the whitelist
        ("user.items()", 6, "method items() is not allowed"),
        ("user.email.format()", 12, "method format() is not allowed"),
        ("user.trim(1)", 6, "trim() takes 0 argument(s), got 1"),
        ("user.email.replaceAll('(a)\\\\1', '')", 27, "backreference"),
        ("user.email.replaceAll('" + "a" * 101 + "', '')", 23, "limited to 100 characters"),
        ("user.email.replaceAll('(', '')", 24, "invalid regex"),
        ("user.email.replaceAll('(a)', '$2')", 23, "refers to group 2"),
        ("__import__('os')", 1, "names starting with `__` are refused"),
        ("getattr(user, 'x')", 1, "function calls like getattr(...) are not allowed"),
        # lexical errors
        ("'abc", 1, "unbalanced quote"),
        ("user.x == 'abc", 11, "unbalanced quote"),
        ('"abc', 1, "unbalanced quote"),
        ("headers?.X-Current-Page", 10, "headers['X-Current-Page']"),
        ("response.headers.x-total-count", 18, "response.headers['x-total-count']"),
        ("Math.addExact(headers?.X-Current-Page, 1)", 24, "headers['X-Current-Page']"),
        ("${user.email}", 1, "`$` is not allowed inside an expression"),
        ("'\\q'", 2, "unknown escape \\q"),
        ("010", 1, "leading zero"),
        ("99999999999999999999", 1, "does not fit in 64 bits"),
        ("", 1, "empty expression"),
        ("user.", 6, "ends too early"),
        ("user.email user.name", 12, "unexpected name 'user'"),
        ("user.x ? : 1", 10, "unexpected ':'"),
        ("return ;", 1, "`return` without a value"),
        ("(" * 70 + "1" + ")" * 70, 65, "brackets nest deeper than 64"),
        ("!" * 70 + "true", 65, "nests deeper than 64"),
        ("user" + ".a" * 1100, 1, "longer than 2000 characters"),
    ],
)
def test_refused_forms_name_where_column_and_reason(text: str, column: int, reason: str) -> None:
    error = refuse(text)
    assert error.where == WHERE
    assert error.text == text
    assert reason in error.reason
    assert error.column == column
    assert str(error).startswith(f"{WHERE}: ")


def test_the_hyphen_error_suggests_the_index_form_for_the_whole_chain() -> None:
    error = refuse("response?.completeResponseMap.headers.X-Total-Count")
    assert "response?.completeResponseMap.headers['X-Total-Count']" in error.reason
    assert "response?.completeResponseMap.headers?.get('X-Total-Count')" in error.reason
    after_call = refuse("user.email.trim().X-Y")
    assert "user.email.trim()['X-Y']" in after_call.reason


def test_spaced_subtraction_is_still_arithmetic() -> None:
    expression = compile_expression("user.a - user.b", where=WHERE, roots=ROOTS)
    assert expression.evaluate({"user": {"a": 5, "b": 2}}) == 3


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("usr.email", "did you mean 'user'?"),
        ("User.email", "did you mean 'user'?"),
        ("acount.accountID", "did you mean 'account'?"),
        ("entitlementvalue.entitlementID", "did you mean 'entitlementValue'?"),
        ("responce?.x", "did you mean 'response'?"),
    ],
)
def test_an_unknown_root_is_refused_with_a_did_you_mean_hint(text: str, suggestion: str) -> None:
    error = refuse(text)
    assert error.reason.startswith(f"unknown name {text.split('.', maxsplit=1)[0].rstrip('?')!r}")
    assert suggestion in error.reason
    assert error.column == 1


def test_an_unknown_root_without_a_close_match_lists_the_known_names() -> None:
    error = refuse("zzz")
    assert (
        "known names: account, entitlementValue, headers, request, response, user" in error.reason
    )


def test_columns_in_a_template_count_from_the_start_of_the_template() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("https://h/${user.email}/x/${usr.id}", where=WHERE, roots=ROOTS)
    assert caught.value.column == 29
    assert caught.value.text == "https://h/${user.email}/x/${usr.id}"
    with pytest.raises(TemplateError) as caught:
        compile_template("  ${  return user.x;; }", where=WHERE, roots=ROOTS)
    assert caught.value.column == 20
    assert "(`;`)" in caught.value.reason


def test_an_unterminated_template_expression_is_refused_with_the_open_quote() -> None:
    text = "${response?.objectList?.size()>0?'https://h/users//'+Math.addExact(headers?.X-Current-Page,1)+':null}"
    with pytest.raises(TemplateError) as caught:
        compile_template(text, where=WHERE, roots=ROOTS)
    assert caught.value.column == 1
    assert "unterminated `${`: the quote at column" in caught.value.reason
    with pytest.raises(TemplateError, match="no matching"):
        compile_template("${user.email", where=WHERE, roots=ROOTS)


# Payloads from Jinja2 / Groovy / SSTI cheat sheets. Each must be refused when compiled.
DANGEROUS = [
    "''.__class__.__mro__[1].__subclasses__()",
    "user.__class__",
    "user['__class__']",
    'user["__class__"]',
    "\"\".getClass().forName('java.lang.Runtime')",
    "Runtime.getRuntime().exec('id')",
    "new java.io.File('/etc/passwd')",
    "this.class.classLoader",
    "user.class.classLoader",
    "user.metaClass",
    "System.getenv()",
    "System.exit(0)",
    "Eval.me('1')",
    "'id'.execute()",
    '"id".execute()',
    "['id'].execute()",
    "{-> 1}()",
    "[1,2]*.toString()",
    "x.&toString",
    "'a' =~ /a/",
    "@groovy.transform.ASTTest(value={ assert true })",
    "${user.email}",
    "${${user.email}}",
    "lambda: __import__('os').system('id')",
    "__import__('os')",
    "user.email.__len__()",
    "cycler.__init__.__globals__",
    "request.application.__globals__.__builtins__",
    "self._TemplateReference__context",
    "lipsum.__globals__['os'].popen('id')",
    "config.items()",
    "user.get('__globals__')",
    "user.invokeMethod('execute', null)",
    "user.getProperty('class')",
    "Class.forName('java.lang.Runtime')",
    "groovy.lang.GroovyShell().evaluate('1')",
    "{{7*7}}",
    "user.email.toString().getClass()",
    "this.binding.variables",
    "Thread.currentThread()",
    "evaluate('\"id\".execute()')",
]


@pytest.mark.parametrize("payload", DANGEROUS)
def test_sandbox_escape_payloads_are_refused_at_compile_time(payload: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_expression(payload, where=WHERE, roots=ROOTS)
    assert caught.value.reason
    assert caught.value.where == WHERE


@pytest.mark.parametrize("payload", DANGEROUS)
def test_sandbox_escape_payloads_are_refused_inside_templates_too(payload: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(f"x ${{{payload}}} y", where=WHERE, roots=ROOTS)


class Spy:
    """A Python object that records every attribute lookup that reaches it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.seen.append(name)
        raise AttributeError(name)


@pytest.mark.parametrize(
    "text",
    [
        "user.email",
        "user?.email",
        "user['email']",
        "user.get('email')",
        "user.toString()",
        "user.size()",
    ],
)
def test_harmless_forms_never_touch_attributes_of_a_python_object(text: str) -> None:
    spy = Spy()
    expression = compile_expression(text, where=WHERE, roots=ROOTS)
    with pytest.raises(EvaluationError):
        expression.evaluate({"user": spy})
    assert spy.seen == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${7*7}", 49),
        ("#{7*7}", "#{7*7}"),
        ("{{7*7}}", "{{7*7}}"),
        ("<%= 7*7 %>", "<%= 7*7 %>"),
        ("${user['class']}", "only a key"),
        ("${user.properties}", "also a key"),
    ],
)
def test_syntactically_harmless_payloads_evaluate_as_plain_data(
    template: str, expected: Any
) -> None:
    bindings = {"user": {"class": "only a key", "properties": "also a key"}}
    assert compile_template(template, where=WHERE, roots=ROOTS).render(bindings) == expected


def test_string_repetition_is_refused_so_a_package_cannot_build_huge_strings() -> None:
    with pytest.raises(EvaluationError, match="cannot apply"):
        compile_expression("'a' * 1000000000", where=WHERE, roots=ROOTS).evaluate({})


def test_the_engine_source_has_no_dynamic_evaluation_or_attribute_lookup() -> None:
    for module in (expressions, templates):
        source = Path(str(module.__file__)).read_text(encoding="utf-8")
        found = re.findall(r"(?<![\w.])(eval|exec|getattr|setattr|__import__|compile)\(", source)
        assert found == [], f"{module.__name__} uses {found}"
