"""Create/Update/Enable/Disable/RemoveAccount and Add/RemoveAccess JSONs → our operations."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sigsci_iga.connectors.rest.saviynt_common import check_keys, headers, identifier, record_path
from sigsci_iga.connectors.rest.saviynt_exprs import (
    Translator,
    UrlConverter,
    body,
    form_fields,
    template,
)
from sigsci_iga.connectors.rest.saviynt_report import OPERATIONS, Context, Refused, Unit

_TOP_KEYS: Final = ("call", "accountIdPath", "responseColsToPropsMap", "dateFormat")
_CALL_KEYS: Final = (
    "name",
    "connection",
    "url",
    "httpMethod",
    "httpParams",
    "httpHeaders",
    "httpContentType",
    "successResponses",
    "unsuccessResponses",
    "showResponse",
    "privilegeEntitlement",
)
_METHODS: Final = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_WITH_BODY: Final = {"DELETEWITHBODY": "DELETE", "GETWITHBODY": "GET"}


class ProvisioningConverter:
    """Converts the provisioning attributes into `provisioning` operations."""

    def __init__(self, ctx: Context, urls: UrlConverter, *, types_known: bool) -> None:
        self.ctx = ctx
        self.urls = urls
        #: Whether the import was converted (so AddAccess names can be checked against its types).
        self.types_known = types_known
        self.converted: list[str] = []
        self.refused: list[str] = []

    def convert(self, attribute: str, document: Any) -> dict[str, Any]:
        """Our operations for one attribute: {op: calls} or {"add_access": {type: calls}}."""
        ctx = self.ctx
        op = OPERATIONS[attribute]
        if not isinstance(document, Mapping):
            ctx.refuse("", "the attribute is not a JSON object")
            self.refused.append(op)
            return {}
        check_keys(ctx, document, "", _TOP_KEYS)
        calls = document.get("call")
        if isinstance(calls, Mapping):
            ctx.warn("call", "`call` is an object; its values are taken in order")
            calls = list(calls.values())
        if not isinstance(calls, list) or not calls:
            ctx.refuse("call", "no calls")
            self.refused.append(op)
            return {}
        if document.get("dateFormat"):
            ctx.info("dateFormat", "not needed: captured values are kept as the API returns them")
        indexed = [(i, c) for i, c in enumerate(calls) if isinstance(c, Mapping)]
        if op in ("add_access", "remove_access"):
            return {op: self._by_type(op, indexed)}
        converted = self._operation(op, indexed, document)
        return {} if converted is None else {op: converted}

    def _by_type(self, op: str, calls: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
        """AddAccess/RemoveAccess dispatch on the call name = the entitlement type."""
        ctx = self.ctx
        groups: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
        for index, call in calls:
            groups.setdefault(str(call.get("name") or ""), []).append((index, call))
        result: dict[str, Any] = {}
        for type_name, members in groups.items():
            label = f"{op}.{type_name}"
            first = f"call[{members[0][0]}].name"
            if type_name in ctx.refused_types:
                ctx.refuse(
                    first, f"the entitlement type {type_name!r} was refused; {label} dropped"
                )
                self.refused.append(label)
                continue
            if self.types_known and type_name not in ctx.entitlement_types:
                known = ", ".join(sorted(ctx.entitlement_types)) or "none"
                ctx.refuse(
                    first, f"no entitlement type {type_name!r} (types: {known}); {label} dropped"
                )
                self.refused.append(label)
                continue
            converted = self._operation(label, members, {})
            if converted is not None:
                result[type_name] = converted
        return result

    def _operation(
        self,
        label: str,
        calls: Sequence[tuple[int, Mapping[str, Any]]],
        document: Mapping[str, Any],
    ) -> list[dict[str, Any]] | None:
        ctx = self.ctx
        unit = Unit()
        names = self._names(calls)
        try:
            out = [self._call(i, c, names, unit) for i, c in calls]
            self._captures(out, names, document)
        except Refused as exc:
            ctx.refused(exc, f"the operation {label}")
            self.refused.append(label)
            return None
        ctx.keep(unit)
        self.converted.append(label)
        return out

    def _names(self, calls: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, str]:
        """Saviynt call name → our unique identifier (same-name calls are numbered, as in EIC)."""
        names: dict[str, str] = {}
        used: set[str] = set()
        for index, call in calls:
            raw = str(call.get("name") or f"call{index + 1}")
            name = identifier(raw)
            if name in used:
                number = 1
                while f"{name}{number}" in used:
                    number += 1
                self.ctx.warn(
                    f"call[{index}].name",
                    f"call name {raw!r} used twice: this one is {name}{number}",
                )
                name = f"{name}{number}"
            used.add(name)
            names.setdefault(raw, name)
            names[f"#{index}"] = name
        return names

    def _call(
        self, index: int, call: Mapping[str, Any], names: Mapping[str, str], unit: Unit
    ) -> dict[str, Any]:
        ctx = self.ctx
        path = f"call[{index}]"
        check_keys(
            ctx,
            call,
            path,
            _CALL_KEYS,
            {"SuccessResponses": "successResponses", "UnsuccessResponses": "unsuccessResponses"},
        )
        translator = Translator(
            ctx, "provisioning", {k: v for k, v in names.items() if not k.startswith("#")}
        )
        profile = str(call.get("connection") or "acctAuth")
        ctx.profiles[profile] = ctx.profiles.get(profile, 0) + 1
        method = str(call.get("httpMethod") or "").upper()
        if method in _WITH_BODY:
            ctx.warn(f"{path}.httpMethod", f"{method} sent as {_WITH_BODY[method]} with a body")
            method = _WITH_BODY[method]
        if method not in _METHODS:
            raise Refused(f"{path}.httpMethod", f"unsupported HTTP method {method or '(none)'!r}")
        raw_url = call.get("url")
        if not isinstance(raw_url, str):
            raise Refused(f"{path}.url", "no url")
        url, query = self.urls.convert(
            raw_url, translator=translator, unit=unit, path=f"{path}.url"
        )
        out: dict[str, Any] = {
            "name": names[f"#{index}"],
            "_profile": profile,
            "method": method,
            "url": url,
        }
        if query:
            out["query"] = query
        sent = headers(
            ctx,
            call.get("httpHeaders"),
            path=f"{path}.httpHeaders",
            profile=profile,
            translator=translator,
            unit=unit,
        )
        if sent:
            out["headers"] = sent
        out.update(self._body(call, path=path, translator=translator, unit=unit))
        success = call.get("successResponses", call.get("SuccessResponses"))
        if success is not None:
            out["success"] = self._rule(success, f"{path}.successResponses")
        failure = call.get("unsuccessResponses", call.get("UnsuccessResponses"))
        if failure is not None:
            out["failure"] = self._rule(failure, f"{path}.unsuccessResponses")
        if "showResponse" in call:
            ctx.info(f"{path}.showResponse", "not needed: every call is journaled")
        if "privilegeEntitlement" in call:
            ctx.warn(
                f"{path}.privilegeEntitlement",
                "privilege attributes are not supported: dropped (the request attributes render empty)",
            )
        translator.flush(path)
        return out

    def _body(
        self, call: Mapping[str, Any], *, path: str, translator: Translator, unit: Unit
    ) -> dict[str, Any]:
        """`body` (and `body_format`) from httpParams and httpContentType."""
        content_type = str(call.get("httpContentType") or "application/json").lower()
        params = call.get("httpParams")
        form = "form" in content_type
        if "json" not in content_type and not form:
            self.ctx.warn(f"{path}.httpContentType", f"content type {content_type!r} sent as JSON")
        out: dict[str, Any] = {"body_format": "form"} if form else {}
        where = f"{path}.httpParams"
        if isinstance(params, Mapping):
            out["body"] = form_fields(params, translator=translator, unit=unit, path=where)
        elif isinstance(params, str) and params.strip():
            if form and not params.lstrip().startswith(("{", "[")):
                out["body"] = self._form_text(params, translator, unit, where)
            else:
                out["body"] = body(params, translator=translator, unit=unit, path=where)
        return out

    def _form_text(
        self, text: str, translator: Translator, unit: Unit, path: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for pair in text.split("&"):
            key, _, value = pair.partition("=")
            fields[key] = template(value, translator=translator, unit=unit, path=f"{path}.{key}")
        return fields

    def _rule(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise Refused(path, "a response rule must be an object", str(value))
        rule: dict[str, Any] = {}
        codes = value.get("statusCode")
        if codes is not None:
            items = codes if isinstance(codes, list) else [codes]
            statuses = sorted(
                {int(c) for c in items if str(c).strip().isdigit() and 100 <= int(c) <= 599}
            )
            if len(statuses) != len(items):
                self.ctx.warn(path, "duplicate or invalid status codes dropped", str(codes))
            if statuses:
                rule["statuses"] = statuses
        others = [(k, v) for k, v in value.items() if k != "statusCode"]
        if others:
            key, expected = others[0]
            rule["body_match"] = {"path": record_path(self.ctx, key, path), "equals": expected}
            self.ctx.info(path, f"body match: {key} equals {expected!r}")
            if len(others) > 1:
                self.ctx.warn(path, f"only the first body match is kept ({key})")
        if not rule:
            raise Refused(path, "an empty response rule", str(value))
        return rule

    def _captures(
        self, calls: list[dict[str, Any]], names: Mapping[str, str], document: Mapping[str, Any]
    ) -> None:
        """accountIdPath / responseColsToPropsMap → captures on the call they read."""
        wanted: list[tuple[str, str, str]] = []
        id_path = document.get("accountIdPath")
        if isinstance(id_path, str) and id_path:
            wanted.append(("account_id", id_path, "accountIdPath"))
        columns = document.get("responseColsToPropsMap")
        if isinstance(columns, Mapping):
            for column, spec in columns.items():
                if isinstance(spec, str):
                    name = identifier(column)
                    name = f"{name}_value" if name in ("status", "body") else name
                    wanted.append(
                        (name, spec.split("~#~")[0].strip(), f"responseColsToPropsMap.{column}")
                    )
        by_name = {call["name"]: call for call in calls}
        for capture, source, where in wanted:
            match = re.fullmatch(r"(\w+)\.message(?:\.(.+))?", source)
            target = by_name.get(names.get(match.group(1), "")) if match else None
            if match is None or target is None:
                self.ctx.warn(
                    where, "not a `<call>.message.<path>` of this operation: ignored", source
                )
                continue
            target.setdefault("capture", {})[capture] = record_path(
                self.ctx, match.group(2) or "", where
            )
        if wanted:
            self.ctx.info(
                "accountIdPath"
                if isinstance(id_path, str) and id_path
                else "responseColsToPropsMap",
                "response values are captured (response.<call>.<name>); the engine keeps the account's email as its id",
            )
