"""Translating Saviynt `${...}` strings, URLs and JSON-text bodies into our templates.

Saviynt strings are Groovy GStrings; ours are `${...}` templates in the sandboxed language of
`expressions.py`, which was built to accept the Saviynt subset unchanged. So translating is mostly
renaming binding variables (`account.accountID` → `account.email`) and then compiling: whatever our
language refuses (statements, `new`, unknown roots) raises `Refused` naming the path and the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal

from sigsci_iga.connectors.rest.expressions import TemplateError, _match_end, compile_expression
from sigsci_iga.connectors.rest.loader import IMPORT_ROOTS, PROVISIONING_ROOTS, _split_top_level
from sigsci_iga.connectors.rest.saviynt_report import Context, Refused, Unit
from sigsci_iga.connectors.rest.templates import find_expressions

Scope = Literal["provisioning", "import", "link", "record"]

ROOTS: Final[dict[Scope, frozenset[str]]] = {
    "provisioning": PROVISIONING_ROOTS,
    "import": IMPORT_ROOTS,
    "link": IMPORT_ROOTS | {"entitlementValue", "id", "entitlementID", "account"},
    "record": frozenset({"record", "params"}),
}
#: Every binding variable of the format reference (5.1): what "supported" is measured against.
SAVIYNT_ROOTS: Final = frozenset(
    {
        "user", "account", "entitlementValue", "requestAccessAttributes", "reqAttrs",
        "access_token", "connection", "task", "arsTasks", "requestid", "businessJustification",
        "approvers", "userManager", "managerAccount", "userAccount", "accountName", "endpoints",
        "ServiceAccountOwnerMap", "password", "randomPassword", "response", "headers", "id",
        "entitlementID", "refresh_token",
    }
)  # fmt: skip
#: What the runtime binds in `account` / `user` for a provisioning step.
ACCOUNT_BINDINGS: Final = frozenset({"email", "id", "name", "role", "sites"})

_PLACEHOLDER: Final = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_STRING_LITERAL: Final = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_NAV: Final = r"\s*\??\.\s*"
_ROOT: Final = r"(?<![\w.$])"


# -- scanning ----------------------------------------------------------------------------------


def scan(text: str) -> Iterator[tuple[str, int, bool]]:
    """(piece, position, is_expression) over a Saviynt string; raises ValueError if unterminated."""
    index = 0
    while True:
        start = text.find("${", index)
        if start < 0:
            if index < len(text):
                yield text[index:], index, False
            return
        if start > index:
            yield text[index:start], index, False
        end, quote = _match_end(text, start + 2)
        if end is None:
            where = f" (the quote at column {quote + 1} never closes)" if quote is not None else ""
            raise ValueError(f"unterminated `${{` at column {start + 1}{where}")
        yield text[start + 2 : end], start, True
        index = end + 1


def count_expressions(text: str) -> tuple[int, list[str | None]]:
    """The `${...}` bodies of one string as the format reference counts them (None: malformed)."""
    try:
        bodies: list[str | None] = list(find_expressions(text))
    except TemplateError:
        return 1, [None]
    return len(bodies), bodies


def json_strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value, keys included (the reference counts both)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif isinstance(value, str):
        yield value


def supported(body: str | None) -> bool:
    """Does our language compile this body (with every Saviynt binding root declared)?"""
    if body is None:
        return False
    try:
        compile_expression(body, where="", roots=SAVIYNT_ROOTS)
    except TemplateError:
        return False
    return True


# -- translating expressions --------------------------------------------------------------------


def _masked(code: str, change: Callable[[str], str]) -> str:
    """Apply `change` to the code outside string literals (so 'user.email' text is not renamed)."""
    literals: list[str] = []

    def hide(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"\x00{len(literals) - 1}\x00"

    hidden = change(_STRING_LITERAL.sub(hide, code))
    return re.sub(r"\x00(\d+)\x00", lambda m: literals[int(m.group(1))], hidden)


class Translator:
    """Renames Saviynt bindings to ours for one scope, noting what cannot be bound."""

    def __init__(self, ctx: Context, scope: Scope, calls: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.scope = scope
        #: Saviynt call name → our call name (provisioning response chaining).
        self.calls = dict(calls or {})
        self.notes: list[str] = []

    def __call__(self, body: str) -> str:
        return _masked(body, self._rename)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _rename(self, code: str) -> str:
        if self.scope == "record":
            return re.sub(_ROOT + r"response\b", "record", code)
        if self.scope == "link":
            code = re.sub(
                _ROOT + r"(?:id|entitlementID)\b(?!\s*[.(?])", "entitlementValue.value", code
            )
        code = re.sub(_ROOT + r"reqAttrs\b", "requestAccessAttributes", code)
        code = re.sub(_ROOT + r"(account" + _NAV + r")accountID\b", r"\1email", code)
        code = re.sub(
            _ROOT + r"(entitlementValue" + _NAV + r")(entitlementID|entitlement_value)\b",
            self._value,
            code,
        )
        code = re.sub(_ROOT + r"user(" + _NAV + r")(\w+)", self._user, code)
        code = re.sub(
            _ROOT + r"response(" + _NAV + r")(\w+)(" + _NAV + r")message\b", self._response, code
        )
        for match in re.finditer(_ROOT + r"account" + _NAV + r"(\w+)", code):
            if match.group(1) not in ACCOUNT_BINDINGS:
                self._note(
                    f"account.{match.group(1)} is not bound by the engine "
                    f"(account: {', '.join(sorted(ACCOUNT_BINDINGS))}): it renders empty"
                )
        for match in re.finditer(_ROOT + r"entitlementValue" + _NAV + r"(\w+)", code):
            if match.group(1) not in ("value", "id", "type"):
                self._note(f"entitlementValue.{match.group(1)} is not bound: it renders empty")
        return code

    def _value(self, match: re.Match[str]) -> str:
        if match.group(2) == "entitlement_value":
            self._note(
                "entitlementValue.entitlement_value (the display value) becomes "
                "entitlementValue.value (the entitlementID column's value)"
            )
        return match.group(1) + "value"

    def _user(self, match: re.Match[str]) -> str:
        attribute = match.group(2)
        if attribute == "email":
            return "account.email"
        mapped = self.ctx.identity_map.get(attribute.lower())
        if mapped is not None:
            self._note(f"user.{attribute} (identity) becomes {mapped}")
            return mapped
        self._note(
            f"user.{attribute} is an identity attribute the engine does not bind "
            "(a task carries email, role and sites): it renders empty"
        )
        return match.group(0)

    def _response(self, match: re.Match[str]) -> str:
        name = self.calls.get(match.group(2), match.group(2))
        return f"response{match.group(1)}{name}{match.group(3)}body"

    def flush(self, path: str) -> None:
        for note in self.notes:
            self.ctx.warn(path, note)
        self.notes.clear()


def compile_checked(body: str, *, scope: Scope, path: str, original: str) -> None:
    """Compile a translated body for its scope; Refused names the path and the Saviynt text."""
    try:
        compile_expression(body, where=path, roots=ROOTS[scope])
    except TemplateError as exc:
        raise Refused(path, f"unsupported expression ({exc.reason})", original) from None


def expression(body: str, *, translator: Translator, unit: Unit, path: str) -> str:
    """One `${...}` body, translated and compiled."""
    translated = translator(body)
    compile_checked(translated, scope=translator.scope, path=path, original="${" + body + "}")
    unit.expressions += 1
    # The `#CONST#${return x;}` idiom: our language accepts it, the package reads better without.
    lone = re.fullmatch(r"\s*return\b([^;]*);?\s*", translated, re.DOTALL)
    return (lone.group(1) if lone else translated).strip()


def literal(text: str, ctx: Context, path: str = "") -> str:
    """Literal text: `@X@` placeholders become `${params.x}`."""
    return _PLACEHOLDER.sub(lambda m: "${params." + ctx.placeholder(m.group(0), path) + "}", text)


def template(text: str, *, translator: Translator, unit: Unit, path: str) -> str:
    """A Saviynt string (placeholders, `${...}`) as our template text."""
    try:
        pieces = list(scan(text))
    except ValueError as exc:
        raise Refused(path, str(exc), text) from None
    out: list[str] = []
    for piece, _, is_expression in pieces:
        if is_expression:
            out.append("${" + expression(piece, translator=translator, unit=unit, path=path) + "}")
        else:
            out.append(literal(piece, translator.ctx, path))
    return "".join(out)


# -- URLs --------------------------------------------------------------------------------------

_ORIGIN: Final = re.compile(r"^(https?)://([^/?#]*)(.*)$", re.DOTALL)


def placeholder_host(host: str) -> bool:
    """An empty host, one left with a blank or a leading dot, or a `<...>`/`@...@` marker."""
    return (
        not host.strip()
        or host != host.strip()
        or " " in host
        or host.startswith(".")
        or bool(re.search(r"[<>@{}$]", host))
    )


def literal_origin(url: str) -> str | None:
    """`https://host` of an absolute URL with a real host, else None."""
    match = _ORIGIN.match(url.strip())
    if match is None or placeholder_host(match.group(2)):
        return None
    return f"{match.group(1)}://{match.group(2).lower()}"


def _split_query(text: str) -> tuple[str, str | None]:
    """Split at the first '?' outside `${...}` (an expression may hold a '?' ternary)."""
    try:
        for piece, position, is_expression in scan(text):
            if not is_expression and "?" in piece:
                cut = position + piece.index("?")
                return text[:cut], text[cut + 1 :]
    except ValueError:
        pass  # the template conversion reports the unterminated `${`
    return text, None


def _query_pairs(text: str) -> Iterator[tuple[str, str]]:
    for pair in text.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            yield key, value


class UrlConverter:
    """Turns Saviynt URLs into base-URL-relative paths plus `query`, declaring parameters."""

    def __init__(self, ctx: Context, primary_origin: str | None) -> None:
        self.ctx = ctx
        self.primary = primary_origin

    def convert(
        self, raw: str, *, translator: Translator, unit: Unit, path: str
    ) -> tuple[str, dict[str, str]]:
        ctx = self.ctx
        text = raw.strip()
        if text != raw:
            ctx.warn(path, "leading or trailing spaces trimmed from the URL", raw)
        if not text:
            raise Refused(path, "empty URL", raw)
        prefix, rest = self._origin(text, raw, path)
        rest, query_text = _split_query(rest)
        query: dict[str, str] = {}
        if query_text is not None:
            ctx.warn(path, "query string moved from the URL to `query`", raw)
            for key, value in _query_pairs(query_text):
                query[key] = template(value, translator=translator, unit=unit, path=f"{path}?{key}")
        segments = _split_top_level(rest)
        for index in range(1, len(segments) - 1):
            if segments[index] == "":
                before = re.sub(r"\W", "_", segments[index - 1].lower()) or "path"
                name = ctx.parameter(
                    f"{before}_id",
                    description=f"The path segment after /{segments[index - 1]}/ (empty in the export).",
                    required=True,
                )
                segments[index] = "@" + name.upper() + "@"
                ctx.warn(
                    path,
                    f"empty path segment after /{segments[index - 1]}/ (a value removed from the "
                    f"export): parameter {name!r}",
                    raw,
                )
        joined = "/".join(segments) or "/"
        url = prefix + template(joined, translator=translator, unit=unit, path=path)
        return url, query

    def _origin(self, text: str, raw: str, path: str) -> tuple[str, str]:
        ctx = self.ctx
        match = _ORIGIN.match(text)
        placeholder = _PLACEHOLDER.match(text)
        if match is not None:
            host = match.group(2)
            if placeholder_host(host):
                self._base_url()
                ctx.warn(
                    path,
                    f"URL host {host!r} is empty or a placeholder: the URL is made relative to "
                    "${params.base_url}",
                    raw,
                )
                return "", match.group(3) or "/"
            origin = f"{match.group(1)}://{host.lower()}"
            if origin != self.primary:
                raise Refused(
                    path,
                    f"the URL is on {origin}, not on the package's base URL {self.primary}",
                    raw,
                )
            return "", match.group(3) or "/"
        if placeholder is not None:
            name = ctx.placeholder(placeholder.group(0), path)
            if name not in ctx.origin_params:
                ctx.origin_params.append(name)
            rest = text[placeholder.end() :]
            if rest and not rest.startswith("/"):
                ctx.warn(path, f"no '/' after {placeholder.group(0)}: one is inserted", raw)
                rest = "/" + rest
            return "${params." + name + "}", rest
        if text.startswith("/"):
            self._base_url()
            ctx.warn(path, "relative URL: it is made relative to ${params.base_url}", raw)
            return "", text
        raise Refused(path, "the URL is neither absolute, nor a path, nor placeholder-based", raw)

    def _base_url(self) -> None:
        self.ctx.needs_base_url = True


# -- JSON bodies -------------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"@@SAVIYNT_EXPR_(\d+)@@")


def _string_positions(text: str, spans: list[tuple[int, int]]) -> list[bool]:
    """For each expression span, whether it starts inside a JSON string literal."""
    inside: list[bool] = []
    in_string = False
    index = 0
    span_index = 0
    while index < len(text) and span_index < len(spans):
        start, end = spans[span_index]
        if index == start:
            inside.append(in_string)
            index = end
            span_index += 1
            continue
        char = text[index]
        if in_string and char == "\\":
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        index += 1
    return inside


def _json_unescaped(code: str) -> str:
    """An expression found inside JSON string text has its quotes JSON-escaped there."""
    if "\\" not in code:
        return code
    try:
        value = json.loads('"' + code + '"')
    except ValueError:
        return code
    return value if isinstance(value, str) else code


def body(text: str, *, translator: Translator, unit: Unit, path: str) -> Any:
    """A JSON-text body with `${...}` inside, as a JSON template (parsed, never spliced).

    Each `${...}` is replaced by a unique token, the text is parsed as JSON, and the tokens are
    restored as template text in the parsed strings (a bare `${x}` becomes the lone string
    `"${x}"`, which renders to the raw value). Text that is not JSON raises `Refused`.
    """
    try:
        pieces = list(scan(text))
    except ValueError as exc:
        raise Refused(path, str(exc), text) from None
    spans = [(pos, pos + len(piece) + 3) for piece, pos, is_expr in pieces if is_expr]
    inside = _string_positions(text, spans)
    protected: list[str] = []
    bodies: list[str] = []
    for piece, _, is_expression in pieces:
        if not is_expression:
            protected.append(piece)
            continue
        token = f"@@SAVIYNT_EXPR_{len(bodies)}@@"
        in_string = inside[len(bodies)]
        bodies.append(_json_unescaped(piece) if in_string else piece)
        protected.append(token if in_string else f'"{token}"')
    try:
        parsed = json.loads("".join(protected))
    except ValueError as exc:
        line_col = ""
        if isinstance(exc, json.JSONDecodeError):
            line_col = f" (line {exc.lineno}, column {exc.colno})"
        raise Refused(
            path, f"the body is not valid JSON once each ${{...}} is protected{line_col}", text
        ) from None

    def restore(value: Any, where: str) -> Any:
        if isinstance(value, str):
            return _restore_text(value, where)
        if isinstance(value, list):
            return [restore(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {
                _restore_text(key, f"{where}.{key}"): restore(item, f"{where}.{key}")
                for key, item in value.items()
            }
        return value

    def _restore_text(value: str, where: str) -> str:
        out: list[str] = []
        index = 0
        for match in _TOKEN.finditer(value):
            out.append(literal(value[index : match.start()], translator.ctx, where))
            source = bodies[int(match.group(1))]
            out.append(
                "${" + expression(source, translator=translator, unit=unit, path=where) + "}"
            )
            index = match.end()
        out.append(literal(value[index:], translator.ctx, where))
        return "".join(out)

    return restore(parsed, path)


def form_fields(
    value: Mapping[str, Any], *, translator: Translator, unit: Unit, path: str
) -> dict[str, Any]:
    """A form body given as an object: each value a template."""
    return {
        key: template(str(item), translator=translator, unit=unit, path=f"{path}.{key}")
        if isinstance(item, str)
        else item
        for key, item in value.items()
    }


def strip_completes(path: str) -> str:
    """`completeResponseMap.meta.total` / `response.completeResponseMap.x` → a body path."""
    return re.sub(r"^(?:response\??\.)?completeResponseMap\??\.", "", path.strip()).replace(
        "?.", "."
    )
