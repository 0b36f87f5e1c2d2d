"""The sandboxed `${...}` binding-expression language: a lark grammar, our own AST, a tree-walking interpreter.

The language is the Groovy/Java subset Saviynt packages use, so translating a package is mostly
identity. Values are JSON-like (None, bool, int, float, str, list, dict) and the only navigation is a
dict key or list index lookup; nothing names a Python attribute, so a package cannot reach Python
internals. Everything else (statements, `new`, closures, reflection, static calls other than
`Math.addExact`) is refused at compile time with a `TemplateError`.

Semantics, where Groovy leaves a choice:
- `a.b` on null raises `EvaluationError` naming `a` (a Groovy NPE); `a?.b` gives null. The same holds
  for method calls (`a.trim()` / `a?.trim()`) and for indexing (`a[0]` on null is an error; there is
  no null-safe index, write `a?.get(0)`).
- A missing dict key gives null (Groovy map semantics). A root declared at compile time but absent
  from the bindings is also null.
- `list[i]` out of range gives null and a negative index counts from the end (Groovy `getAt`);
  `list.get(i)` out of range is an error (Java `List.get`). `'abc'[9]` is an error.
- `==`/`!=` compare values: `'1' == 1` is false, `1 == 1.0` is true, `true == 1` is false; values of
  different kinds are simply unequal. `<`, `>`, `<=`, `>=` order numbers, strings and booleans; null
  sorts before everything (Groovy), so `null > 0` is false; any other mix raises `EvaluationError`.
- Truth (for `!`, `&&`, `||`, `?:` and the ternary condition) is Groovy truth: null, false, 0, '' and
  empty lists/maps are false. Elvis `a ?: b` therefore gives `b` for those values too.
- `+` concatenates when either side is a string (null concatenates as '', not Groovy's 'null'),
  adds numbers, and joins two lists; `-` and `*` are numeric only. Integer results beyond 64 bits
  raise `EvaluationError` (Java would wrap silently).
- Text form (`toString()`, `+`, `join`, templates): null is '', booleans are `true`/`false`, lists
  and maps are compact JSON (Groovy would print `[a:1]`, which no API accepts).
- `return <expr>;` alone (the `#CONST#` idiom) is rewritten to `<expr>`; the `;` is optional.
- Regexes (`split`, `replaceAll`) run on RE2, in time linear in their input; the Java constructs RE2
  lacks (backreferences, lookaround, ...) are refused.

Limits: an expression is at most MAX_EXPRESSION_LENGTH characters and nests at most MAX_NESTING
deep, and the language has no loops, so evaluation takes a bounded number of steps. Whatever an
operation produces is capped: text at MAX_TEXT_LENGTH characters, lists at MAX_LIST_LENGTH items
(`+`, `replace`, `replaceAll`, `join`, `split`, `toString`, case changes, templates); sizes are
checked before a large value is built where they can be known in advance.

The parser is built lazily on first use and cached; importing this module does no work.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import re2
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from sigsci_iga.connectors.rest.taint import (
    MASK,
    Secret,
    join_texts,
    masked,
    reveal,
    tainted,
)
from sigsci_iga.errors import InvalidInputError

__all__ = [
    "EvaluationError",
    "Expression",
    "TemplateError",
    "classify_expression",
    "compile_expression",
    "to_text",
]

# Limits that keep a hostile package from costing more than a hostile request would.
MAX_EXPRESSION_LENGTH: Final = 2000
MAX_NESTING: Final = 64
MAX_PATTERN_LENGTH: Final = 100
MAX_REGEX_SUBJECT: Final = 100_000
#: The most text (in characters) and the longest list one operation or template may produce.
MAX_TEXT_LENGTH: Final = 1024 * 1024
MAX_LIST_LENGTH: Final = 100_000
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


# --------------------------------------------------------------------------------------- errors


def _excerpt(text: str, column: int | None, width: int = 120) -> str:
    """The text, or a window of it around the column when it is long."""
    if len(text) <= width:
        return repr(text)
    center = (column or 1) - 1
    start = max(0, min(center - width // 2, len(text) - width))
    head = "..." if start > 0 else ""
    tail = "..." if start + width < len(text) else ""
    return f"{head}{text[start : start + width]!r}{tail}"


class TemplateError(InvalidInputError):
    """A template or expression refused at load time: where it is, the text, the column and why."""

    def __init__(self, *, where: str, text: str, reason: str, column: int | None = None) -> None:
        self.where = where
        self.text = text
        self.reason = reason
        #: 1-based character offset into `text` (line breaks count as one character), if known.
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        at = f" at column {self.column}" if self.column is not None else ""
        return f"{prefix}{self.reason}{at} in {_excerpt(self.text, self.column)}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__ needs help to survive pickling (e.g. across processes).
        return (
            _rebuild_template_error,
            (type(self), self.where, self.text, self.reason, self.column),
        )


def _rebuild_template_error(
    cls: type[TemplateError], where: str, text: str, reason: str, column: int | None
) -> TemplateError:
    return cls(where=where, text=text, reason=reason, column=column)


class EvaluationError(InvalidInputError):
    """An expression failed while rendering (a null in a non-null-safe path, a type mismatch)."""

    def __init__(self, *, where: str, text: str, reason: str) -> None:
        self.where = where
        self.text = text
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{self.reason} in {_excerpt(self.text, None)}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_evaluation_error, (type(self), self.where, self.text, self.reason))


def _rebuild_evaluation_error(
    cls: type[EvaluationError], where: str, text: str, reason: str
) -> EvaluationError:
    return cls(where=where, text=text, reason=reason)


class _Fail(Exception):
    """A runtime failure without context; the evaluator adds where and text.

    `position` is an index into the offending literal (a regex pattern), when known. `reveals`
    marks a reason that quotes the values it failed on, so it must not be shown for a secret.
    """

    def __init__(self, reason: str, *, position: int | None = None, reveals: bool = False) -> None:
        self.reason = reason
        self.position = position
        self.reveals = reveals
        super().__init__(reason)


# -------------------------------------------------------------------------------------- grammar

# Operators of Groovy and Java we refuse, each lexed as its own token so the error can say why.
# Longer operators win over their prefixes because lark orders string terminals by length.
_FORBIDDEN_OPERATORS: Final[dict[str, str]] = {
    ";": "statements are not allowed (`;`): write one expression",
    "=": "assignment (`=`) is not allowed",
    "==~": "regex operators (`=~`, `==~`) are not allowed; use replaceAll() or contains()",
    "=~": "regex operators (`=~`, `==~`) are not allowed; use replaceAll() or contains()",
    "{": "blocks and closures (`{...}`) are not allowed",
    "}": "blocks and closures (`{...}`) are not allowed",
    "->": "closures and lambdas (`->`) are not allowed",
    "*.": "the spread operator `*.` is not allowed",
    ".&": "method pointers (`.&`) are not allowed",
    ".@": "direct field access (`.@`) is not allowed",
    "::": "method references (`::`) are not allowed",
    "@": "annotations (`@`) are not allowed",
    "..": "ranges (`..`) are not allowed",
    "++": "increment and decrement (`++`, `--`) are not allowed",
    "--": "increment and decrement (`++`, `--`) are not allowed",
    "+=": "compound assignment is not allowed",
    "-=": "compound assignment is not allowed",
    "*=": "compound assignment is not allowed",
    "/=": "compound assignment is not allowed",
    "**": "the power operator `**` is not supported",
    "<=>": "the comparison operator `<=>` is not supported",
    "<<": "shift operators are not supported",
    ">>": "shift operators are not supported",
    "/": "division and slashy regex strings (`/`) are not supported",
    "%": "the modulo operator `%` is not supported",
    "&": "bitwise operators are not supported; use `&&`",
    "|": "bitwise operators are not supported; use `||`",
    "^": "bitwise operators are not supported",
    "~": "bitwise operators are not supported",
    "$": "`$` is not allowed inside an expression (a nested `${...}`?)",
    "#": "`#` is not allowed inside an expression",
    "`": "backticks are not allowed inside an expression",
    "\\": "a backslash is only allowed inside a string literal",
}
_FORBIDDEN_TERMINALS: Final[dict[str, str]] = {
    f"FORBIDDEN_{index}": op for index, op in enumerate(_FORBIDDEN_OPERATORS)
}

_GRAMMAR_RULES: Final = r"""
?start: expr

?expr: or_expr
     | or_expr QMARK expr COLON expr   -> ternary
     | or_expr ELVIS expr              -> elvis

?or_expr: and_expr
        | or_expr OR and_expr          -> logic
?and_expr: eq_expr
         | and_expr AND eq_expr        -> logic
?eq_expr: rel_expr
        | eq_expr (EQ | NE) rel_expr   -> compare
?rel_expr: add_expr
         | rel_expr (LT | GT | LE | GE) add_expr -> compare
?add_expr: mul_expr
         | add_expr (PLUS | MINUS) mul_expr -> arith
?mul_expr: unary
         | mul_expr STAR unary         -> arith
?unary: postfix
      | BANG unary                     -> not_
      | MINUS unary                    -> neg
?postfix: atom
        | postfix (DOT | SAFE_DOT) NAME                      -> member
        | postfix (DOT | SAFE_DOT) NAME LPAR [args] RPAR     -> method
        | postfix LSQB expr RSQB                             -> index
args: expr (COMMA expr)*
?atom: NAME                            -> var
     | STRING                          -> string
     | INT                             -> integer
     | FLOAT                           -> number
     | NULL                            -> literal
     | TRUE                            -> literal
     | FALSE                           -> literal
     | LPAR expr RPAR                  -> group
     | forbidden

QMARK: "?"
ELVIS: "?:"
SAFE_DOT: "?."
DOT: "."
COLON: ":"
OR: "||"
AND: "&&"
EQ: "=="
NE: "!="
LE: "<="
GE: ">="
LT: "<"
GT: ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
BANG: "!"
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
COMMA: ","
NULL: "null"
TRUE: "true"
FALSE: "false"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /'(?:[^'\\]|\\.)*'/s | /"(?:[^"\\]|\\.)*"/s
FLOAT: /[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?/
INT: /[0-9]+/
%ignore /[ \t\r\n\f]+/
"""


def _grammar() -> str:
    # The refused operators are real terminals (used by a rule no valid input reaches after the
    # token check) so the lexer produces them instead of failing on their first character.
    names = sorted(_FORBIDDEN_TERMINALS)
    terminals = "\n".join(f"{name}: {json.dumps(_FORBIDDEN_TERMINALS[name])}" for name in names)
    return f"{_GRAMMAR_RULES}\nforbidden: {' | '.join(names)}\n{terminals}\n"


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser, built on first use."""
    return Lark(
        _grammar(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=False,
    )


# ------------------------------------------------------------------------------------------ AST


@dataclass(frozen=True, slots=True)
class _Node:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Literal(_Node):
    value: Any


@dataclass(frozen=True, slots=True)
class _Var(_Node):
    name: str


@dataclass(frozen=True, slots=True)
class _Member(_Node):
    target: _Node
    name: str
    safe: bool


@dataclass(frozen=True, slots=True)
class _Index(_Node):
    target: _Node
    key: _Node


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    target: _Node
    name: str
    args: tuple[_Node, ...]
    safe: bool


@dataclass(frozen=True, slots=True)
class _AddExact(_Node):
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Unary(_Node):
    op: str
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Ternary(_Node):
    condition: _Node
    then: _Node
    otherwise: _Node


@dataclass(frozen=True, slots=True)
class _Elvis(_Node):
    value: _Node
    default: _Node


# ------------------------------------------------------------------------------- value helpers


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return "not a JSON value"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _plain(value: Any) -> Any:
    """A copy of a JSON-like value as plain dict/list/scalars (Secrets kept); else refused."""
    if value is None or isinstance(value, bool | str | Secret):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Fail("the result is not a finite number")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Fail(f"an object key is {_kind(key)}, not a string")
            out[key] = _plain(item)
        return out
    if _is_list(value):
        return [_plain(item) for item in value]
    raise _Fail("a value is not JSON (null, boolean, number, string, list or object)")


def _check_text(what: str, length: int) -> None:
    if length > MAX_TEXT_LENGTH:
        raise _Fail(
            f"{what} would be longer than {MAX_TEXT_LENGTH} characters (limit MAX_TEXT_LENGTH)"
        )


def _check_list(what: str, length: int) -> None:
    if length > MAX_LIST_LENGTH:
        raise _Fail(f"{what} would hold more than {MAX_LIST_LENGTH} items (limit MAX_LIST_LENGTH)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    _check_text("the text of a list or object", len(text))
    return text


def to_text(value: Any) -> str:
    """How a value reads inside a string: null is '', booleans `true`/`false`, containers JSON."""
    try:
        return _text(value)
    except _Fail as exc:
        raise ValueError(exc.reason) from None


def _truth(value: Any) -> bool:
    """Groovy truth: null, false, 0, '' and empty lists and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return bool(value != 0)
    if isinstance(value, str | Mapping | list | tuple):
        return len(value) > 0
    raise _Fail(f"cannot use {_kind(value)} as a condition")


def _equal(left: Any, right: Any) -> bool:
    """Groovy value equality without Python's `True == 1`."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if _is_list(left) and _is_list(right):
        return len(left) == len(right) and all(
            _equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return set(left.keys()) == set(right.keys()) and all(
            _equal(left[k], right[k]) for k in left
        )
    return False


def _ordered(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        # Groovy sorts null before every value, so `null > 0` is false rather than an error.
        a: Any = 0 if left is None else 1
        b: Any = 0 if right is None else 1
    elif (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
        or (isinstance(left, bool) and isinstance(right, bool))
    ):
        a, b = left, right
    else:
        raise _Fail(f"cannot compare {_kind(left)} with {_kind(right)} using {op}")
    if op == "<":
        return bool(a < b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    return bool(a >= b)


def _checked_number(value: int | float) -> int | float:
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise _Fail("integer overflow (the result does not fit in 64 bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Fail("the result is not a finite number")
    return value


# ---------------------------------------------------------------------------------------- regex

# Patterns run on RE2, whose matching time is linear in the subject whatever the pattern, so no
# pattern can backtrack catastrophically. RE2 lacks the Java features that need backtracking;
# those are refused by name (with their place in the pattern) rather than by RE2's terse error.
_JAVA_ONLY_ESCAPES: Final[dict[str, str]] = {
    "G": "end-of-previous-match anchor (\\G)",
    "Z": "end-of-input-before-newline anchor (\\Z; write \\z or $)",
    "R": "linebreak matcher (\\R)",
    "X": "grapheme cluster matcher (\\X)",
    "h": "horizontal whitespace class (\\h)",
    "H": "non-horizontal-whitespace class (\\H)",
    "v": "vertical whitespace class (\\v means a vertical tab in RE2)",
    "V": "non-vertical-whitespace class (\\V)",
    "C": "single-byte matcher (\\C)",
}
_JAVA_ONLY_GROUPS: Final = (
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?>", "atomic group"),
)


_Construct = tuple[int, str, str]


def _java_only_escape(pattern: str, index: int, *, in_class: bool) -> _Construct | None:
    code = pattern[index + 1 : index + 2]
    if code and code in "123456789" and not in_class:
        return index, "backreference", pattern[index : index + 2]
    if code == "k" and not in_class:
        return index, "named backreference", pattern[index : index + 3]
    if code in _JAVA_ONLY_ESCAPES:
        return index, _JAVA_ONLY_ESCAPES[code], pattern[index : index + 2]
    return None


def _java_only_outside_class(pattern: str, index: int) -> _Construct | None:
    for opener, what in _JAVA_ONLY_GROUPS:
        if pattern.startswith(opener, index):
            return index, what, opener
    flags = re.match(r"\(\?([A-Za-z-]*)[):]", pattern[index:])
    if flags and "U" in flags.group(1):
        # RE2 reads (?U) as "ungreedy"; Java as "Unicode classes": the same text, two meanings.
        return index, "flag U (Unicode classes in Java, ungreedy in RE2)", flags.group(0)
    if pattern[index] in "*+?}" and pattern.startswith("+", index + 1):
        return index, "possessive quantifier", pattern[index : index + 2]
    return None


def _java_only(pattern: str) -> _Construct | None:
    """(index, what, text) of the first construct RE2 cannot run, or None."""
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        found: _Construct | None = None
        if char == "\\":
            if pattern.startswith("Q", index + 1):  # \Q...\E quotes everything up to \E
                close = pattern.find("\\E", index + 2)
                index = len(pattern) if close < 0 else close + 2
                continue
            found = _java_only_escape(pattern, index, in_class=in_class)
            index += 1  # and the escaped character below
        elif in_class:
            if pattern.startswith("&&", index):
                found = index, "character class intersection", "&&"
            elif char == "[":
                found = index, "nested character class (write \\[ for a bracket)", "["
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A `]` first in a class (after an optional `^`) is a literal bracket.
            index += 1 + pattern.startswith("^", index + 1)
            index += pattern.startswith("]", index)
            continue
        else:
            found = _java_only_outside_class(pattern, index)
        if found is not None:
            return found
        index += 1
    return None


@functools.lru_cache(maxsize=1)
def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on standard error
    return options


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re2._Regexp[str]:
    """A compiled pattern, after the guards; raises _Fail with the reason it was refused."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _Fail(f"regex patterns are limited to {MAX_PATTERN_LENGTH} characters")
    found = _java_only(pattern)
    if found is not None:
        index, what, text = found
        raise _Fail(
            f"the regex {pattern!r} uses a {what} ({text!r} at character {index + 1} of the "
            "pattern), which RE2, the linear-time engine packages run on, does not support",
            position=index,
            reveals=True,
        )
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        detail = str(detail)
        # RE2 ends its message with the offending fragment: locate it in the pattern.
        fragment = detail.rpartition(": ")[2]
        index = pattern.find(fragment) if fragment else -1
        where = f" at character {index + 1} of the pattern" if index >= 0 else ""
        raise _Fail(
            f"invalid regex {pattern!r} for RE2, the linear-time engine: {detail}{where}",
            position=index if index >= 0 else None,
            reveals=True,
        ) from None


def _guard_subject(subject: str) -> None:
    if len(subject) > MAX_REGEX_SUBJECT:
        raise _Fail(f"regex input longer than {MAX_REGEX_SUBJECT} characters is refused")


def _replacement(text: str, pattern: re2._Regexp[str]) -> tuple[tuple[bool, str | int], ...]:
    """A Java replacement string (`$1`, `${name}`, `\\$`) as (is_group, literal-or-group) pieces."""
    pieces: list[tuple[bool, str | int]] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                raise _Fail("a replacement cannot end with a backslash")
            literal.append(text[index + 1])
            index += 2
            continue
        if char != "$":
            literal.append(char)
            index += 1
            continue
        if literal:
            pieces.append((False, "".join(literal)))
            literal = []
        if text.startswith("${", index):
            close = text.find("}", index)
            name = text[index + 2 : close] if close > 0 else ""
            if not name or name not in pattern.groupindex:
                raise _Fail(f"the replacement names an unknown group in {text!r}", reveals=True)
            pieces.append((True, name))
            index = close + 1
            continue
        digits = index + 1
        if digits >= len(text) or not text[digits].isdigit():
            raise _Fail(
                f"illegal group reference in the replacement {text!r} (write \\$ for $)",
                reveals=True,
            )
        # Java reads the first digit, then more while the number stays a valid group.
        number = int(text[digits])
        digits += 1
        while digits < len(text) and text[digits].isdigit():
            longer = number * 10 + int(text[digits])
            if longer > pattern.groups:
                break
            number = longer
            digits += 1
        if number > pattern.groups:
            raise _Fail(
                f"the replacement refers to group {number}, the pattern has {pattern.groups}",
                reveals=True,
            )
        pieces.append((True, number))
        index = digits
    if literal:
        pieces.append((False, "".join(literal)))
    return tuple(pieces)


# -------------------------------------------------------------------------------------- methods


def _need_str(name: str, value: Any, what: str = "argument") -> str:
    if not isinstance(value, str):
        raise _Fail(f"{name}() needs a string {what}, got {_kind(value)}")
    return value


def _need_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Fail(f"{name}() needs an integer argument, got {_kind(value)}")
    return value


def _literal_split(pattern: str) -> bool:
    """Java splits on a single ordinary character without the regex engine."""
    return len(pattern) == 1 and pattern not in ".$|()[{^?*+\\"


def _m_split(recv: Any, args: Sequence[Any]) -> Any:
    subject = _need_str("split", recv, "receiver")
    separator = _need_str("split", args[0]) if args else None
    if separator is not None and subject == "":
        return [""]
    if separator is None or _literal_split(separator):
        # Without an argument Groovy splits on whitespace; one ordinary character splits literally.
        # One split more than the limit allows tells that the limit is exceeded.
        parts = subject.split(separator, MAX_LIST_LENGTH)
        _check_list("split()", len(parts))
    else:
        regex = _regex(separator)
        _guard_subject(subject)
        parts, last = [], 0
        for match in regex.finditer(subject):
            if match.end() == 0:
                continue  # Java drops the empty piece a zero-width match at the start would make.
            parts.append(subject[last : match.start()])
            _check_list("split()", len(parts) + 1)
            last = match.end()
        parts.append(subject[last:])
    while parts and parts[-1] == "":
        parts.pop()  # Java's split drops trailing empty strings.
    return parts


def _m_replace(recv: Any, args: Sequence[Any]) -> Any:
    subject = _need_str("replace", recv, "receiver")
    old, new = _need_str("replace", args[0]), _need_str("replace", args[1])
    # The size is known from the count of matches, so a huge result is refused unbuilt.
    count = len(subject) + 1 if old == "" else subject.count(old)
    _check_text("replace()", len(subject) + count * (len(new) - len(old)))
    return subject.replace(old, new)


def _m_replace_all(recv: Any, args: Sequence[Any]) -> Any:
    subject = _need_str("replaceAll", recv, "receiver")
    pattern = _regex(_need_str("replaceAll", args[0]))
    pieces = _replacement(_need_str("replaceAll", args[1]), pattern)
    _guard_subject(subject)
    out: list[str] = []
    length = last = 0
    # Matches come as Java finds them: an empty match right after a match still counts.
    for match in pattern.finditer(subject):
        start, end = match.span()
        expansion = "".join(
            (match.group(value) or "") if group else str(value) for group, value in pieces
        )
        length += start - last + len(expansion)
        _check_text("replaceAll()", length)
        out += (subject[last:start], expansion)
        last = end
    out.append(subject[last:])
    _check_text("replaceAll()", length + len(subject) - last)
    return "".join(out)


# Java's trim() removes every character up to and including the space.
_TRIMMED: Final = "".join(chr(code) for code in range(33))


def _m_trim(recv: Any, args: Sequence[Any]) -> Any:
    return _need_str("trim", recv, "receiver").strip(_TRIMMED)


def _m_lower(recv: Any, args: Sequence[Any]) -> Any:
    # Case changes can grow text (up to three characters for one), so they are checked too.
    lowered = _need_str("toLowerCase", recv, "receiver").lower()
    _check_text("toLowerCase()", len(lowered))
    return lowered


def _m_upper(recv: Any, args: Sequence[Any]) -> Any:
    upper = _need_str("toUpperCase", recv, "receiver").upper()
    _check_text("toUpperCase()", len(upper))
    return upper


def _m_contains(recv: Any, args: Sequence[Any]) -> Any:
    if isinstance(recv, str):
        return _need_str("contains", args[0]) in recv
    if _is_list(recv):
        return any(_equal(item, args[0]) for item in recv)
    raise _Fail(f"contains() works on strings and lists, not {_kind(recv)}")


def _m_equals(recv: Any, args: Sequence[Any]) -> Any:
    other = args[0]
    # Java equals() is type-strict: Integer 1 does not equal Double 1.0.
    if _is_number(recv) and _is_number(other) and type(recv) is not type(other):
        return False
    return _equal(recv, other)


def _m_equals_ignore_case(recv: Any, args: Sequence[Any]) -> Any:
    subject = _need_str("equalsIgnoreCase", recv, "receiver")
    other = args[0]
    return isinstance(other, str) and subject.casefold() == other.casefold()


def _m_starts_with(recv: Any, args: Sequence[Any]) -> Any:
    return _need_str("startsWith", recv, "receiver").startswith(_need_str("startsWith", args[0]))


def _m_ends_with(recv: Any, args: Sequence[Any]) -> Any:
    return _need_str("endsWith", recv, "receiver").endswith(_need_str("endsWith", args[0]))


def _m_size(recv: Any, args: Sequence[Any]) -> Any:
    if isinstance(recv, str | Mapping) or _is_list(recv):
        return len(recv)
    raise _Fail(f"size() works on strings, lists and objects, not {_kind(recv)}")


def _m_length(recv: Any, args: Sequence[Any]) -> Any:
    if isinstance(recv, str):
        return len(recv)
    raise _Fail(f"length() works on strings, not {_kind(recv)} (use size())")


def _m_is_empty(recv: Any, args: Sequence[Any]) -> Any:
    if isinstance(recv, str | Mapping) or _is_list(recv):
        return len(recv) == 0
    raise _Fail(f"isEmpty() works on strings, lists and objects, not {_kind(recv)}")


def _m_substring(recv: Any, args: Sequence[Any]) -> Any:
    subject = _need_str("substring", recv, "receiver")
    begin = _need_int("substring", args[0])
    end = _need_int("substring", args[1]) if len(args) > 1 else len(subject)
    if not 0 <= begin <= end <= len(subject):
        raise _Fail(
            f"substring({begin}, {end}) is out of range for a string of {len(subject)}",
            reveals=True,
        )
    return subject[begin:end]


def _m_index_of(recv: Any, args: Sequence[Any]) -> Any:
    if isinstance(recv, str):
        return recv.find(_need_str("indexOf", args[0]))
    if _is_list(recv):
        return next((i for i, item in enumerate(recv) if _equal(item, args[0])), -1)
    raise _Fail(f"indexOf() works on strings and lists, not {_kind(recv)}")


def _m_to_string(recv: Any, args: Sequence[Any]) -> Any:
    return _text(recv)


def _m_get(recv: Any, args: Sequence[Any]) -> Any:
    key = args[0]
    if isinstance(recv, Mapping):
        return recv.get(key) if isinstance(key, str) else None
    if _is_list(recv):
        index = _need_int("get", key)
        if not 0 <= index < len(recv):
            raise _Fail(f"get({index}) is out of range for a list of {len(recv)}", reveals=True)
        return recv[index]
    raise _Fail(f"get() works on objects and lists, not {_kind(recv)}")


def _m_join(recv: Any, args: Sequence[Any]) -> Any:
    if not _is_list(recv):
        raise _Fail(f"join() works on lists, not {_kind(recv)}")
    separator = _need_str("join", args[0]) if args else ""
    pieces: list[str] = []
    length = 0
    for item in recv:
        pieces.append(_text(item))
        length += len(pieces[-1]) + (len(separator) if len(pieces) > 1 else 0)
        _check_text("join()", length)
    return separator.join(pieces)


_Method = Callable[[Any, Sequence[Any]], Any]

#: The whitelist: method name -> (accepted argument counts, implementation).
_METHODS: Final[dict[str, tuple[frozenset[int], _Method]]] = {
    "split": (frozenset({0, 1}), _m_split),
    "replace": (frozenset({2}), _m_replace),
    "replaceAll": (frozenset({2}), _m_replace_all),
    "trim": (frozenset({0}), _m_trim),
    "toLowerCase": (frozenset({0}), _m_lower),
    "toUpperCase": (frozenset({0}), _m_upper),
    "contains": (frozenset({1}), _m_contains),
    "equals": (frozenset({1}), _m_equals),
    "equalsIgnoreCase": (frozenset({1}), _m_equals_ignore_case),
    "startsWith": (frozenset({1}), _m_starts_with),
    "endsWith": (frozenset({1}), _m_ends_with),
    "size": (frozenset({0}), _m_size),
    "length": (frozenset({0}), _m_length),
    "isEmpty": (frozenset({0}), _m_is_empty),
    "substring": (frozenset({1, 2}), _m_substring),
    "indexOf": (frozenset({1}), _m_index_of),
    "toString": (frozenset({0}), _m_to_string),
    "get": (frozenset({1}), _m_get),
    "join": (frozenset({0, 1}), _m_join),
}


# --------------------------------------------------------------------------------- interpreter


#: Methods whose result depends on a container's shape, not on the values inside it: they keep
#: the marks of the values they return instead of marking their whole result.
_STRUCTURAL: Final = frozenset({"size", "isEmpty", "get"})


def _open(value: Any) -> tuple[Any, bool]:
    """(the value inside, whether it was a Secret)."""
    if isinstance(value, Secret):
        return value.value, True
    return value, False


def _seal(value: Any, hidden: bool) -> Any:
    """The value, marked secret when it was computed from one."""
    return Secret(value) if hidden else value


def _text_of(value: Any) -> str | Secret:
    """Text form of a value that may hold secrets: a Secret showing only its non-secret parts."""
    if not tainted(value):
        return _text(value)
    return Secret(_text(reveal(value)), _text(masked(value)))


def _combine(op: str, left: Any, right: Any) -> Any:
    """A binary operator other than `&&`, `||` and text `+`, on plain values."""
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in ("<", ">", "<=", ">="):
        return _ordered(op, left, right)
    if op == "+" and _is_list(left) and _is_list(right):
        _check_list("+", len(left) + len(right))
        return [*left, *right]
    if _is_number(left) and _is_number(right):
        result = left + right if op == "+" else left - right if op == "-" else left * right
        return _checked_number(result)
    raise _Fail(f"cannot apply {op} to {_kind(left)} and {_kind(right)}")


class _Evaluator:
    """Walks the AST over JSON-like bindings; every step is a dict or list lookup, never getattr.

    Values may be Secrets (taint.py) or hold them. Every step computes on the values inside and
    marks its result secret when an input was; a condition computed from a secret marks the
    value it chooses, so a branch cannot tell the secret either.
    """

    def __init__(self, code: str, bindings: Mapping[str, Any]) -> None:
        self.code = code
        self.bindings = bindings

    def src(self, node: _Node) -> str:
        return self.code[node.start : node.end]

    def null_step(self, node: _Node, step: str) -> NoReturn:
        raise _Fail(f"{self.src(node)!r} is null, so {step} fails (use ?. to allow null)")

    @staticmethod
    def guarded(hidden: bool, what: str, compute: Callable[[], Any]) -> Any:
        """Run a step; on a secret, a failure that would quote the values does not."""
        try:
            return compute()
        except _Fail as exc:
            if hidden and exc.reveals:
                raise _Fail(f"{what} failed on a value computed from a secret") from None
            raise

    def run(self, node: _Node) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Var):
            return self.bindings.get(node.name)
        if isinstance(node, _Member):
            return self.member(node)
        if isinstance(node, _Index):
            return self.index(node)
        if isinstance(node, _Call):
            return self.call(node)
        if isinstance(node, _AddExact):
            return self.add_exact(node)
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Ternary):
            condition, hidden = _open(self.run(node.condition))
            chosen = node.then if _truth(condition) else node.otherwise
            return _seal(self.run(chosen), hidden)
        if isinstance(node, _Elvis):
            value = self.run(node.value)
            inner, hidden = _open(value)
            return value if _truth(inner) else _seal(self.run(node.default), hidden)
        raise AssertionError(f"unknown node {type(node).__name__}")  # pragma: no cover

    def member(self, node: _Member) -> Any:
        target, hidden = _open(self.run(node.target))
        if target is None:
            if node.safe:
                return _seal(None, hidden)
            self.null_step(node.target, f"reading .{node.name}")
        if isinstance(target, Mapping):
            return _seal(target.get(node.name), hidden)
        hint = " (lists have no properties; use [index])" if _is_list(target) else ""
        raise _Fail(
            f"{self.src(node.target)!r} is {_kind(target)}, not an object, so .{node.name} fails{hint}"
        )

    def call(self, node: _Call) -> Any:
        original = self.run(node.target)
        target, hidden = _open(original)
        if target is None:
            if node.safe:
                return _seal(None, hidden)
            self.null_step(node.target, f"calling .{node.name}()")
        args = [self.run(arg) for arg in node.args]
        method = _METHODS[node.name][1]
        what = f"{node.name}()"
        if node.name in _STRUCTURAL:
            opened = [_open(arg) for arg in args]
            hidden = hidden or any(secret for _, secret in opened)
            values = [value for value, _ in opened]
            return _seal(self.guarded(hidden, what, lambda: method(target, values)), hidden)
        if not (hidden or tainted(target) or any(tainted(arg) for arg in args)):
            return method(target, args)
        plain_args = [reveal(arg) for arg in args]
        result = self.guarded(True, what, lambda: method(reveal(target), plain_args))
        shown = MASK
        if node.name == "toString":
            shown = _text(masked(original))
        elif node.name == "join" and not hidden:
            # Only the items (and separator) that are secrets are masked in what is shown.
            separator = _text(masked(args[0])) if args else ""
            shown = separator.join(_text(masked(item)) for item in target)
        return Secret(result, shown)

    def add_exact(self, node: _AddExact) -> Any:
        left, left_hidden = _open(self.run(node.left))
        right, right_hidden = _open(self.run(node.right))
        for value in (left, right):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _Fail(f"Math.addExact() needs integers, got {_kind(value)}")
        return _seal(_checked_number(left + right), left_hidden or right_hidden)

    def unary(self, node: _Unary) -> Any:
        value, hidden = _open(self.run(node.operand))
        if node.op == "!":
            return _seal(not _truth(value), hidden)
        if not _is_number(value):
            raise _Fail(f"cannot negate {_kind(value)}")
        return _seal(_checked_number(-value), hidden)

    def index(self, node: _Index) -> Any:
        target, hidden = _open(self.run(node.target))
        key, key_hidden = _open(self.run(node.key))
        hidden = hidden or key_hidden
        if target is None:
            self.null_step(node.target, f"indexing [{self.src(node.key)}]")
        return _seal(
            self.guarded(hidden, "indexing", lambda: self.lookup(node, target, key)), hidden
        )

    def lookup(self, node: _Index, target: Any, key: Any) -> Any:
        if isinstance(target, Mapping):
            return target.get(key) if isinstance(key, str) else None
        if _is_list(target) or isinstance(target, str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _Fail(
                    f"{self.src(node.target)!r} is {_kind(target)}; its index must be an integer, got {_kind(key)}"
                )
            position = key + len(target) if key < 0 else key
            if 0 <= position < len(target):
                return target[position]
            if isinstance(target, str):
                raise _Fail(
                    f"index {key} is out of range for a string of {len(target)}", reveals=True
                )
            return None
        raise _Fail(f"{self.src(node.target)!r} is {_kind(target)} and cannot be indexed")

    def binary(self, node: _Binary) -> Any:
        op = node.op
        if op in ("&&", "||"):
            left, hidden = _open(self.run(node.left))
            truth = _truth(left)
            if truth == (op == "||"):  # decided by the left side alone
                return _seal(truth, hidden)
            right, right_hidden = _open(self.run(node.right))
            return _seal(_truth(right), hidden or right_hidden)
        left, right = self.run(node.left), self.run(node.right)
        left_value, right_value = _open(left)[0], _open(right)[0]
        if op == "+" and (isinstance(left_value, str) or isinstance(right_value, str)):
            left_text, right_text = _text_of(left), _text_of(right)
            length = sum(
                len(text.value if isinstance(text, Secret) else text)
                for text in (left_text, right_text)
            )
            _check_text("+", length)
            return join_texts([left_text, right_text])
        if (
            op == "+"
            and _is_list(left)
            and _is_list(right)
            and not (isinstance(left, Secret) or isinstance(right, Secret))
        ):
            _check_list("+", len(left) + len(right))
            return [*left, *right]  # each item keeps its own mark
        hidden = tainted(left) or tainted(right)
        result = self.guarded(hidden, op, lambda: _combine(op, reveal(left), reveal(right)))
        return _seal(result, hidden)


# ---------------------------------------------------------------------------------- expression


@dataclass(frozen=True)
class Expression:
    """A compiled `${...}` body; evaluate it against JSON-like bindings."""

    source: str
    where: str = field(default="", compare=False)
    _code: str = field(default="", repr=False, compare=False)
    _node: _Node = field(default=_Literal(0, 0, None), repr=False)
    _roots: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def evaluate(self, bindings: Mapping[str, Any]) -> Any:
        """The value (a plain JSON copy); raises EvaluationError naming the failing path.

        A value computed from a secret comes back as a Secret (or holds Secrets, when the
        bindings' containers hold them): see taint.py for how it is sent and shown.
        """
        try:
            return _plain(_Evaluator(self._code, bindings).run(self._node))
        except _Fail as exc:
            raise EvaluationError(where=self.where, text=self.source, reason=exc.reason) from None
        except RecursionError:
            reason = "a value nests too deeply to evaluate"
            raise EvaluationError(where=self.where, text=self.source, reason=reason) from None
        except OverflowError:
            # Only reachable with huge integers supplied by the bindings, never from package text.
            reason = "a number is too large to use"
            raise EvaluationError(where=self.where, text=self.source, reason=reason) from None

    def render_text(self, bindings: Mapping[str, Any]) -> str | Secret:
        """The value as it reads inside a string (see `to_text`); a Secret if computed from one."""
        value = self.evaluate(bindings)
        try:
            return _text_of(value)
        except _Fail as exc:
            raise EvaluationError(where=self.where, text=self.source, reason=exc.reason) from None

    def roots(self) -> frozenset[str]:
        """The binding roots this expression reads."""
        return self._roots

    @property
    def variable(self) -> str | None:
        """The name, when the expression is nothing but a binding name."""
        return self._node.name if isinstance(self._node, _Var) else None


# ------------------------------------------------------------------------------------- compiler

_STATEMENT_KEYWORDS: Final = frozenset(
    {
        "if", "else", "for", "while", "do", "switch", "case", "default", "try", "catch",
        "finally", "throw", "return", "break", "continue", "def", "var", "assert", "import",
        "package", "class", "interface", "enum", "trait", "static", "final", "void",
        "synchronized", "goto", "yield",
    }
)  # fmt: skip
_OTHER_KEYWORDS: Final[dict[str, str]] = {
    "new": "object creation (`new`) is not allowed",
    "as": "`as` casts are not allowed",
    "in": "the `in` operator is not supported; use contains()",
    "instanceof": "`instanceof` is not supported",
    "this": "class and reflection access (`this`) is not allowed",
    "super": "class and reflection access (`super`) is not allowed",
    "lambda": "closures and lambdas are not allowed",
}
#: Class-level names refused wherever they stand as a root, even if a caller declared them.
_CLASS_NAMES: Final = frozenset(
    {
        "System", "Runtime", "Thread", "Class", "ClassLoader", "Eval", "GroovyShell",
        "GroovyClassLoader", "ProcessBuilder", "Process", "Object", "Binding", "MetaClass",
        "InvokerHelper", "evaluate", "execute", "getClass", "forName", "exec",
    }
)  # fmt: skip
_PACKAGE_PREFIXES: Final = frozenset({"java", "javax", "groovy", "com", "org", "sun", "jdk"})
#: Member names that reach classes, class loaders or code execution in Groovy.
_REFLECTION_MEMBERS: Final = frozenset(
    {
        "class", "metaClass", "getClass", "getMetaClass", "classLoader", "getClassLoader",
        "forName", "execute", "evaluate", "invokeMethod", "getProperty", "setProperty",
        "newInstance", "getRuntime", "exec", "declaredFields", "declaredMethods",
    }
)  # fmt: skip
_ESCAPES: Final[dict[str, str]] = {
    "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f",
    "\\": "\\", "'": "'", '"': '"', "$": "$", "/": "/",
}  # fmt: skip


class _Compiler:
    """Turns one expression body into an AST, refusing anything outside the language."""

    def __init__(self, *, where: str, text: str, offset: int, roots: Collection[str]) -> None:
        self.where = where
        self.text = text  # what error columns refer to (the expression, or its whole template)
        self.offset = offset  # where the code being compiled starts inside `text`
        self.roots = frozenset(roots)
        self.used: set[str] = set()
        #: Per string literal (by its start), where each decoded character is in the source.
        self.string_offsets: dict[int, list[int]] = {}

    def fail(self, reason: str, position: int | None) -> NoReturn:
        column = None if position is None else self.offset + position + 1
        raise TemplateError(where=self.where, text=self.text, reason=reason, column=column)

    def to_ast(self, code: str) -> _Node:
        if not code.strip():
            self.fail("empty expression", 0)
        if len(code) > MAX_EXPRESSION_LENGTH:
            self.fail(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 0)
        parser = _parser()
        try:
            tokens = list(parser.lex(code))
        except UnexpectedCharacters as exc:
            self.lexical_error(code, exc.pos_in_stream or 0)
        self.check_tokens(code, tokens)
        try:
            tree = parser.parse(code)
        except UnexpectedInput as exc:
            self.syntax_error(code, exc)
        if not isinstance(tree, Tree):  # pragma: no cover - start is a rule, never a bare token
            self.fail("not an expression", 0)
        self.check_depth(tree)
        return self.build(tree)

    def lexical_error(self, code: str, position: int) -> NoReturn:
        char = code[position]
        if char in "'\"":
            self.fail(f"unbalanced quote: this {char} is never closed", position)
        self.fail(f"unexpected character {char!r}", position)

    def syntax_error(self, code: str, exc: UnexpectedInput) -> NoReturn:
        if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
            token = exc.token
            position = token.start_pos if token.start_pos is not None else len(code)
            if token.type == "LPAR":
                self.fail(
                    "only whitelisted methods (x.trim()) and Math.addExact(a, b) can be called",
                    position,
                )
            if token.type == "NAME":
                self.fail(
                    f"unexpected name {token.value!r} (a missing operator or a declaration?)",
                    position,
                )
            self.fail(f"unexpected {token.value!r}", position)
        if isinstance(exc, UnexpectedToken | UnexpectedEOF):
            self.fail("the expression ends too early", len(code.rstrip()))
        self.fail("syntax error", None)  # pragma: no cover - lexing already succeeded

    def check_tokens(self, code: str, tokens: list[Token]) -> None:  # noqa: PLR0912 - one rule per refused form
        depth = 0
        for index, token in enumerate(tokens):
            position = token.start_pos or 0
            before = tokens[index - 1] if index else None
            after = tokens[index + 1] if index + 1 < len(tokens) else None
            if token.type in _FORBIDDEN_TERMINALS:
                self.fail(_FORBIDDEN_OPERATORS[_FORBIDDEN_TERMINALS[token.type]], position)
            if token.type in ("LPAR", "LSQB"):
                depth += 1
                if depth > MAX_NESTING:
                    self.fail(f"brackets nest deeper than {MAX_NESTING}", position)
            elif token.type in ("RPAR", "RSQB"):
                depth -= 1
            elif token.type == "STRING" and token.value.startswith('"') and "$" in token.value:
                # Groovy would interpolate `$x` here; we would not, so refuse rather than differ.
                self.fail(
                    "`$` inside a double-quoted string (Groovy interpolation) is not supported; use + or single quotes",
                    position,
                )
            if token.type != "NAME":
                continue
            name = str(token.value)
            if name.startswith("__"):
                self.fail(f"names starting with `__` are refused ({name!r})", position)
            if before is not None and before.type in ("DOT", "SAFE_DOT"):
                if name in _REFLECTION_MEMBERS:
                    self.fail(f"class and reflection access (`.{name}`) is not allowed", position)
                self.check_hyphen(code, tokens, index)
                continue
            if name in _STATEMENT_KEYWORDS:
                self.fail(f"statements are not allowed (`{name}`)", position)
            if name in _OTHER_KEYWORDS:
                self.fail(_OTHER_KEYWORDS[name], position)
            if name in _CLASS_NAMES:
                self.fail(f"class and reflection access (`{name}`) is not allowed", position)
            if name in _PACKAGE_PREFIXES and after is not None and after.type == "DOT":
                self.fail(f"fully qualified class names (`{name}.`) are not allowed", position)
            if after is not None and after.type == "LPAR":
                self.fail(
                    f"function calls like {name}(...) are not allowed; only whitelisted methods (x.trim()) and Math.addExact(a, b)",
                    position,
                )
            if after is not None and (
                after.type == "NAME"
                or (
                    after.type == "LSQB"
                    and index + 2 < len(tokens)
                    and tokens[index + 2].type == "RSQB"
                )
            ):
                self.fail(
                    "local declarations (`Type name`, `String[] r`) are not allowed", position
                )

    def check_hyphen(self, code: str, tokens: list[Token], index: int) -> None:
        """Refuse `headers?.X-Current-Page`: Groovy reads it as a subtraction, never as a key."""
        token = tokens[index]
        parts = [str(token.value)]
        cursor = index
        while (
            cursor + 2 < len(tokens)
            and tokens[cursor + 1].type == "MINUS"
            and tokens[cursor + 2].type == "NAME"
            and tokens[cursor + 1].start_pos == tokens[cursor].end_pos
            and tokens[cursor + 2].start_pos == tokens[cursor + 1].end_pos
        ):
            parts.append(str(tokens[cursor + 2].value))
            cursor += 2
        if len(parts) == 1:
            return
        start = self.chain_start(tokens, index - 1)
        dot = tokens[index - 1]
        receiver = code[start : dot.start_pos]
        key = "-".join(parts)
        suggestion = f"{receiver}[{key!r}]"
        self.fail(
            f"`-` inside a dotted name is a subtraction in Groovy; write {suggestion} "
            f"(or {receiver}?.get({key!r}) to allow null)",
            token.start_pos,
        )

    @staticmethod
    def chain_start(tokens: list[Token], dot_index: int) -> int:
        """Where the navigation chain ending at tokens[dot_index] (a dot) begins in the code."""
        cursor = dot_index - 1
        start = tokens[dot_index].start_pos or 0
        while cursor >= 0:
            token = tokens[cursor]
            if token.type in ("RPAR", "RSQB"):
                opener = "LPAR" if token.type == "RPAR" else "LSQB"
                level = 0
                while cursor >= 0:
                    if tokens[cursor].type == token.type:
                        level += 1
                    elif tokens[cursor].type == opener:
                        level -= 1
                        if level == 0:
                            break
                    cursor -= 1
                cursor -= 1  # the name or call before the brackets belongs to the chain
                if cursor < 0 or tokens[cursor].type not in ("NAME", "STRING", "RPAR", "RSQB"):
                    start = tokens[cursor + 1].start_pos or 0
                    break
                continue
            if token.type not in ("NAME", "STRING", "DOT", "SAFE_DOT"):
                break
            start = token.start_pos or 0
            cursor -= 1
        return start

    def check_depth(self, tree: Tree[Token]) -> None:
        stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_NESTING:
                self.fail(f"the expression nests deeper than {MAX_NESTING}", node.meta.start_pos)
            stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))

    # -- tree to AST

    def build(self, item: Tree[Token] | Token) -> _Node:  # noqa: PLR0912 - one branch per rule
        if isinstance(item, Token):  # pragma: no cover - every terminal is wrapped by a rule
            self.fail(f"unexpected {item.value!r}", item.start_pos)
        start, end = item.meta.start_pos, item.meta.end_pos
        kids = item.children
        rule = item.data
        if rule == "group":
            return self.build(kids[1])
        if rule == "var":
            return self.var(_token(kids[0]))
        if rule == "string":
            return _Literal(start, end, self.string(_token(kids[0])))
        if rule == "integer":
            return _Literal(start, end, self.integer(_token(kids[0])))
        if rule == "number":
            value = float(_token(kids[0]).value)
            if not math.isfinite(value):
                self.fail("number literal out of range", start)
            return _Literal(start, end, value)
        if rule == "literal":
            return _Literal(
                start, end, {"null": None, "true": True, "false": False}[_token(kids[0]).value]
            )
        if rule == "member":
            name = _token(kids[2])
            self.refuse_static(kids[0], f"{name.value}", start)
            return _Member(
                start, end, self.build(kids[0]), str(name.value), _token(kids[1]).type == "SAFE_DOT"
            )
        if rule == "method":
            return self.method(item)
        if rule == "index":
            key = self.build(kids[2])
            self.refuse_dunder_key(key)
            return _Index(start, end, self.build(kids[0]), key)
        if rule in ("not_", "neg"):
            return _Unary(start, end, str(_token(kids[0]).value), self.build(kids[1]))
        if rule in ("logic", "compare", "arith"):
            return _Binary(
                start, end, str(_token(kids[1]).value), self.build(kids[0]), self.build(kids[2])
            )
        if rule == "ternary":
            return _Ternary(
                start, end, self.build(kids[0]), self.build(kids[2]), self.build(kids[4])
            )
        if rule == "elvis":
            return _Elvis(start, end, self.build(kids[0]), self.build(kids[2]))
        self.fail(
            f"unsupported construct {rule}", start
        )  # pragma: no cover - token check refuses it

    def var(self, token: Token) -> _Node:
        name = str(token.value)
        position = token.start_pos or 0
        if name not in self.roots:
            if name == "Math":
                self.fail("Math is only available as Math.addExact(a, b)", position)
            self.fail(self.unknown_root(name), position)
        self.used.add(name)
        return _Var(position, token.end_pos or position, name)

    def close_root(self, name: str) -> str | None:
        lowered = {root.lower(): root for root in self.roots}
        if name.lower() in lowered:
            return lowered[name.lower()]
        close = difflib.get_close_matches(name, sorted(self.roots), n=1, cutoff=0.6)
        return close[0] if close else None

    def unknown_root(self, name: str) -> str:
        close = self.close_root(name)
        if close:
            return f"unknown name {name!r}; did you mean {close!r}?"
        known = ", ".join(sorted(self.roots)[:12]) or "none"
        return f"unknown name {name!r}; known names: {known}"

    def refuse_static(self, target: Tree[Token] | Token, member: str, position: int) -> None:
        if isinstance(target, Tree) and target.data == "var":
            name = str(_token(target.children[0]).value)
            # A near miss of a root (`User.email`) gets the did-you-mean hint instead.
            if name not in self.roots and name[:1].isupper() and not self.close_root(name):
                self.fail(
                    f"static access ({name}.{member}) is not allowed; the only static call is Math.addExact(a, b)",
                    position,
                )

    def method(self, item: Tree[Token]) -> _Node:
        kids = item.children
        start, end = item.meta.start_pos, item.meta.end_pos
        name_token = _token(kids[2])
        name = str(name_token.value)
        name_at = name_token.start_pos or start
        args = tuple(
            self.build(child)
            for child in (
                kids[4].children if isinstance(kids[4], Tree) and kids[4].data == "args" else ()
            )
            if isinstance(child, Tree)
        )
        target = kids[0]
        if (
            isinstance(target, Tree)
            and target.data == "var"
            and _token(target.children[0]).value == "Math"
            and "Math" not in self.roots
        ):
            if name != "addExact" or _token(kids[1]).type != "DOT":
                self.fail(
                    f"Math.{name}() is not allowed; the only static call is Math.addExact(a, b)",
                    name_at,
                )
            if len(args) != 2:
                self.fail(f"Math.addExact() takes 2 arguments, got {len(args)}", name_at)
            return _AddExact(start, end, args[0], args[1])
        self.refuse_static(target, f"{name}()", start)
        if name not in _METHODS:
            allowed = ", ".join(sorted(_METHODS))
            self.fail(f"method {name}() is not allowed; allowed methods: {allowed}", name_at)
        arities = _METHODS[name][0]
        if len(args) not in arities:
            counts = " or ".join(str(count) for count in sorted(arities))
            self.fail(f"{name}() takes {counts} argument(s), got {len(args)}", name_at)
        if name == "get" and args:
            self.refuse_dunder_key(args[0])
        self.check_literal_regex(name, args)
        return _Call(start, end, self.build(target), name, args, _token(kids[1]).type == "SAFE_DOT")

    def check_literal_regex(self, name: str, args: tuple[_Node, ...]) -> None:
        """Refuse a bad regex now, pointing into the pattern, when the package spells it out."""
        if name not in ("split", "replaceAll") or not args:
            return
        pattern_node = args[0]
        if not isinstance(pattern_node, _Literal) or not isinstance(pattern_node.value, str):
            return
        if name == "split" and _literal_split(pattern_node.value):
            return
        try:
            pattern = _regex(pattern_node.value)
            if (
                name == "replaceAll"
                and isinstance(args[1], _Literal)
                and isinstance(args[1].value, str)
            ):
                _replacement(args[1].value, pattern)
        except _Fail as exc:
            position = pattern_node.start
            offsets = self.string_offsets.get(pattern_node.start)
            if exc.position is not None and offsets is not None:
                # From the index in the decoded pattern to the column of its source text.
                position += 1 + offsets[exc.position]
            self.fail(exc.reason, position)

    def refuse_dunder_key(self, key: _Node) -> None:
        if isinstance(key, _Literal) and isinstance(key.value, str) and key.value.startswith("__"):
            self.fail(f"keys starting with `__` are refused ({key.value!r})", key.start)

    def string(self, token: Token) -> str:
        raw = str(token.value)[1:-1]
        out: list[str] = []
        #: Where each decoded character starts in `raw` (escapes take several characters).
        offsets: list[int] = []
        self.string_offsets[token.start_pos or 0] = offsets
        index = 0
        base = (token.start_pos or 0) + 1
        while index < len(raw):
            char = raw[index]
            offsets.append(index)
            if char != "\\":
                out.append(char)
                index += 1
                continue
            code = raw[index + 1]
            if code == "u":
                digits = raw[index + 2 : index + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    self.fail("\\u needs four hex digits", base + index)
                out.append(chr(int(digits, 16)))
                index += 6
                continue
            if code not in _ESCAPES:
                self.fail(f"unknown escape \\{code} in a string", base + index)
            out.append(_ESCAPES[code])
            index += 2
        return "".join(out)

    def integer(self, token: Token) -> int:
        text = str(token.value)
        position = token.start_pos or 0
        if len(text) > 1 and text.startswith("0"):
            self.fail("a leading zero makes an octal number in Groovy; drop it", position)
        value = int(text)
        if value > _INT64_MAX:
            self.fail("integer literal does not fit in 64 bits", position)
        return value


def _token(item: Tree[Token] | Token) -> Token:
    if not isinstance(item, Token):  # pragma: no cover - the grammar puts tokens here
        raise TypeError("expected a token")
    return item


def _lone_return(body: str) -> tuple[int, int] | None:
    """The span of <expr> in `return <expr>;` (the `;` optional), or None for anything else."""
    # Plain string scanning rather than a regex: bodies can be long and must stay linear.
    start = len(body) - len(body.lstrip())
    if not body.startswith("return", start):
        return None
    after = start + len("return")
    if after < len(body) and (body[after].isalnum() or body[after] == "_"):
        return None  # `returnCode` is a name, not the keyword
    end = len(body.rstrip())
    if end > after and body[end - 1] == ";":
        end -= 1
    # Another `;` inside stays in the code, where the token check refuses it with a column.
    while after < end and body[after].isspace():
        after += 1
    while end > after and body[end - 1].isspace():
        end -= 1
    return after, end


def _compile(
    body: str, *, where: str, roots: Collection[str], text: str, offset: int
) -> Expression:
    """Compile one `${...}` body; errors name `text` with columns counted from `offset`."""
    code, code_offset = body, offset
    rewritten = _lone_return(body)
    if rewritten is not None:
        # `#CONST#${return response.name;}`: a lone return is the value, so keep only the value.
        start, end = rewritten
        code, code_offset = body[start:end], offset + start
        if not code.strip():
            raise TemplateError(
                where=where, text=text, reason="`return` without a value", column=offset + 1
            )
    compiler = _Compiler(where=where, text=text, offset=code_offset, roots=roots)
    node = compiler.to_ast(code)
    return Expression(
        source=body, where=where, _code=code, _node=node, _roots=frozenset(compiler.used)
    )


def compile_expression(text: str, *, where: str, roots: Collection[str]) -> Expression:
    """Compile an expression body (without `${` and `}`); raises TemplateError naming `where`."""
    return _compile(text, where=where, roots=roots, text=text, offset=0)


# ------------------------------------------------------------------------------- classification


def _match_end(text: str, start: int) -> tuple[int | None, int | None]:
    """The index of the `}` closing a `${` whose body starts at `start`, quote-aware.

    Returns (index, None), or (None, position of an unclosed quote or None) when it never closes.
    """
    depth = 1
    quote: str | None = None
    quote_at: int | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote, quote_at = char, index
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index, None
        index += 1
    return None, quote_at if quote is not None else None


def _mask_strings(code: str) -> str | None:
    """The code with every string literal replaced by `'_'`; None if a quote never closes."""
    out: list[str] = []
    index = 0
    while index < len(code):
        char = code[index]
        if char not in "'\"":
            out.append(char)
            index += 1
            continue
        close = index + 1
        while close < len(code) and code[close] != char:
            close += 2 if code[close] == "\\" else 1
        if close >= len(code):
            return None
        out.append("'_'")
        index = close + 1
    return "".join(out)


def _balanced(code: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


_PATH_PART: Final = r"[A-Za-z_]\w*(?:\s*\??\.\s*[A-Za-z_]\w*|\s*\[\s*(?:\d+|'_')\s*\])*"
_LITERAL: Final = r"(?:'_'|null|true|false|-?\d+(?:\.\d+)?)"
_CLASSIFY_STATEMENT: Final = re.compile(
    r";|[{}]|\b(?:return|if|else|for|while|do|switch|try|catch|finally|def|new|throw)\b"
    r"|(?<![=!<>])=(?![=~])"
)
_CLASSIFY_CALL: Final = re.compile(r"[A-Za-z_]\w*\s*\(")
_CLASSIFY_PATH: Final = re.compile(_PATH_PART)
_NULL_DEFAULTS: Final = (
    (
        re.compile(
            rf"\(?\s*({_PATH_PART})\s*==\s*null\s*\)?\s*\?\s*{_LITERAL}\s*:\s*({_PATH_PART})"
        ),
        1,
        2,
    ),
    (
        re.compile(
            rf"\(?\s*({_PATH_PART})\s*!=\s*null\s*\)?\s*\?\s*({_PATH_PART})\s*:\s*{_LITERAL}"
        ),
        1,
        2,
    ),
    (re.compile(rf"({_PATH_PART})\s*\?:\s*{_LITERAL}"), 1, 1),
)


def classify_expression(text: str) -> str:
    """The kind of a `${...}` body (or whole `${...}`) for conversion reports, as in the table of 5.3.

    One of "path", "null_default", "ternary_or_operator", "method_call", "statement", "malformed".
    A textual classification: it does not say whether the expression compiles.
    """
    code = text.strip()
    if code.startswith("${"):
        end, _ = _match_end(code, 2)
        if end is None:
            return "malformed"
        if end == len(code) - 1:
            code = code[2:end].strip()
    masked = _mask_strings(code)
    if masked is None or not masked or not _balanced(masked):
        return "malformed"
    if _CLASSIFY_STATEMENT.search(masked):
        return "statement"
    if _CLASSIFY_CALL.search(masked):
        return "method_call"
    if _CLASSIFY_PATH.fullmatch(masked):
        return "path"
    for pattern, first, second in _NULL_DEFAULTS:
        match = pattern.fullmatch(masked)
        if match is not None and _same_path(match.group(first), match.group(second)):
            return "null_default"
    return "ternary_or_operator"


def _same_path(left: str, right: str) -> bool:
    def normal(path: str) -> str:
        return re.sub(r"\s+", "", path).replace("?.", ".")

    return normal(left) == normal(right)
