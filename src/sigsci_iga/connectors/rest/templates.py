"""Strings with `${...}` parts, and JSON values whose string leaves and keys are such templates.

Rules:
- `${expr}` is an expression of `expressions.py`; the body is found by brace matching that skips
  quoted strings, so `${a ? '}' : b}` is one expression. An unterminated `${` is a TemplateError.
- `$${` is an escape for a literal `${` (scanned left to right; any other `$` is literal text).
- A template that is exactly one `${expr}` renders to the raw value (any JSON type). Any other
  template renders to a string in which null reads as '' (Saviynt renders the text `null`; we
  render '' on purpose) and containers read as compact JSON.
- A JSON template renders to plain JSON values. Rendered values are inserted as values and never
  parsed again, so a display name containing quotes, braces or `${...}` cannot break or inject
  into a request body; serialize the result with `json.dumps`.
- Limits: a text template renders at most MAX_TEXT_LENGTH characters; a JSON template (with its
  `$each` lists, see the loader's BodyTemplate) at most MAX_TEXT_LENGTH characters of text and
  MAX_LIST_LENGTH values in all. Exceeding either is an EvaluationError naming the template.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sigsci_iga.connectors.rest.expressions import (
    MAX_LIST_LENGTH,
    MAX_TEXT_LENGTH,
    EvaluationError,
    Expression,
    TemplateError,
    _compile,
    _match_end,
)
from sigsci_iga.connectors.rest.taint import Secret, join_texts, reveal

__all__ = [
    "JsonTemplate",
    "RenderBudget",
    "Template",
    "compile_json",
    "compile_template",
    "find_expressions",
]

_Part = str | Expression


def _scan(text: str, where: str) -> list[tuple[str, int] | str]:
    """Literal pieces (escapes resolved) and (body, offset of body) pairs, in order."""
    pieces: list[tuple[str, int] | str] = []
    literal: list[str] = []
    index = 0
    while True:
        dollar = text.find("$", index)
        if dollar < 0:
            literal.append(text[index:])
            break
        literal.append(text[index:dollar])
        if text.startswith("$${", dollar):
            literal.append("${")
            index = dollar + 3
            continue
        if not text.startswith("${", dollar):
            literal.append("$")
            index = dollar + 1
            continue
        end, open_quote = _match_end(text, dollar + 2)
        if end is None:
            reason = "unterminated `${`: no matching `}`"
            if open_quote is not None:
                reason = f"unterminated `${{`: the quote at column {open_quote + 1} is never closed"
            raise TemplateError(where=where, text=text, reason=reason, column=dollar + 1)
        if any(literal):
            pieces.append("".join(literal))
        literal = []
        pieces.append((text[dollar + 2 : end], dollar + 2))
        index = end + 1
    if any(literal):
        pieces.append("".join(literal))
    return pieces


def find_expressions(text: str, *, where: str = "") -> list[str]:
    """Every `${...}` body in a string, brace-balanced and quote-aware; `$${` is skipped."""
    return [piece[0] for piece in _scan(text, where) if isinstance(piece, tuple)]


@dataclass(frozen=True)
class Template:
    """A string with `${...}` parts."""

    source: str
    where: str = field(default="", compare=False)
    _parts: tuple[_Part, ...] = field(default=(), repr=False)

    @property
    def is_constant(self) -> bool:
        """True when there is nothing to evaluate (escapes may still differ from `source`)."""
        return not any(isinstance(part, Expression) for part in self._parts)

    def render(self, bindings: Mapping[str, Any]) -> Any:
        """Exactly one `${expr}` and nothing else: the raw value; otherwise a string (null is '')."""
        if len(self._parts) == 1 and isinstance(self._parts[0], Expression):
            return self._parts[0].evaluate(bindings)
        return self.render_text(bindings)

    def render_text(self, bindings: Mapping[str, Any]) -> str | Secret:
        """Always text: values read as text (null is '', containers JSON); a Secret if any is."""
        texts: list[str | Secret] = []
        length = 0
        for part in self._parts:
            text = part if isinstance(part, str) else part.render_text(bindings)
            texts.append(text)
            length += len(text.value if isinstance(text, Secret) else text)
            if length > MAX_TEXT_LENGTH:
                raise EvaluationError(
                    where=self.where,
                    text=self.source,
                    reason=f"the rendered text would be longer than {MAX_TEXT_LENGTH} "
                    "characters (limit MAX_TEXT_LENGTH)",
                )
        return join_texts(texts)

    @property
    def lone_variable(self) -> str | None:
        """The name, when the template is exactly `${name}`."""
        if len(self._parts) == 1 and isinstance(self._parts[0], Expression):
            return self._parts[0].variable
        return None

    def roots(self) -> frozenset[str]:
        """The binding roots the template reads."""
        found: set[str] = set()
        for part in self._parts:
            if isinstance(part, Expression):
                found |= part.roots()
        return frozenset(found)


def compile_template(text: str, *, where: str, roots: Collection[str]) -> Template:
    """Compile every `${...}` in `text`; errors give the column within `text`."""
    parts: list[_Part] = []
    for piece in _scan(text, where):
        if isinstance(piece, str):
            parts.append(piece)
        else:
            body, offset = piece
            parts.append(_compile(body, where=where, roots=roots, text=text, offset=offset))
    return Template(source=text, where=where, _parts=tuple(parts))


# ----------------------------------------------------------------------------------------- JSON


@dataclass(frozen=True)
class _JConst:
    value: Any


@dataclass(frozen=True)
class _JText:
    template: Template


@dataclass(frozen=True)
class _JList:
    items: tuple[_JNode, ...]


@dataclass(frozen=True)
class _JObject:
    where: str
    items: tuple[tuple[Template, _JNode], ...]


_JNode = _JConst | _JText | _JList | _JObject

_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _child(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}" if where else key
    quoted = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{where}["{quoted}"]'


def _compile_node(value: Any, where: str, roots: Collection[str]) -> _JNode:
    if value is None or isinstance(value, bool | int):
        return _JConst(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateError(where=where, text=repr(value), reason="not a finite JSON number")
        return _JConst(value)
    if isinstance(value, str):
        template = compile_template(value, where=where, roots=roots)
        return _JConst(template.render({})) if template.is_constant else _JText(template)
    if isinstance(value, list | tuple):
        return _JList(
            tuple(_compile_node(item, _child(where, i), roots) for i, item in enumerate(value))
        )
    if isinstance(value, Mapping):
        items: list[tuple[Template, _JNode]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TemplateError(
                    where=where, text=repr(key), reason="JSON object keys must be strings"
                )
            path = _child(where, key)
            key_template = compile_template(key, where=f"{path} (key)", roots=roots)
            items.append((key_template, _compile_node(item, path, roots)))
        return _JObject(where, tuple(items))
    raise TemplateError(
        where=where,
        text=type(value).__name__,
        reason="not a JSON value (null, boolean, number, string, list or object)",
    )


class RenderBudget:
    """What one rendering may build in all, counted as it goes so the limit trips before memory."""

    def __init__(self) -> None:
        self.text = 0
        self.values = 0

    def charge(self, value: Any, *, where: str, source: str) -> None:
        """Count a rendered value (its strings' characters and its values); raise past a limit."""
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, Secret):
                pending.append(item.value)  # counted at its real size
                continue
            self.values += 1
            if isinstance(item, str):
                self.text += len(item)
            elif isinstance(item, Mapping):
                self.text += sum(len(key) for key in item if isinstance(key, str))
                pending.extend(item.values())
            elif isinstance(item, list | tuple):
                pending.extend(item)
            if self.text > MAX_TEXT_LENGTH:
                reason = (
                    f"the rendered value would hold more than {MAX_TEXT_LENGTH} characters of "
                    "text (limit MAX_TEXT_LENGTH)"
                )
                raise EvaluationError(where=where, text=source, reason=reason)
            if self.values > MAX_LIST_LENGTH:
                reason = (
                    f"the rendered value would hold more than {MAX_LIST_LENGTH} values "
                    "(limit MAX_LIST_LENGTH)"
                )
                raise EvaluationError(where=where, text=source, reason=reason)


def _render_node(
    node: _JNode,
    bindings: Mapping[str, Any],
    budget: RenderBudget,
    counted: frozenset[str],
    where: str,
) -> Any:
    """Render a node; `where` is the nearest located parent, for nodes without their own."""
    if isinstance(node, _JConst):
        budget.charge(node.value, where=where, source="")
        return node.value
    if isinstance(node, _JText):
        template = node.template
        value = template.render(bindings)
        if template.lone_variable not in counted:
            budget.charge(value, where=template.where, source=template.source)
        return value
    if isinstance(node, _JList):
        budget.charge(None, where=where, source="")
        return [_render_node(item, bindings, budget, counted, where) for item in node.items]
    budget.charge(None, where=node.where, source="")
    out: dict[str, Any] = {}
    secret_key = False
    for key_template, item in node.items:
        rendered = key_template.render_text(bindings)
        budget.charge(rendered, where=key_template.where, source=key_template.source)
        key = rendered.value if isinstance(rendered, Secret) else rendered
        secret_key = secret_key or isinstance(rendered, Secret)
        if key in out:
            name = "a name computed from a secret" if secret_key else f"the same name {key!r}"
            raise EvaluationError(
                where=node.where, text=key_template.source, reason=f"two keys render to {name}"
            )
        out[key] = _render_node(item, bindings, budget, counted, node.where)
    # A key computed from a secret cannot be shown, so neither can the object it names.
    return Secret(reveal(out)) if secret_key else out


def _node_roots(node: _JNode) -> frozenset[str]:
    if isinstance(node, _JConst):
        return frozenset()
    if isinstance(node, _JText):
        return node.template.roots()
    if isinstance(node, _JList):
        return frozenset().union(*(_node_roots(item) for item in node.items))
    found: set[str] = set()
    for key_template, item in node.items:
        found |= key_template.roots() | _node_roots(item)
    return frozenset(found)


@dataclass(frozen=True)
class JsonTemplate:
    """A JSON value (dict/list/str/number/bool/None) with templates in string leaves and keys."""

    source: Any = field(hash=False)
    where: str = field(default="", compare=False)
    _node: _JNode = field(default=_JConst(None), repr=False)

    @property
    def is_constant(self) -> bool:
        """True when no leaf or key has anything to evaluate."""
        return not _has_expression(self._node)

    def render(
        self,
        bindings: Mapping[str, Any],
        *,
        budget: RenderBudget | None = None,
        counted: frozenset[str] = frozenset(),
    ) -> Any:
        """Plain JSON values; rendered values are inserted as values, never parsed as JSON text.

        `budget` is shared with other renderings of the same request (default: a fresh one);
        a lone `${name}` whose name is in `counted` was charged to it already (a `$each` list).
        """
        try:
            return _render_node(self._node, bindings, budget or RenderBudget(), counted, self.where)
        except RecursionError:
            raise EvaluationError(
                where=self.where, text="", reason="the template nests too deeply to render"
            ) from None

    def roots(self) -> frozenset[str]:
        """The binding roots the template reads."""
        return _node_roots(self._node)


def _has_expression(node: _JNode) -> bool:
    if isinstance(node, _JConst):
        return False
    if isinstance(node, _JText):
        return True
    if isinstance(node, _JList):
        return any(_has_expression(item) for item in node.items)
    return any(not key.is_constant or _has_expression(item) for key, item in node.items)


def compile_json(value: Any, *, where: str, roots: Collection[str]) -> JsonTemplate:
    """Compile every template in a JSON value; `where` is extended per path (`.key`, `[0]`)."""
    try:
        node = _compile_node(value, where, roots)
    except RecursionError:
        raise TemplateError(
            where=where, text="", reason="the JSON value nests too deeply"
        ) from None
    return JsonTemplate(source=value, where=where, _node=node)
