"""Import a Saviynt EIC REST connection (a Transport export or single JSON attributes) as a package.

`convert_saviynt(source)` returns a `ConversionResult`: our package as a dict (validated by the
package loader when it is complete), `to_yaml()`, and a report of what each attribute became, with
every warning and refusal located by attribute, JSON path and text. A refusal drops only the unit
it is about (an operation, a call, a field, a link or a pagination block), never the whole package,
except when no account import can be built at all. `conversion_report(paths)` renders the
Markdown table of docs/saviynt-conversion.md. Rules and examples: docs/saviynt-conversion.md.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from sigsci_iga.connectors.rest.loader import compile_package, validate_package
from sigsci_iga.connectors.rest.saviynt_exprs import (
    UrlConverter,
    count_expressions,
    json_strings,
    literal_origin,
    supported,
)
from sigsci_iga.connectors.rest.saviynt_import import ImportConverter
from sigsci_iga.connectors.rest.saviynt_prov import ProvisioningConverter
from sigsci_iga.connectors.rest.saviynt_report import (
    IMPORT_ATTRIBUTE,
    KNOWN_ATTRIBUTES,
    OPERATIONS,
    UNSUPPORTED_ATTRIBUTES,
    AttributeOutcome,
    Context,
    Finding,
)
from sigsci_iga.errors import InvalidInputError

__all__ = [
    "ConversionResult",
    "Finding",
    "conversion_report",
    "convert_saviynt",
    "export_packages",
    "import_saviynt",
    "package_filename",
    "render_conversion_doc",
]

_TRANSPORT_IGNORED: Final = frozenset(
    {
        "connectionname",
        "externalconnectiontype",
        "templateName",
        "status",
        "statusForEnableDisable",
        "connectiondescription",
        "templateMandatoryData",
        "connectorType",
        "connectorms",
        "msconnectorversion",
        "EXTERNAL_ATTR",
    }
)
_ORDER: Final = (
    "ConnectionJSON",
    "ConfigJSON",
    "STATUS_THRESHOLD_CONFIG",
    IMPORT_ATTRIBUTE,
    *OPERATIONS,
)


@dataclass
class ConversionResult:
    """A converted connection: the package document, the findings and the counts."""

    name: str
    source: str
    #: Our package as plain data (YAML/JSON-ready). Without `import` when no import could be built.
    package: dict[str, Any]
    findings: list[Finding]
    attributes: dict[str, AttributeOutcome]
    expressions_total: int = 0
    expressions_supported: int = 0
    expressions_converted: int = 0
    operations_converted: list[str] = field(default_factory=list)
    operations_refused: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when the package has an import and loads with `load_package`."""
        return "import" in self.package and not any(
            f.severity == "refusal" and f.attribute == "(package)" for f in self.findings
        )

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "refusal"]

    def to_yaml(self) -> str:
        """The package as YAML, headed by a comment that points at the report."""
        head = (
            f"# Converted from the Saviynt REST connection {self.source} by sigsci-iga.\n"
            f"# {len(self.warnings)} warning(s), {len(self.refusals)} refusal(s): "
            "see `sigsci-iga packages import-saviynt` output or docs/saviynt-conversion.md.\n"
        )
        if not self.complete:
            head += (
                "# INCOMPLETE: no account import could be built; this is not a loadable package.\n"
            )
        return head + yaml.safe_dump(
            self.package, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
        )

    def report(self) -> str:
        """A plain-text report: per attribute what it became, then every finding."""
        lines = [f"Saviynt connection {self.source} -> package {self.name!r}"]
        for outcome in self.attributes.values():
            produced = f": {', '.join(outcome.produced)}" if outcome.produced else ""
            lines.append(f"  {outcome.name}: {outcome.status}{produced}")
        lines.append(
            f"  expressions: {self.expressions_total} total, {self.expressions_supported} "
            f"supported by the language, {self.expressions_converted} in the package"
        )
        for severity in ("refusal", "warning", "info"):
            found = [f for f in self.findings if f.severity == severity]
            if found:
                lines.append(f"{severity}s ({len(found)}):")
                lines.extend(f"  - {f}" for f in found)
        return "\n".join(lines) + "\n"


# -- reading the source ----------------------------------------------------------------------


def _read(source: Path | str | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        return "(mapping)", source
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: the export is not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None
    try:
        return path.name, json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None


def _detect(value: Mapping[str, Any], hint: str) -> str:
    """Which Saviynt attribute a lone JSON value is (the file name wins when it names one)."""
    for name in sorted(KNOWN_ATTRIBUTES, key=len, reverse=True):
        if name.lower() in hint.lower():
            return name
    if {"accountParams", "entitlementParams", "acctEntParams"} & set(value):
        return IMPORT_ATTRIBUTE
    if set(value) == {"statusAndThresholdConfig"}:
        return "STATUS_THRESHOLD_CONFIG"
    if "authentications" in value:
        return "ConnectionJSON"
    if {"connectionTimeoutConfig", "provisioningLimit", "showLogs"} & set(value):
        return "ConfigJSON"
    if isinstance(value.get("call"), list):
        return _detect_operation(value)
    raise InvalidInputError(f"{hint}: not a Saviynt Transport export nor a known JSON attribute")


def _detect_operation(value: Mapping[str, Any]) -> str:
    text = json.dumps(value)
    calls = [c for c in value["call"] if isinstance(c, Mapping)]
    methods = {str(c.get("httpMethod", "")).upper() for c in calls}
    if "entitlementValue" in text:
        return "RemoveAccessJSON" if methods <= {"DELETE", "DELETEWITHBODY"} else "AddAccessJSON"
    if re.search(r'active\\?"\s*:\s*\\?"?false|Inactive|"status\\?"\s*:\s*\\?"0', text):
        return "DisableAccountJSON"
    if "accountID" not in text or "accountIdPath" in value:
        return "CreateAccountJSON"
    if methods <= {"DELETE"}:
        return "RemoveAccountJSON"
    if re.search(r'active\\?"\s*:\s*\\?"?true', text):
        return "EnableAccountJSON"
    return "UpdateAccountJSON"


def _attributes(data: Any, hint: str, ctx: Context) -> tuple[str, dict[str, Any]]:
    """(connection name, attribute name → parsed value) from any accepted source shape."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{hint}: expected a JSON object")
    if len(data) == 1:
        ((name, connection),) = data.items()
        if isinstance(connection, Mapping) and "EXTERNAL_ATTR" in connection:
            return str(name), _transport(str(name), connection, ctx)
    if data and set(data) <= KNOWN_ATTRIBUTES:
        return Path(hint).stem, {k: _parsed(k, v, ctx) for k, v in data.items()}
    attribute = _detect(data, hint)
    with ctx.in_attribute(attribute):
        ctx.info("", f"a lone {attribute} value (detected from its content or file name)")
    return Path(hint).stem, {attribute: data}


def _transport(name: str, connection: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    with ctx.in_attribute("(export)"):
        kind = connection.get("externalconnectiontype")
        if kind != "REST":
            raise InvalidInputError(f"{name}: externalconnectiontype is {kind!r}, not 'REST'")
        if connection.get("connectionname") not in (None, name):
            ctx.warn("connectionname", "differs from the export's top-level key")
        for key, value in connection.items():
            if key not in _TRANSPORT_IGNORED and value not in (None, "", False):
                ctx.warn(key, f"{key} is set but not converted (configure it on the engine side)")
        if connection.get("templateMandatoryData"):
            ctx.info("templateMandatoryData", "ciphertext of the exporting tenant: ignored")
    found: dict[str, Any] = {}
    for index, attribute in enumerate(connection.get("EXTERNAL_ATTR") or []):
        if not isinstance(attribute, Mapping):
            continue
        attr_name = str(attribute.get("attributename"))
        value = attribute.get("encryptedattributevalue")
        if value in (None, ""):
            continue
        if attr_name not in KNOWN_ATTRIBUTES:
            with ctx.in_attribute(attr_name):
                ctx.refuse(f"EXTERNAL_ATTR[{index}]", "unknown attribute: not converted")
            continue
        found[attr_name] = (
            value if attr_name == "ConnectionJSON" else _parsed(attr_name, value, ctx)
        )
    return found


def _parsed(name: str, value: Any, ctx: Context) -> Any:
    if not isinstance(value, str) or name == "ConnectionJSON":
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        with ctx.in_attribute(name):
            ctx.refuse("", f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}")
        return None


def _urls(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                yield item
            else:
                yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def _package_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.")
    return cleaned if cleaned and cleaned[0].isalnum() else f"saviynt-{cleaned or 'connection'}"


# -- converting --------------------------------------------------------------------------------


def convert_saviynt(
    source: Path | str | Mapping[str, Any],
    *,
    identity_attributes: Mapping[str, str] | None = None,
) -> ConversionResult:
    """Convert a Saviynt Transport export (or lone JSON attributes) into our package.

    `source` is a file path or the parsed JSON: a Transport export `{name: {..., EXTERNAL_ATTR}}`,
    a mapping of attribute name → value (JSON text or parsed), or one attribute's value (its kind
    is detected from the file name, else from its content). `identity_attributes` maps Saviynt
    identity attributes to our bindings (`{"customproperty4": "account.role"}`); by default a
    custom property imported from the target's `role`/`name`/`email` is mapped to that binding.
    Raises InvalidInputError when the source is not a REST connection at all.
    """
    hint, data = _read(source)
    ctx = Context(name=hint)
    connection_name, attributes = _attributes(data, hint, ctx)
    ctx.name = connection_name
    origins = Counter(
        o for value in attributes.values() for o in map(literal_origin, _urls(value)) if o
    )
    primary = origins.most_common(1)[0][0] if origins else None
    ctx.origins = dict(origins)
    if identity_attributes:
        ctx.identity_map.update({k.lower(): v for k, v in identity_attributes.items()})
    urls = UrlConverter(ctx, primary)
    package: dict[str, Any] = {
        "name": _package_name(connection_name),
        "version": "1.0.0",
        "description": f"Converted from the Saviynt REST connection {connection_name}.",
    }
    status_config = _status_config(attributes, ctx)
    _config_json(attributes, ctx, package)
    imported = _import(attributes, ctx, urls, status_config)
    provisioning = ProvisioningConverter(ctx, urls, types_known=imported is not None)
    operations = _operations(attributes, ctx, provisioning)
    for attribute in attributes:
        if attribute in UNSUPPORTED_ATTRIBUTES:
            with ctx.in_attribute(attribute) as outcome:
                outcome.status = "unsupported"
                ctx.refuse("", f"{attribute} has no equivalent in the engine: not converted")
    parameters, connection = _connection(ctx, attributes)
    package["parameters"] = parameters
    package["connection"] = {**connection, **package.pop("_connection_settings", {})}
    if imported is not None:
        package["import"] = imported
    if operations:
        package["provisioning"] = {k: v for k, v in operations.items() if v}
    _profiles(package, len(connection["auth"]) > 1)
    result = ConversionResult(
        name=package["name"],
        source=hint,
        package=package,
        findings=ctx.findings,
        attributes={k: ctx.outcomes[k] for k in _ordered(ctx.outcomes) if not k.startswith("(")},
        operations_converted=provisioning.converted,
        operations_refused=provisioning.refused,
    )
    _count(result, attributes, ctx)
    _check_loads(result, ctx)
    return result


def _import(
    attributes: Mapping[str, Any],
    ctx: Context,
    urls: UrlConverter,
    status_config: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    if not isinstance(attributes.get(IMPORT_ATTRIBUTE), Mapping):
        if IMPORT_ATTRIBUTE in attributes:
            ctx.outcomes[IMPORT_ATTRIBUTE] = AttributeOutcome(IMPORT_ATTRIBUTE, "refused")
        return None
    with ctx.in_attribute(IMPORT_ATTRIBUTE) as outcome:
        imported = ImportConverter(ctx, urls, status_config).convert(attributes[IMPORT_ATTRIBUTE])
        _outcome(outcome, ctx, imported is not None)
        if imported is not None:
            outcome.produced.append(
                f"import ({len(imported['accounts']['fields'])} fields, "
                f"{len(imported['entitlement_types'])} entitlement types, "
                f"{len(imported.get('links', []))} links)"
            )
    return imported


def _operations(
    attributes: Mapping[str, Any], ctx: Context, provisioning: ProvisioningConverter
) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for attribute in OPERATIONS:
        if attributes.get(attribute) is None:
            continue
        with ctx.in_attribute(attribute) as outcome:
            before = len(provisioning.converted)
            for op, calls in provisioning.convert(attribute, attributes[attribute]).items():
                if op in ("add_access", "remove_access"):
                    operations.setdefault(op, {}).update(calls)
                else:
                    operations[op] = calls
            outcome.produced.extend(provisioning.converted[before:])
            _outcome(outcome, ctx, bool(provisioning.converted[before:]))
    return operations


def _ordered(names: Iterable[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _outcome(outcome: AttributeOutcome, ctx: Context, produced: bool) -> None:
    refusals = [f for f in ctx.findings if f.severity == "refusal" and f.attribute == outcome.name]
    if not produced:
        outcome.status = "refused"
    elif refusals:
        outcome.status = "partial"


def _status_config(attributes: Mapping[str, Any], ctx: Context) -> Mapping[str, Any] | None:
    value = attributes.get("STATUS_THRESHOLD_CONFIG")
    if not isinstance(value, Mapping):
        return None
    with ctx.in_attribute("STATUS_THRESHOLD_CONFIG") as outcome:
        config = value.get("statusAndThresholdConfig")
        if not isinstance(config, Mapping):
            ctx.refuse("", "no statusAndThresholdConfig object")
            outcome.status = "refused"
            return None
        outcome.produced.append(
            "import.accounts.status and import.thresholds (wins over the inline block)"
        )
        return config


def _config_json(attributes: Mapping[str, Any], ctx: Context, package: dict[str, Any]) -> None:
    value = attributes.get("ConfigJSON")
    if not isinstance(value, Mapping):
        return
    settings: dict[str, Any] = {}
    with ctx.in_attribute("ConfigJSON") as outcome:
        timeouts = value.get("connectionTimeoutConfig")
        if isinstance(timeouts, Mapping):
            read = timeouts.get("readTimeout")
            if isinstance(read, int | float) and read > 0:
                settings["timeout_seconds"] = float(read)
                ctx.warn(
                    "connectionTimeoutConfig.readTimeout",
                    "read as seconds (the unit is undocumented)",
                )
            count = timeouts.get("retryCount")
            if isinstance(count, int) and 0 <= count < 20:
                settings["read_attempts"] = count + 1
            wait = timeouts.get("retryWait")
            if isinstance(wait, int | float) and wait >= 0:
                settings["retry_wait_initial_seconds"] = float(wait)
            for key in ("connectionTimeout", "writeTimeout"):
                if key in timeouts:
                    ctx.info(
                        f"connectionTimeoutConfig.{key}",
                        "one timeout per call in the engine (timeout_seconds)",
                    )
        for key in value:
            if key != "connectionTimeoutConfig":
                ctx.warn(key, f"{key} has no package equivalent: not converted")
        outcome.produced.append("connection timeouts and read retries")
    package["_connection_settings"] = settings


def _connection(
    ctx: Context, attributes: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters and the connection block: base URL and the auth profiles the user fills in."""
    parameters: dict[str, Any] = {}
    primary = max(ctx.origins, key=lambda o: ctx.origins[o]) if ctx.origins else None
    if primary is not None:
        parameters["base_url"] = {
            "description": "API origin (replace to point elsewhere, e.g. a simulator).",
            "default": primary,
        }
        base_url = "${params.base_url}"
    elif ctx.needs_base_url or not ctx.origin_params:
        parameters["base_url"] = {
            "description": "API origin: the export has relative URLs or an empty host.",
            "required": True,
        }
        base_url = "${params.base_url}"
    else:
        base_url = "${params." + ctx.origin_params[0] + "}"
    for name, spec in ctx.parameters.items():
        if name != "base_url":
            parameters[name] = spec
    profiles = sorted(ctx.profiles or {"acctAuth": 0}, key=lambda p: (-ctx.profiles.get(p, 0), p))
    sigsci = bool(primary and primary.endswith("signalsciences.net")) or bool(
        re.search(r"signal.?sciences", ctx.name, re.IGNORECASE)
    )
    auth: dict[str, Any] = {}
    with ctx.in_attribute("ConnectionJSON") as outcome:
        for profile in profiles:
            auth[profile] = _auth_profile(ctx, profile, parameters, sigsci=sigsci)
        shown = (
            "given in clear"
            if isinstance(attributes.get("ConnectionJSON"), Mapping)
            else "encrypted by the exporting tenant"
        )
        ctx.warn(
            "",
            f"ConnectionJSON is {shown} and is not read: auth profile(s) {', '.join(profiles)} are "
            "static headers whose secrets come from environment variables; fill them in "
            "(or replace a profile by a token_call profile if the target needs a token request)",
        )
        outcome.status = "ignored"
        outcome.produced.append(f"connection.auth: {', '.join(profiles)} (to fill in)")
    connection: dict[str, Any] = {"base_url": base_url, "auth": auth}
    if len(auth) > 1:
        connection["default_auth"] = profiles[0]
    return parameters, connection


def _auth_profile(
    ctx: Context, profile: str, parameters: dict[str, Any], *, sigsci: bool
) -> dict[str, Any]:
    used = ctx.token_headers.get(profile, {})
    if sigsci:
        parameters["api_user"] = {
            "description": "The API token owner's email (x-api-user).",
            "required": True,
            "env": "SIGSCI_EMAIL",
        }
        parameters["api_token"] = {
            "description": "The personal API access token (x-api-token).",
            "required": True,
            "secret": True,
            "env": "SIGSCI_TOKEN",
        }
        if used:
            ctx.warn(
                "",
                f"the calls send {', '.join(f'{k}: {v}' for k, v in used.items())}; Signal Sciences API "
                "tokens need x-api-user and x-api-token, which the profile sets instead",
            )
        return {
            "type": "static_headers",
            "headers": {"x-api-user": "${params.api_user}", "x-api-token": "${params.api_token}"},
        }
    param = re.sub(r"\W", "_", profile.lower()) + "_token"
    env = re.sub(r"\W", "_", f"{ctx.name}_{profile}_token").upper()
    if not re.match(r"[A-Z_]", env):
        env = "SAVIYNT_" + env
    parameters[param] = {
        "description": f"The full header value of the Saviynt auth block {profile} (e.g. 'Bearer ...').",
        "required": True,
        "secret": True,
        "env": env,
    }
    reference = "${params." + param + "}"
    sent = {
        name: re.sub(r"\$\{\s*access_token\s*\}", reference, value) for name, value in used.items()
    }
    return {"type": "static_headers", "headers": sent or {"Authorization": reference}}


def _requests(package: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    imported = package.get("import") or {}
    yield from imported.get("accounts", {}).get("calls", [])
    for spec in imported.get("entitlement_types", {}).values():
        yield from spec.get("calls", [])
    for link in imported.get("links", []):
        if "call" in link:
            yield link["call"]
    for op, value in (package.get("provisioning") or {}).items():
        groups = value.values() if op in ("add_access", "remove_access") else [value]
        for calls in groups:
            yield from calls


def _profiles(package: Mapping[str, Any], several: bool) -> None:
    """Name the auth profile on a call only when the package has more than one."""
    default = package["connection"].get("default_auth")
    for request in _requests(package):
        profile = request.pop("_profile", None)
        if several and profile and profile != default:
            request["auth"] = profile


def _count(result: ConversionResult, attributes: Mapping[str, Any], ctx: Context) -> None:
    """Expressions as the format reference counts them (5.3), and those kept in the package."""
    total = kept = 0
    for name, value in attributes.items():
        if name == "ConnectionJSON" or value is None:
            continue
        for text in json_strings(value):
            count, bodies = count_expressions(text)
            total += count
            kept += sum(1 for body in bodies if supported(body))
    result.expressions_total = total
    result.expressions_supported = kept
    result.expressions_converted = ctx.converted_expressions


def _check_loads(result: ConversionResult, ctx: Context) -> None:
    if "import" not in result.package:
        return
    try:
        compile_package(result.name, validate_package(result.package, result.name))
    except InvalidInputError as exc:
        with ctx.in_attribute("(package)"):
            ctx.refuse("", f"the converted package does not load: {exc}")


# -- reports and files -------------------------------------------------------------------------


def import_saviynt(source: Path | str, output: Path | str | None = None) -> ConversionResult:
    """Convert a file; write the package YAML to `output` when given (the CLI entry point)."""
    result = convert_saviynt(source)
    if output is not None:
        Path(output).write_text(result.to_yaml(), encoding="utf-8")
    return result


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def conversion_report(paths: Iterable[Path | str]) -> str:
    """The Markdown conversion table (and each refusal, located) for a set of exports."""
    results = [convert_saviynt(path) for path in sorted(map(Path, paths))]
    lines = [
        "| Package | Attributes converted | Ops converted / refused | Expressions total / supported / in package | Warnings | Refusals |",
        "|---|---|---|---|---|---|",
    ]
    totals = Counter[str]()
    for r in results:
        converted = [a for a in r.attributes.values() if a.status in ("converted", "partial")]
        lines.append(
            f"| {Path(r.source).stem} | {len(converted)} of {len(r.attributes)} "
            f"| {len(r.operations_converted)} / {len(r.operations_refused)} "
            f"| {r.expressions_total} / {r.expressions_supported} / {r.expressions_converted} "
            f"| {len(r.warnings)} | {len(r.refusals)} |"
        )
        totals.update(
            total=r.expressions_total,
            supported=r.expressions_supported,
            kept=r.expressions_converted,
            ops=len(r.operations_converted),
            refused_ops=len(r.operations_refused),
            warnings=len(r.warnings),
            refusals=len(r.refusals),
            complete=int(r.complete),
        )
    total = totals["total"] or 1
    lines.append(
        f"| **All {len(results)}** | {totals['complete']} packages load "
        f"| {totals['ops']} / {totals['refused_ops']} "
        f"| {totals['total']} / {totals['supported']} / {totals['kept']} "
        f"| {totals['warnings']} | {totals['refusals']} |"
    )
    lines += [
        "",
        f"Expressions supported by the language: {totals['supported']} of {totals['total']} "
        f"({100 * totals['supported'] / total:.1f} %); kept in converted packages: "
        f"{totals['kept']} of {totals['total']} ({100 * totals['kept'] / total:.1f} %).",
        "",
        "### Refusals, located",
        "",
    ]
    for r in results:
        if not r.refusals:
            continue
        lines.append(f"**{Path(r.source).stem}**")
        lines.append("")
        lines.extend(f"- {_cell(str(f))}" for f in r.refusals)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def package_filename(source: Path | str) -> str:
    """`Signal-Sciences.json` → `signal-sciences.yaml` (the name under packages_data/saviynt/)."""
    return re.sub(r"[^a-z0-9]+", "-", Path(source).stem.lower()).strip("-") + ".yaml"


def export_packages(paths: Iterable[Path | str], directory: Path | str) -> list[Path]:
    """Convert each export and write its YAML into `directory`; returns the files written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(map(Path, paths)):
        file = target / package_filename(path)
        file.write_text(convert_saviynt(path).to_yaml(), encoding="utf-8")
        written.append(file)
    return written


GENERATED_BEGIN: Final = "<!-- BEGIN GENERATED: conversion_report -->"
GENERATED_END: Final = "<!-- END GENERATED: conversion_report -->"


def render_conversion_doc(document: str, paths: Iterable[Path | str]) -> str:
    """The doc with the text between the GENERATED markers replaced by `conversion_report`."""
    start = document.index(GENERATED_BEGIN) + len(GENERATED_BEGIN)
    end = document.index(GENERATED_END)
    return document[:start] + "\n\n" + conversion_report(paths) + "\n" + document[end:]
