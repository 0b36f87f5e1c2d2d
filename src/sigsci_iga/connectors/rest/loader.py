"""Loading a connection package: parse YAML/JSON, validate, compile every template, bind parameters.

Every error names the file, the JSON path and the problem. Templates are compiled once here, so a
package that loads can only fail at run time on data (a missing value), never on syntax.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from sigsci_iga.connectors.rest.expressions import Expression, compile_expression
from sigsci_iga.connectors.rest.spec import (
    BasicAuth,
    FieldMapping,
    Package,
    PathPart,
    ProvisioningCall,
    RequestSpec,
    SessionLoginAuth,
    StaticHeadersAuth,
    TokenCallAuth,
    iter_requests,
    parse_path,
)
from sigsci_iga.connectors.rest.taint import Secret, tainted
from sigsci_iga.connectors.rest.templates import (
    JsonTemplate,
    RenderBudget,
    Template,
    compile_json,
    compile_template,
)
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.errors import ConfigError, InvalidInputError

#: Roots a provisioning template may use.
PROVISIONING_ROOTS = frozenset(
    {
        "user",
        "account",
        "entitlementValue",
        "requestAccessAttributes",
        "connection",
        "endpoint",
        "response",
        "task",
        "requestid",
        "businessJustification",
        "params",
        "access_token",
        "entitlementID",
        "id",
    }
)
IMPORT_ROOTS = frozenset({"params", "connection"})
#: How deep a package document may nest (objects and lists); real packages use about ten levels.
MAX_DOCUMENT_DEPTH = 64
_PARAM_REFERENCE = re.compile(r"""\bparams(?:\??\.([A-Za-z_]\w*)|\[\s*['"]([^'"]+)['"]\s*\])""")


@lru_cache(maxsize=4096)
def cached_path(text: str) -> tuple[PathPart, ...]:
    """`parse_path`, memoised: the same few paths are followed for every record."""
    return parse_path(text)


# -- reading -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (the last one would silently win)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed, before its keys are checked to be unique."""


def _unique_keys(value: Any, source: Path, location: tuple[int | str, ...] = ()) -> Any:
    """Parsed JSON with objects as dicts; a key given twice is refused (the last would win)."""
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            if key in out:
                raise InvalidInputError(
                    f"{source}: {json_path(location)}: duplicate key {key!r} (invalid JSON package)"
                )
            out[key] = _unique_keys(item, source, (*location, key))
        return out
    if isinstance(value, list):
        return [_unique_keys(item, source, (*location, i)) for i, item in enumerate(value)]
    return value


def read_document(path: Path) -> Any:
    """Parse a package file: JSON for `.json` (or text starting with `{`), else YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the package: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: the package is not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None
    is_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")
    )
    try:
        if is_json:
            return _unique_keys(json.loads(text, object_pairs_hook=_Pairs), path)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  # a SafeLoader subclass
    except RecursionError:
        # The parsers recurse per level; far past MAX_DOCUMENT_DEPTH they run out of stack.
        raise InvalidInputError(
            f"{path}: the package nests deeper than {MAX_DOCUMENT_DEPTH} levels"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInputError(f"{path}: {where}: invalid YAML: {problem}") from None


def json_path(location: Collection[int | str]) -> str:
    """A pydantic location as a JSON path: `provisioning.add_access.Site[0].url`."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def _document_location(document: Any, location: Collection[int | str]) -> list[int | str]:
    """Drop the tagged-union tags pydantic puts in a location: they are not keys of the file."""
    kept: list[int | str] = []
    node = document
    for part in location:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node.get(part)
        elif isinstance(node, dict) and node.get("type") == part:
            continue
        else:
            node = None
        kept.append(part)
    return kept


def _validation_message(source: str, exc: ValidationError, document: Any) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of the package format)"
        where = json_path(_document_location(document, error["loc"]))
        lines.append(f"  {where}: {message}")
    return f"{source}: invalid package ({len(lines)} problem(s)):\n" + "\n".join(lines)


# -- compiled pieces ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One path segment of a URL template: literal text, or a template rendered then encoded."""

    raw: str
    template: Template | None


@dataclass(frozen=True)
class EachBlock:
    """`{"$each": <expression>, "$as": name, "$emit": <JSON template>}`: a list built per item."""

    source: Expression
    name: str
    emit: BodyTemplate
    slot: str


@dataclass(frozen=True)
class BodyTemplate:
    """A JSON template whose `$each` blocks are rendered first and spliced in as parsed JSON."""

    where: str
    template: JsonTemplate
    blocks: tuple[EachBlock, ...] = ()

    def render(self, bindings: Mapping[str, Any], budget: RenderBudget | None = None) -> Any:
        """The body; every value built, `$each` items included, counts against one budget."""
        budget = budget or RenderBudget()
        values = dict(bindings)
        for block in self.blocks:
            items, hidden = block.source.evaluate(values), False
            if isinstance(items, Secret):
                # Even how many items there are would tell something of the secret.
                items, hidden = items.value, True
            if items is None:
                items = []
            if not isinstance(items, list):
                raise InvalidInputError(
                    f"{self.where}: $each needs a list, got {type(items).__name__}"
                )
            built = [
                block.emit.render({**values, block.name: Secret(item) if hidden else item}, budget)
                for item in items
            ]
            values[block.slot] = Secret(built) if hidden else built
        slots = frozenset(block.slot for block in self.blocks)
        return self.template.render(values, budget=budget, counted=slots)


@dataclass(frozen=True)
class CompiledRequest:
    """A request with every template compiled; `spec` keeps its non-template settings."""

    where: str
    spec: RequestSpec
    auth: str
    #: A literal origin (`https://host`), a template rendering one, or None (relative url).
    origin: str | Template | None
    segments: tuple[Segment, ...]
    #: The url ends with '/' (kept as written).
    trailing_slash: bool
    headers: tuple[tuple[str, Template], ...]
    query: tuple[tuple[str, Template], ...]
    body: BodyTemplate | None
    when: Expression | None = None


@dataclass(frozen=True)
class CompiledField:
    target: str
    spec: FieldMapping
    path: tuple[PathPart, ...] | None
    expression: Expression | None


@dataclass(frozen=True)
class CompiledAuth:
    name: str
    headers: tuple[tuple[str, Template], ...] = ()
    username: Template | None = None
    password: Template | None = None
    request: CompiledRequest | None = None


@dataclass
class LoadedPackage:
    """A validated package with compiled templates; `bind` supplies parameters and secrets."""

    source: str
    spec: Package
    base_url: Template
    requests: dict[str, CompiledRequest]
    auth: dict[str, CompiledAuth]
    fields: tuple[CompiledField, ...]

    def request(self, where: str) -> CompiledRequest:
        return self.requests[where]

    def bind(
        self,
        params: Mapping[str, str],
        *,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> BoundPackage:
        """Supply parameter values (non-secret) and read secrets from `env` (default os.environ).

        `secrets` holds secret parameters already resolved by name (an endpoint's own secret
        references); they win over the environment. Raises ConfigError naming a missing
        required parameter, an unknown one, or a secret passed as a plain parameter instead of
        through its environment variable.
        """
        environment = os.environ if env is None else env
        resolved = secrets or {}
        declared = self.spec.parameters
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ConfigError(f"{self.source}: unknown parameter {unknown[0]!r}")
        not_secret = sorted(n for n in resolved if n not in declared or not declared[n].secret)
        if not_secret:
            raise ConfigError(f"{self.source}: {not_secret[0]!r} is not a secret parameter")
        values: dict[str, str] = {}
        secret_values: list[str] = []
        secret_names: set[str] = set()
        for name, parameter in declared.items():
            if parameter.secret:
                if name in params:
                    raise ConfigError(
                        f"{self.source}: parameter {name!r} is secret; "
                        f"supply it through ${parameter.env}, not as a value"
                    )
                value = resolved.get(name) or environment.get(parameter.env or "")
            else:
                value = params.get(name)
                if value is None and parameter.env is not None:
                    value = environment.get(parameter.env)
                if value is None:
                    value = parameter.default
            if value is None or value == "":
                if parameter.required:
                    how = f" (environment variable {parameter.env})" if parameter.env else ""
                    raise ConfigError(f"{self.source}: required parameter {name!r} is missing{how}")
                continue
            values[name] = value
            if parameter.secret:
                secret_values.append(value)
                secret_names.add(name)
        marked = {n: Secret(v) if n in secret_names else v for n, v in values.items()}
        base_url = self.base_url.render({"params": marked})
        if tainted(base_url):
            # The base URL is shown (errors, repr, the `connection` binding): it holds no secret.
            raise ConfigError(
                f"{self.source}: connection.base_url is computed from a secret parameter; "
                "send secrets in headers or the auth profile instead"
            )
        return BoundPackage(
            self, values, tuple(secret_values), _checked_base_url(self.source, base_url)
        )


@dataclass
class BoundPackage:
    """A package with its parameter values: what a RestConnector runs."""

    loaded: LoadedPackage
    params: dict[str, str]
    secrets: tuple[str, ...]
    base_url: str
    connection_binding: dict[str, Any] = field(default_factory=dict)
    #: The `params` binding of templates: secret parameters marked, so what is computed from
    #: them is masked wherever a request is shown (taint.py).
    param_bindings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.connection_binding = {"base_url": self.base_url, "name": self.spec.name}
        declared = self.spec.parameters
        self.param_bindings = {
            name: Secret(value) if name in declared and declared[name].secret else value
            for name, value in self.params.items()
        }

    @property
    def spec(self) -> Package:
        return self.loaded.spec

    @property
    def name(self) -> str:
        return self.spec.name

    def thresholds(self) -> Thresholds:
        """The package's import thresholds as the engine's own type."""
        spec = self.spec.import_.thresholds

        def limit(value: Any) -> Limit:
            return Limit(absolute=value.absolute, percent=value.percent)

        return Thresholds(
            accounts_suspended=limit(spec.accounts_suspended),
            links_removed=limit(spec.links_removed),
            sites_inactivated=limit(spec.sites_inactivated),
        )

    def __repr__(self) -> str:
        # Never show parameter values: some are secrets.
        return f"BoundPackage({self.name!r}, base_url={self.base_url!r})"


def _checked_base_url(source: str, value: Any) -> str:
    text = "" if value is None else str(value)
    try:
        parts = urlsplit(text)
        host = parts.hostname
        userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        parts, host, userinfo = urlsplit(""), None, False
    if (
        text != text.strip()
        or parts.scheme not in ("http", "https")
        or not host
        or userinfo
        or parts.query
        or parts.fragment
        or re.search(r"@[A-Z_]+@|<[^>]*>|\s", text)
    ):
        # Only the scheme and host are echoed: the rest could hold a password or a token.
        shown = f"{parts.scheme}://{host}/..." if parts.scheme and host else "an unusable value"
        raise ConfigError(
            f"{source}: connection.base_url must be an absolute http(s) URL without "
            f"credentials, query or fragment (got {shown})"
        )
    return text.rstrip("/")


# -- compiling ---------------------------------------------------------------------------------


def _roots_for(where: str) -> frozenset[str]:
    if where.startswith("provisioning."):
        return PROVISIONING_ROOTS
    if where.startswith("import.accounts.read_account"):
        return IMPORT_ROOTS | {"account", "id"}
    if ".read" in where or where.startswith("import.links"):
        # Per-value reads and link calls see the value (and, per account, the account).
        return IMPORT_ROOTS | {"entitlementValue", "id", "entitlementID", "account"}
    return IMPORT_ROOTS


def _split_top_level(text: str) -> list[str]:
    """Split a URL template at '/' outside `${...}` (an expression may hold '/' in a string)."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    index = 0
    while index < len(text):
        char = text[index]
        if depth:
            if quote:
                if char == "\\":
                    current.append(text[index : index + 2])
                    index += 2
                    continue
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
        elif text.startswith("${", index):
            depth = 1
            current.append("${")
            index += 2
            continue
        elif char == "/":
            pieces.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    pieces.append("".join(current))
    return pieces


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.texts: list[tuple[str, str]] = []

    def where(self, path: str) -> str:
        return f"{self.source}: {path}"

    def template(self, text: str, path: str, roots: Collection[str]) -> Template:
        self.texts.append((path, text))
        return compile_template(text, where=self.where(path), roots=roots)

    def json(self, value: Any, path: str, roots: Collection[str]) -> BodyTemplate:
        blocks: list[EachBlock] = []
        replaced = self._each_blocks(value, path, frozenset(roots), blocks)
        for sub_path, text in _strings(replaced, path):
            self.texts.append((sub_path, text))
        slots = {block.slot for block in blocks}
        template = compile_json(replaced, where=self.where(path), roots=frozenset(roots) | slots)
        return BodyTemplate(self.where(path), template, tuple(blocks))

    def _each_blocks(
        self, value: Any, path: str, roots: frozenset[str], blocks: list[EachBlock]
    ) -> Any:
        """Replace each `$each` block by a lone `${slot}` that its rendered list fills."""
        if isinstance(value, list):
            return [
                self._each_blocks(item, f"{path}[{i}]", roots, blocks)
                for i, item in enumerate(value)
            ]
        if not isinstance(value, dict):
            return value
        if "$each" not in value:
            return {k: self._each_blocks(v, f"{path}.{k}", roots, blocks) for k, v in value.items()}
        unknown = set(value) - {"$each", "$as", "$emit"}
        name = value.get("$as", "item")
        if unknown or "$emit" not in value or not isinstance(value["$each"], str):
            raise InvalidInputError(
                f"{self.where(path)}: $each needs an expression text and $emit "
                f"(and optionally $as); found {', '.join(sorted(value))}"
            )
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidInputError(f"{self.where(path)}.$as: not an identifier: {name!r}")
        if name in roots:
            raise InvalidInputError(f"{self.where(path)}.$as: {name!r} hides a binding root")
        source = self.expression(value["$each"], f"{path}.$each", roots)
        emit = self.json(value["$emit"], f"{path}.$emit", roots | {name})
        slot = f"each_{len(blocks)}_"
        blocks.append(EachBlock(source, name, emit, slot))
        return "${" + slot + "}"

    def expression(self, text: str, path: str, roots: Collection[str]) -> Expression:
        self.texts.append((path, text))
        return compile_expression(text, where=self.where(path), roots=roots)

    def request(self, path: str, spec: RequestSpec, default_auth: str) -> CompiledRequest:
        roots = _roots_for(path)
        if path.startswith("connection.auth"):
            roots = IMPORT_ROOTS
        pieces = _split_top_level(spec.url)
        origin: str | Template | None = None
        literal_origin = re.match(r"^(https?)://([^/$]+)", spec.url)
        if literal_origin:
            origin = literal_origin.group(0)
            pieces = _split_top_level(spec.url[literal_origin.end() :])
        elif pieces[0]:
            origin = self.template(pieces[0], f"{path}.url", roots)
        elif not spec.url.startswith("/"):
            raise InvalidInputError(f"{self.where(path)}.url: must start with '/' or a scheme")
        trailing = len(pieces) > 1 and pieces[-1] == ""
        segments = []
        for piece in pieces[1:-1] if trailing else pieces[1:]:
            if piece in ("", ".", ".."):
                raise InvalidInputError(
                    f"{self.where(path)}.url: empty, '.' or '..' path segment in {spec.url!r}"
                )
            template = self.template(piece, f"{path}.url", roots) if "${" in piece else None
            segments.append(Segment(piece, template))
        when = None
        if isinstance(spec, ProvisioningCall) and spec.when is not None:
            when = self.expression(spec.when, f"{path}.when", roots)
        return CompiledRequest(
            where=path,
            spec=spec,
            auth=spec.auth or default_auth,
            origin=origin,
            segments=tuple(segments),
            trailing_slash=trailing,
            headers=tuple(
                (name, self.template(value, f"{path}.headers.{name}", roots))
                for name, value in spec.headers.items()
            ),
            query=tuple(
                (name, self.template(value, f"{path}.query.{name}", roots))
                for name, value in spec.query.items()
            ),
            body=None if spec.body is None else self.json(spec.body, f"{path}.body", roots),
            when=when,
        )

    def auth(
        self, package: Package, requests: dict[str, CompiledRequest]
    ) -> dict[str, CompiledAuth]:
        compiled: dict[str, CompiledAuth] = {}
        roots = IMPORT_ROOTS
        for name, profile in package.connection.auth.items():
            base = f"connection.auth.{name}"
            if isinstance(profile, StaticHeadersAuth):
                compiled[name] = CompiledAuth(
                    name,
                    headers=tuple(
                        (h, self.template(v, f"{base}.headers.{h}", roots))
                        for h, v in profile.headers.items()
                    ),
                )
            elif isinstance(profile, BasicAuth):
                compiled[name] = CompiledAuth(
                    name,
                    username=self.template(profile.username, f"{base}.username", roots),
                    password=self.template(profile.password, f"{base}.password", roots),
                )
            elif isinstance(profile, TokenCallAuth | SessionLoginAuth):
                compiled[name] = CompiledAuth(name, request=requests[f"{base}.call"])
        return compiled


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def compile_package(source: str, package: Package) -> LoadedPackage:
    """Compile every template of a validated package; raises naming the file and JSON path."""
    compiler = _Compiler(source)
    default_auth = package.connection.default_profile
    base_url = compiler.template(package.connection.base_url, "connection.base_url", {"params"})
    requests: dict[str, CompiledRequest] = {}
    for path, spec in iter_requests(package):
        requests[path] = compiler.request(path, spec, default_auth)
        if path.startswith("connection.auth") and spec.auth is not None:
            raise InvalidInputError(f"{compiler.where(path)}.auth: a login call cannot use auth")
    auth = compiler.auth(package, requests)
    fields = []
    for target, mapping in package.import_.accounts.fields.items():
        where = f"import.accounts.fields.{target}"
        expression = None
        if mapping.expression is not None:
            expression = compiler.expression(
                mapping.expression, f"{where}.expression", {"record", "params"}
            )
        parts = cached_path(mapping.path) if mapping.path is not None else None
        fields.append(CompiledField(target, mapping, parts, expression))
    declared = set(package.parameters)
    for path, text in compiler.texts:
        for match in _PARAM_REFERENCE.finditer(text):
            name = match.group(1) or match.group(2)
            if name not in declared:
                raise InvalidInputError(
                    f"{compiler.where(path)}: unknown parameter {name!r} in {text!r} "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})"
                )
    return LoadedPackage(source, package, base_url, requests, auth, tuple(fields))


def _check_document(document: Any, source: str) -> None:
    """Refuse a document nested deeper than MAX_DOCUMENT_DEPTH, or holding NaN or infinity."""
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(document, ())]
    while pending:
        node, location = pending.pop()
        if len(location) > MAX_DOCUMENT_DEPTH:
            raise InvalidInputError(
                f"{source}: {json_path(location)}: the package nests deeper than "
                f"{MAX_DOCUMENT_DEPTH} levels"
            )
        if isinstance(node, float) and not math.isfinite(node):
            # JSON has no NaN or infinity (Python's parser and YAML's .nan/.inf accept them).
            raise InvalidInputError(
                f"{source}: {json_path(location)}: {node} is not a number a package may hold"
            )
        if isinstance(node, dict):
            pending.extend((value, (*location, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            pending.extend((value, (*location, index)) for index, value in enumerate(node))


def validate_package(document: Any, source: str) -> Package:
    """Validate a parsed document as a package; InvalidInputError lists every problem."""
    _check_document(document, source)
    try:
        return Package.model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError(_validation_message(source, exc, document)) from None


def load_package(path: str | Path) -> LoadedPackage:
    """Read, validate and compile a package file (YAML or JSON)."""
    file = Path(path)
    source = str(file)
    return compile_package(source, validate_package(read_document(file), source))
