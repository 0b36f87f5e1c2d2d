"""ImportAccountEntJSON → our `import` block: calls, fields, status, entitlement types, links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from sigsci_iga.connectors.rest.saviynt_common import check_keys, headers, record_path
from sigsci_iga.connectors.rest.saviynt_exprs import (
    Scope,
    Translator,
    UrlConverter,
    body,
    expression,
    scan,
    strip_completes,
)
from sigsci_iga.connectors.rest.saviynt_report import Context, Refused, Unit

_TOP_KEYS: Final = ("accountParams", "entitlementParams", "acctEntParams")
_IGNORED_TOP: Final = ("entOwnerParams", "entMappingParams", "globalSettings")
_ACCOUNT_PARAMS: Final = (
    "connection",
    "processingType",
    "statusAndThresholdConfig",
    "call",
    "acctEntMappings",
    "doNotChangeIfFailed",
    "createUsers",
    "adminName",
    "includeExistingInActiveAccounts",
)
_CALL_KEYS: Final = (
    "callOrder",
    "stageNumber",
    "http",
    "listField",
    "keyField",
    "colsToPropsMap",
    "pagination",
    "successResponses",
    "unsuccessResponses",
    "statusConfig",
    "disableDeletedAccounts",
    "disableDeletedEntitlements",
    "makeProcessingStatus",
    "connection",
    "inputParams",
    "processingType",
    "entKeyField",
    "acctIdPath",
    "acctKeyField",
    "entIdPath",
)
_PAGING_KINDS: Final = ("nextUrl", "page", "offset")
_HTTP_KEYS: Final = ("url", "httpMethod", "httpHeaders", "httpContentType", "httpParams")
_STATUS_KEYS: Final = (
    "statusColumn",
    "activeStatus",
    "inactiveStatus",
    "inactivateAccountsNotInFile",
    "accountsNotInImportAction",
    "deleteLinks",
    "deleteAccEntForActiveAccounts",
    "correlateInactiveAccounts",
    "accountThresholdValue",
    "inactivateEntsNotInFeed",
    "entThresholdValue",
    "accountEntThresholdValue",
    "lockedStatusColumn",
    "lockedStatusMapping",
)
_STATUS_ALIASES: Final = {"status": "activeStatus", "active": "activeStatus"}
#: A record path no API returns: with active value "" every account reads as active.
NO_STATUS_PATH: Final = "$no_status_column"
#: Our account targets the identity's mirrored custom properties may stand for.
_TASK_ATTRIBUTES: Final = ("role", "name", "email")


def _ordered_calls(calls: Any, path: str) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(calls, Mapping):
        raise Refused(path, "`call` must be an object of call1, call2...", str(calls))
    items = [(k, v) for k, v in calls.items() if isinstance(v, Mapping)]
    return sorted(items, key=lambda kv: (_order(kv[1].get("callOrder")), kv[0]))


def _order(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _column_spec(ctx: Context, spec: str, path: str) -> tuple[str, str]:
    """`path~#~type` → (source, type); a missing type reads as char."""
    if "~#~" not in spec:
        if not spec.startswith("STORE#"):
            ctx.warn(path, "no `~#~type` after the source: char assumed", spec)
        return spec, "char"
    source, _, kind = spec.rpartition("~#~")
    if kind != kind.strip():
        ctx.warn(path, "spaces around the column type trimmed", spec)
    return source, kind.strip().lower()


class ImportConverter:
    """Converts one ImportAccountEntJSON value."""

    def __init__(
        self, ctx: Context, urls: UrlConverter, status_config: Mapping[str, Any] | None
    ) -> None:
        self.ctx = ctx
        self.urls = urls
        #: STATUS_THRESHOLD_CONFIG, which wins over the inline block when it is given.
        self.status_config = status_config
        self.key_column = "accountid"
        self.key_path = ""
        self.account_sources: dict[str, str] = {}

    # -- entry point -----------------------------------------------------------------------------

    def convert(self, document: Mapping[str, Any]) -> dict[str, Any] | None:
        ctx = self.ctx
        check_keys(ctx, document, "", (*_TOP_KEYS, *_IGNORED_TOP))
        for key in _IGNORED_TOP:
            if document.get(key):
                ctx.refuse(key, f"{key} has no equivalent in the engine; not converted")
        params = document.get("accountParams")
        if not isinstance(params, Mapping):
            ctx.refuse("accountParams", "no accountParams: nothing imports accounts")
            return None
        try:
            accounts = self._accounts(params)
        except Refused as exc:
            ctx.refused(exc, "the account import (and with it the package's import)")
            return None
        types, type_calls = self._entitlement_types(document.get("entitlementParams"))
        links = self._links(document, params, types)
        result: dict[str, Any] = {"accounts": accounts, "entitlement_types": types}
        site = self._site_type(types, type_calls)
        if site is not None:
            result["site_entitlement_type"] = site
        if links:
            result["links"] = links
        result["thresholds"] = self._thresholds(params)
        return result

    # -- calls -----------------------------------------------------------------------------------

    def call(
        self,
        call: Mapping[str, Any],
        *,
        path: str,
        scope: Scope,
        profile: str,
        unit: Unit,
        paging: tuple[Any, str] | None = None,
    ) -> dict[str, Any]:
        """One Saviynt import call as our ImportCall (a dict), with its pagination."""
        ctx = self.ctx
        check_keys(ctx, call, path, _CALL_KEYS, {k: "pagination" for k in _PAGING_KINDS})
        http = call.get("http")
        if not isinstance(http, Mapping) or not isinstance(http.get("url"), str):
            raise Refused(f"{path}.http", "the call has no http.url", str(http))
        check_keys(ctx, http, f"{path}.http", _HTTP_KEYS)
        profile = str(call.get("connection") or profile)
        ctx.profiles[profile] = ctx.profiles.get(profile, 0) + 1
        translator = Translator(ctx, scope)
        out, query = self._request(http, path=f"{path}.http", translator=translator, unit=unit)
        out["_profile"] = profile
        sent = headers(
            ctx,
            http.get("httpHeaders"),
            path=f"{path}.http.httpHeaders",
            profile=profile,
            translator=translator,
            unit=unit,
        )
        if sent:
            out["headers"] = sent
        pagination = self.pagination(call, path=path, unit=unit, outer=paging)
        if pagination is not None:
            for name in (
                pagination.get(k)
                for k in ("page_param", "size_param", "offset_param", "limit_param", "cursor_param")
            ):
                if name is not None and name in query:
                    ctx.warn(
                        f"{path}.http.url",
                        f"paging parameter {name!r} removed from the URL query (the pagination sets it)",
                    )
                    del query[name]
            out["pagination"] = pagination
        if query:
            out["query"] = query
        list_field = call.get("listField")
        if isinstance(list_field, str):
            out["records_path"] = record_path(ctx, list_field, f"{path}.listField")
        for name in ("successResponses", "unsuccessResponses"):
            if name in call:
                ctx.info(
                    f"{path}.{name}",
                    "import calls fail on any non-2xx answer; the list is not needed",
                )
        return out

    def _request(
        self, http: Mapping[str, Any], *, path: str, translator: Translator, unit: Unit
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Method, URL and body of an import call; the URL's query comes back separately."""
        method = str(http.get("httpMethod") or "GET").upper()
        if method == "GETWITHBODY":
            self.ctx.warn(f"{path}.httpMethod", "GETWITHBODY sent as GET with the body")
            method = "GET"
        if method not in ("GET", "POST"):
            raise Refused(f"{path}.httpMethod", f"import calls use GET or POST, not {method}")
        url, query = self.urls.convert(
            http["url"], translator=translator, unit=unit, path=f"{path}.url"
        )
        out: dict[str, Any] = {"method": method, "url": url}
        params = http.get("httpParams")
        if isinstance(params, str) and params.strip():
            out["body"] = body(params, translator=translator, unit=unit, path=f"{path}.httpParams")
        if "form" in str(http.get("httpContentType") or ""):
            out["body_format"] = "form"
        return out, query

    # -- pagination ------------------------------------------------------------------------------

    def pagination(
        self,
        call: Mapping[str, Any],
        *,
        path: str,
        unit: Unit,
        outer: tuple[Any, str] | None = None,
    ) -> dict[str, Any] | None:
        """The call's pagination (also accepted misplaced on the call or one level up)."""
        ctx = self.ctx
        block = call.get("pagination")
        where = f"{path}.pagination"
        if block is None:
            misplaced = {k: call[k] for k in _PAGING_KINDS if k in call}
            if misplaced:
                block = misplaced
                where = path
            elif outer is not None:
                block, where = outer
        if block is None:
            return None
        if not isinstance(block, Mapping):
            ctx.refuse(where, "pagination must be an object; the call reads one page only")
            return None
        kinds = [k for k in block if k in _PAGING_KINDS]
        check_keys(ctx, block, where, _PAGING_KINDS)
        if len(kinds) != 1:
            ctx.refuse(
                where, "give exactly one of nextUrl, page and offset; the call reads one page only"
            )
            return None
        kind = kinds[0]
        spec = block[kind]
        local = Unit()
        try:
            result = self._paging_kind(kind, spec, f"{where}.{kind}", local)
        except Refused as exc:
            ctx.refused(exc, "the pagination (the call reads one page only)")
            return None
        unit.expressions += local.expressions
        return result

    def _paging_kind(self, kind: str, spec: Any, path: str, unit: Unit) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise Refused(path, f"{kind} must be an object", str(spec))
        if kind == "nextUrl":
            return self._next_url(spec, path, unit)
        result = self._counted(kind, spec, path)
        result["stop"] = ["short_page", *self._total(spec, path, result)]
        if "pageRecordCount" in spec:
            self.ctx.info(
                f"{path}.pageRecordCount",
                "not needed: a page shorter than the page size ends the listing",
            )
        return result

    def _total(self, spec: Mapping[str, Any], path: str, result: dict[str, Any]) -> list[str]:
        """The `total` stop rule from totalCountPath, when it is a body path."""
        total = spec.get("totalCountPath")
        if not isinstance(total, str) or not total.strip():
            return []
        where = f"{path}.totalCountPath"
        if re.fullmatch(r"\s*\d+\s*", total):
            self.ctx.warn(
                where,
                f"a literal total ({total}) is a silent ceiling: ignored (short pages end the listing)",
            )
            return []
        if total.strip().startswith("headers"):
            self.ctx.warn(
                where,
                "a total read from a header is not supported: ignored (short pages end the listing)",
            )
            return []
        result["total_path"] = record_path(self.ctx, strip_completes(total), where)
        return ["total"]

    def _counted(self, kind: str, spec: Mapping[str, Any], path: str) -> dict[str, Any]:
        ctx = self.ctx
        if kind == "page":
            check_keys(
                ctx,
                spec,
                path,
                (
                    "pageSizeParam",
                    "pageSize",
                    "pageNumberParam",
                    "firstPageNumber",
                    "pageRecordCount",
                    "totalCountPath",
                ),
            )
            size_param, number_param = spec.get("pageSizeParam"), spec.get("pageNumberParam")
            size = spec.get("pageSize")
            start = spec.get("firstPageNumber", 1)
        else:
            check_keys(
                ctx, spec, path, ("offsetParam", "batchParam", "batchSize", "totalCountPath")
            )
            size_param, number_param = spec.get("batchParam"), spec.get("offsetParam")
            size, start = spec.get("batchSize"), 0
        if not isinstance(size, int) or size < 1:
            raise Refused(path, "no positive page size", str(spec))
        if not isinstance(size_param, str) or not isinstance(number_param, str):
            raise Refused(path, "the paging parameter names are missing", str(spec))
        if not isinstance(start, int) or start < 0:
            start = 1 if kind == "page" else 0
        result: dict[str, Any]
        if kind == "page" and number_param.lower() == "startindex":
            ctx.warn(
                path,
                "pageNumberParam startIndex is a SCIM item index, not a page number: converted to offset paging from 1",
            )
            result = {
                "type": "offset",
                "offset_param": number_param,
                "limit_param": size_param,
                "size": size,
                "start": max(start, 1),
            }
        elif kind == "page":
            result = {
                "type": "page",
                "page_param": number_param,
                "size_param": size_param,
                "size": size,
                "start": start,
            }
        else:
            result = {
                "type": "offset",
                "offset_param": number_param,
                "limit_param": size_param,
                "size": size,
                "start": 0,
            }
        return result

    def _next_url(self, spec: Mapping[str, Any], path: str, unit: Unit) -> dict[str, Any]:
        ctx = self.ctx
        check_keys(ctx, spec, path, ("nextUrlPath",))
        text = spec.get("nextUrlPath")
        where = f"{path}.nextUrlPath"
        if not isinstance(text, str) or not text.strip():
            raise Refused(where, "no nextUrlPath", str(text))
        try:
            pieces = list(scan(text))
        except ValueError as exc:
            raise Refused(where, str(exc), text) from None
        expressions = [p for p, _, is_expr in pieces if is_expr]
        if not expressions:
            return {"type": "next_url", "path": record_path(ctx, strip_completes(text), where)}
        if len(pieces) != 1:
            raise Refused(where, "text around the next-URL expression is not supported", text)
        code = expressions[0]
        unit.expressions += 1
        if re.search(r"\bheaders\s*\??\.\s*Link\b", code):
            ctx.warn(
                where,
                "the expression parses the Link header: converted to link_header paging",
                text,
            )
            return {"type": "link_header"}
        plain = re.fullmatch(
            r"\s*response\s*\??\.\s*completeResponseMap\s*\??\.\s*([\w.?]+)\s*", code
        )
        if plain:
            return {
                "type": "next_url",
                "path": record_path(ctx, strip_completes(plain.group(1)), where),
            }
        match = re.fullmatch(
            r"\s*\(?\s*response\??\.completeResponseMap\??\.(?P<a>[\w.?]+?)\s*==\s*null\s*\)?\s*\?\s*null\s*:"
            r"\s*'(?P<lit>[^']*)'\s*\+\s*response\??\.completeResponseMap\??\.(?P<b>[\w.?]+?)(?P<tail>(?:\s*\??\.\s*\w+\(.*\))?)\s*",
            code,
            re.DOTALL,
        )
        if match is None or match.group("a").replace("?", "") != match.group("b").replace("?", ""):
            raise Refused(
                where,
                "unsupported next-URL expression (only a body path, a Link header or `x == null ? null : '<url>' + x`)",
                text,
            )
        field = record_path(ctx, match.group("a").replace("?", ""), where)
        if match.group("tail"):
            ctx.warn(
                where,
                f"{match.group('tail').strip()} ignored: the engine encodes query values itself",
                text,
            )
        prefix = match.group("lit")
        if prefix.endswith("="):
            param = re.split(r"[?&]", prefix[:-1])[-1]
            ctx.warn(
                where,
                f"the next URL is built from a token: converted to cursor paging ({param}=<{field}>) on the call's own URL",
                text,
            )
            return {"type": "cursor", "cursor_path": field, "cursor_param": param}
        ctx.warn(
            where,
            f"the URL prefix {prefix!r} is dropped: the next link at {field} is followed on the base URL",
            text,
        )
        return {"type": "next_url", "path": field}

    # -- accounts ----------------------------------------------------------------------------

    def _accounts(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ctx = self.ctx
        check_keys(
            ctx,
            params,
            "accountParams",
            _ACCOUNT_PARAMS,
            {k: "call.<name>.pagination" for k in (*_PAGING_KINDS, "pagination")},
        )
        profile = str(params.get("connection") or "acctAuth")
        outer = None
        for key in (*_PAGING_KINDS, "pagination"):
            if key in params:
                block = params[key] if key == "pagination" else {key: params[key]}
                outer = (block, f"accountParams.{key}")
        calls: list[dict[str, Any]] = []
        columns: dict[str, tuple[str, str, str]] = {}
        key_column = None
        for name, call in _ordered_calls(params.get("call"), "accountParams.call"):
            path = f"accountParams.call.{name}"
            inputs = call.get("inputParams")
            if isinstance(inputs, Mapping) and inputs.get("dependentCall"):
                ctx.refuse(
                    f"{path}.inputParams",
                    "a call per account (dependent call) has no equivalent; the call dropped",
                    str(dict(inputs)),
                )
                continue
            unit = Unit()
            try:
                calls.append(
                    self.call(
                        call, path=path, scope="import", profile=profile, unit=unit, paging=outer
                    )
                )
            except Refused as exc:
                ctx.refused(exc, f"the account call {name}")
                continue
            ctx.keep(unit)
            if key_column is None and isinstance(call.get("keyField"), str):
                key_column = call["keyField"]
            cols = call.get("colsToPropsMap")
            if isinstance(cols, Mapping):
                for column, spec in cols.items():
                    if isinstance(spec, str):
                        columns[column] = (spec, f"{path}.colsToPropsMap.{column}", name)
        if not calls:
            raise Refused("accountParams.call", "no account call could be converted")
        key_column = key_column or "accountID"
        self.key_column = key_column.lower()
        fields = self._fields(columns)
        if "email" not in fields:
            raise Refused(
                "accountParams.call",
                f"the key column {key_column!r} is not mapped (or was refused)",
            )
        return {
            "calls": calls,
            "key_field": self.key_path,
            "fields": fields,
            "status": self._status(params),
        }

    def _fields(self, columns: Mapping[str, tuple[str, str, str]]) -> dict[str, Any]:
        ctx = self.ctx
        fields: dict[str, Any] = {}
        for column, (spec, path, _) in columns.items():
            unit = Unit()
            try:
                target, mapping = self._field(column, spec, path, unit)
            except Refused as exc:
                ctx.refused(exc, f"the column {column}")
                continue
            if target is None:
                continue
            if target in fields:
                ctx.warn(path, f"{target} is mapped twice; the later mapping wins")
            fields[target] = mapping
            ctx.keep(unit)
        for column, source in self.account_sources.items():
            last = re.sub(r"\[\d+\]$", "", source.rsplit(".", 1)[-1])
            if column.startswith("customproperty") and last in _TASK_ATTRIBUTES:
                binding = f"account.{last}"
                if column not in ctx.identity_map:
                    ctx.identity_map[column] = binding
                    ctx.info(
                        columns_path(columns, column),
                        f"the account's {column} holds the target's {last!r}: provisioning reads "
                        f"the identity's user.{column} as {binding} (the task's {last})",
                    )
        return fields

    def _field(
        self, column: str, spec: str, path: str, unit: Unit
    ) -> tuple[str | None, dict[str, Any]]:
        ctx = self.ctx
        source, kind = _column_spec(ctx, spec, path)
        lowered = column.lower()
        if source.startswith("STORE#"):
            ctx.info(path, "the Saviynt link store column is replaced by `links`")
            return None, {}
        if column != lowered and lowered.startswith("customproperty"):
            ctx.warn(path, f"column {column!r} read as {lowered!r}")
        if lowered == self.key_column:
            target = "email"
        elif lowered == "name":
            target = "name"
        else:
            target = "extra." + re.sub(r"\W", "_", column)
        mapping: dict[str, Any]
        if source.startswith("#CONST#"):
            mapping = self._constant(source[len("#CONST#") :], path, unit)
        else:
            mapping = {"path": record_path(ctx, source, path)}
            self.account_sources[lowered] = mapping["path"]
        if target == "email":
            if "path" not in mapping:
                raise Refused(path, "the account key must come from a record path", spec)
            self.key_path = mapping["path"]
            if "mail" not in source.lower():
                ctx.warn(
                    path,
                    f"the engine keys accounts by email; the key {column} comes from {source!r}, "
                    "which may not be an email (correlation by email will not match)",
                )
        if target == "name":
            mapping["default"] = ""
        mapping.update(self._type(kind, target, path))
        return target, mapping

    def _constant(self, rest: str, path: str, unit: Unit) -> dict[str, Any]:
        """`#CONST#text` is a constant; `#CONST#${expr}` an expression over the record."""
        pieces = list(_scan_or_refuse(rest, path))
        if len(pieces) == 1 and pieces[0][2]:
            translator = Translator(self.ctx, "record")
            return {
                "expression": expression(pieces[0][0], translator=translator, unit=unit, path=path)
            }
        if not any(is_expr for _, _, is_expr in pieces):
            return {"constant": rest}
        raise Refused(path, "#CONST# mixes text and ${...}", "#CONST#" + rest)

    def _type(self, kind: str, target: str, path: str) -> dict[str, Any]:
        if kind == "char":
            # EIC stores the text form of any value; our `string` refuses objects, `json` keeps them.
            return {} if target in ("email", "name") else {"type": "json"}
        if kind in ("int", "bool"):
            return {"type": kind}
        if kind == "date":
            self.ctx.warn(
                path, "date column: ISO 8601 assumed (set date_format if the API differs)"
            )
            return {"type": "datetime"}
        if kind == "epochdate":
            self.ctx.warn(
                path, "epochdate read as milliseconds since the epoch (unit undocumented)"
            )
            return {"type": "datetime", "date_format": "epoch_ms"}
        self.ctx.warn(path, f"unknown column type {kind!r}: kept as JSON")
        return {"type": "json"}

    def _status(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ctx = self.ctx
        config = self.status_config
        where = "STATUS_THRESHOLD_CONFIG.statusAndThresholdConfig"
        if config is None:
            config = params.get("statusAndThresholdConfig")
            where = "accountParams.statusAndThresholdConfig"
        elif params.get("statusAndThresholdConfig"):
            ctx.info(
                "accountParams.statusAndThresholdConfig",
                "STATUS_THRESHOLD_CONFIG is given and wins over this block",
            )
        config = config if isinstance(config, Mapping) else {}
        check_keys(ctx, config, where, _STATUS_KEYS, _STATUS_ALIASES)
        values = config.get("activeStatus")
        for alias in _STATUS_ALIASES:
            if values is None and alias in config:
                values = config[alias]
        column = config.get("statusColumn")
        source = self.account_sources.get(str(column).lower()) if column else None
        if column and source is None:
            ctx.warn(
                f"{where}.statusColumn",
                f"status column {column!r} is not mapped from a record path",
            )
        if source is not None and isinstance(values, list) and values:
            kinds = {type(v).__name__ for v in values}
            if len(kinds) > 1:
                ctx.warn(
                    f"{where}.activeStatus",
                    f"active values mix types ({', '.join(sorted(kinds))}); compared as text, case-insensitively",
                    str(values),
                )
            ctx.warn(
                where,
                "accounts whose status is not active import as `pending` (the engine has no inactive state)",
            )
            return {
                "path": source,
                "active_values": [v if isinstance(v, str | int | bool) else str(v) for v in values],
            }
        ctx.warn(where, "no status column with active values: every account imports as active")
        return {"path": NO_STATUS_PATH, "active_values": [""]}

    def _thresholds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        config = self.status_config or params.get("statusAndThresholdConfig") or {}
        result: dict[str, Any] = {}
        for key, target in (
            ("accountThresholdValue", "accounts_suspended"),
            ("entThresholdValue", "sites_inactivated"),
            ("accountEntThresholdValue", "links_removed"),
        ):
            value = config.get(key) if isinstance(config, Mapping) else None
            if isinstance(value, int) and not isinstance(value, bool):
                result[target] = {"absolute": value, "percent": None}
        flags = [
            f"{k}={config[k]}"
            for k in (
                "inactivateAccountsNotInFile",
                "accountsNotInImportAction",
                "deleteLinks",
                "deleteAccEntForActiveAccounts",
                "correlateInactiveAccounts",
            )
            if isinstance(config, Mapping) and k in config
        ]
        if flags:
            self.ctx.info(
                "accountParams.statusAndThresholdConfig",
                f"{', '.join(flags)}: not package options; the engine always suspends missing "
                "accounts, inactivates missing entitlements and removes stale links, behind the "
                "thresholds (defaults 10 and 10 % where the export sets none)",
            )
        return result

    # -- entitlement types -------------------------------------------------------------------

    def _entitlement_types(self, params: Any) -> tuple[dict[str, Any], dict[str, int]]:
        ctx = self.ctx
        types: dict[str, Any] = {}
        orders: dict[str, int] = {}
        if not isinstance(params, Mapping):
            return types, orders
        check_keys(
            ctx,
            params,
            "entitlementParams",
            ("connection", "processingType", "doNotChangeIfFailed", "entTypes"),
        )
        profile = str(params.get("connection") or "acctAuth")
        ent_types = params.get("entTypes") or {}
        ordered = sorted(
            ((k, v) for k, v in ent_types.items() if isinstance(v, Mapping)),
            key=lambda kv: (_order(kv[1].get("entTypeOrder")), kv[0]),
        )
        for name, spec in ordered:
            path = f"entitlementParams.entTypes.{name}"
            unit = Unit()
            try:
                types[name] = self._entitlement_type(name, spec, path, profile, unit)
            except Refused as exc:
                ctx.refused(
                    exc, f"the entitlement type {name} (and its links and access operations)"
                )
                ctx.refused_types.add(name)
                continue
            ctx.keep(unit)
            ctx.entitlement_types.add(name)
            if types[name].get("calls"):
                orders[name] = _order(spec.get("entTypeOrder"))
        return types, orders

    def _entitlement_type(
        self, name: str, spec: Mapping[str, Any], path: str, profile: str, unit: Unit
    ) -> dict[str, Any]:
        ctx = self.ctx
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise Refused(path, f"entitlement type name {name!r} is not an identifier")
        check_keys(
            ctx,
            spec,
            path,
            (
                "entTypeOrder",
                "entTypeLabels",
                "call",
                "acctEntMappings",
                "pagination",
                "entMappings",
            ),
        )
        if spec.get("entTypeLabels"):
            ctx.info(f"{path}.entTypeLabels", "UI labels are not kept")
        if spec.get("entMappings"):
            ctx.refuse(
                f"{path}.entMappings",
                "entitlement hierarchies (entMappings) have no equivalent; not converted",
            )
        outer = None
        if "pagination" in spec:
            ctx.warn(
                f"{path}.pagination",
                "pagination on the entitlement type instead of its call: applied to its calls",
            )
            outer = (spec["pagination"], f"{path}.pagination")
        calls = spec.get("call") or {}
        if not calls:
            ctx.info(path, "no call: the values come only from account links")
            return {}
        result: dict[str, Any] = {"calls": []}
        for call_name, call in _ordered_calls(calls, f"{path}.call"):
            where = f"{path}.call.{call_name}"
            inputs = call.get("inputParams")
            if isinstance(inputs, Mapping) and inputs.get("entitlementname"):
                raise Refused(
                    f"{where}.inputParams",
                    f"a call per {inputs['entitlementname']} entitlement (dependent call) has no equivalent",
                    str(dict(inputs)),
                )
            result["calls"].append(
                self.call(
                    call, path=where, scope="import", profile=profile, unit=unit, paging=outer
                )
            )
            cols = call.get("colsToPropsMap")
            if "value_field" in result or not isinstance(cols, Mapping):
                continue
            key = str(call.get("keyField") or "entitlementID")
            value_spec = next((v for k, v in cols.items() if k.lower() == key.lower()), None)
            if not isinstance(value_spec, str):
                raise Refused(f"{where}.colsToPropsMap", f"the key column {key!r} is not mapped")
            result["value_field"] = self._value_path(
                value_spec, f"{where}.colsToPropsMap.{key}", unit
            )
            display = next((v for k, v in cols.items() if k.lower() == "entitlement_value"), None)
            if isinstance(display, str) and not display.startswith("#CONST#"):
                result["display_name_field"] = record_path(
                    ctx,
                    _column_spec(ctx, display, f"{where}.colsToPropsMap.entitlement_value")[0],
                    f"{where}.colsToPropsMap.entitlement_value",
                )
            dropped = sorted(k for k in cols if k.lower() not in (key.lower(), "entitlement_value"))
            if dropped:
                ctx.info(
                    f"{where}.colsToPropsMap",
                    f"entitlement columns not kept (the engine stores value and display name only): {', '.join(dropped)}",
                )
        if "value_field" not in result:
            raise Refused(f"{path}.call", "no call maps the entitlement's key column")
        return result

    def _value_path(self, spec: str, path: str, unit: Unit) -> str:
        source, _ = _column_spec(self.ctx, spec, path)
        if not source.startswith("#CONST#"):
            return record_path(self.ctx, source, path)
        pieces = list(_scan_or_refuse(source[len("#CONST#") :], path))
        if len(pieces) == 1 and pieces[0][2]:
            code = expression(
                pieces[0][0], translator=Translator(self.ctx, "record"), unit=unit, path=path
            )
            plain = re.fullmatch(r"record\s*\??\.\s*([\w.\[\]?]+)", code)
            if plain:
                self.ctx.info(
                    path,
                    f"#CONST# expression {pieces[0][0].strip()!r} is the plain path {plain.group(1)}",
                )
                return record_path(self.ctx, plain.group(1).replace("?", ""), path)
        raise Refused(
            path,
            "an entitlement value computed by an expression is not supported (value_field is a path)",
            spec,
        )

    def _site_type(self, types: Mapping[str, Any], orders: Mapping[str, int]) -> str | None:
        listed = sorted(orders, key=lambda n: (orders[n], n))
        if not listed:
            return None
        chosen = next((n for n in listed if n.lower() == "site"), listed[0])
        self.ctx.info(
            "entitlementParams.entTypes",
            f"{chosen} plays the engine's Site role (sites, site links, AddToSite/RemoveFromSite)"
            + (
                f"; {', '.join(n for n in listed if n != chosen)} are imported by the package only"
                if len(listed) > 1
                else ""
            ),
        )
        return chosen

    # -- links -------------------------------------------------------------------------------

    def _links(
        self, document: Mapping[str, Any], params: Mapping[str, Any], types: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = self.ctx
        acct_ent = document.get("acctEntParams")
        links: list[dict[str, Any]] = []
        if not isinstance(acct_ent, Mapping) or not acct_ent:
            if types:
                ctx.warn(
                    "acctEntParams",
                    "no account-entitlement links are configured: none are imported",
                )
            return links
        check_keys(ctx, acct_ent, "acctEntParams", ("connection", "processingType", "entTypes"))
        profile = str(acct_ent.get("connection") or "acctAuth")
        default_kind = acct_ent.get("processingType")
        mappings: Mapping[str, Any] = _mapping(params.get("acctEntMappings"))
        from_account: set[str] = set(mappings) if default_kind == "acctToEntMapping" else set()
        ent_types = _mapping(acct_ent.get("entTypes"))
        for type_name, spec in ent_types.items():
            calls = spec.get("call") if isinstance(spec, Mapping) else None
            for call_name, call in _ordered_calls(
                calls or {}, f"acctEntParams.entTypes.{type_name}.call"
            ):
                path = f"acctEntParams.entTypes.{type_name}.call.{call_name}"
                kind = call.get("processingType") or default_kind
                if kind == "acctToEntMapping":
                    from_account.add(type_name)
                    continue
                unit = Unit()
                try:
                    link = self._link_call(kind, type_name, call, path, profile, types, unit)
                except Refused as exc:
                    ctx.refused(exc, f"the {type_name} links")
                    continue
                links.append(link)
                ctx.keep(unit)
        if default_kind == "entToAcctMapping":
            for type_name in types:
                ctx.refuse(
                    f"entitlementParams.entTypes.{type_name}.acctEntMappings",
                    "links listed in entitlement records (entToAcctMapping) have no equivalent link kind; not converted",
                )
        for type_name in sorted(from_account):
            mapping = mappings.get(type_name)
            path = f"accountParams.acctEntMappings.{type_name}"
            try:
                links.append(self._from_account(type_name, mapping, path, types))
            except Refused as exc:
                ctx.refused(exc, f"the {type_name} links")
        for type_name in set(mappings) - from_account:
            ctx.warn(
                f"accountParams.acctEntMappings.{type_name}",
                "not used: no acctToEntMapping processing is configured for it",
            )
        return links

    def _link_call(
        self,
        kind: Any,
        type_name: str,
        call: Mapping[str, Any],
        path: str,
        profile: str,
        types: Mapping[str, Any],
        unit: Unit,
    ) -> dict[str, Any]:
        if type_name in self.ctx.refused_types:
            raise Refused(path, f"the entitlement type {type_name} was refused")
        if type_name not in types:
            raise Refused(path, f"no entitlement type {type_name!r}")
        if kind != "httpEntToAcct":
            raise Refused(
                f"{path}.processingType",
                f"link processing {kind!r} has no equivalent (httpEntToAcct and acctToEntMapping are converted)",
            )
        converted = self.call(
            call, path=path, scope="link", profile=str(call.get("connection") or profile), unit=unit
        )
        records = converted.pop("records_path", "")
        member = call.get("acctIdPath")
        if not isinstance(member, str) or not member:
            raise Refused(f"{path}.acctIdPath", "no acctIdPath (the member's account id)")
        acct_key = str(call.get("acctKeyField") or "accountID")
        if acct_key.lower() != self.key_column:
            self.ctx.warn(
                f"{path}.acctKeyField",
                f"members are matched against the account key ({self.key_column}), not {acct_key}",
            )
        ent_key = str(call.get("entKeyField") or "entitlementID")
        if ent_key.lower() != "entitlementid":
            self.ctx.warn(
                f"{path}.entKeyField",
                f"${{id}} is the entitlement's value (its key column), not {ent_key}",
            )
        return {
            "type": "per_entitlement_call",
            "entitlement_type": type_name,
            "call": converted,
            "records_path": records,
            "account_key_path": record_path(self.ctx, member, f"{path}.acctIdPath"),
        }

    def _from_account(
        self, type_name: str, mapping: Any, path: str, types: Mapping[str, Any]
    ) -> dict[str, Any]:
        ctx = self.ctx
        if type_name in ctx.refused_types:
            raise Refused(path, f"the entitlement type {type_name} was refused")
        if type_name not in types:
            raise Refused(
                path,
                f"no entitlement type {type_name!r} (types: {', '.join(sorted(types)) or 'none'})",
            )
        if not isinstance(mapping, Mapping):
            raise Refused(path, "no acctEntMappings entry for the type")
        check_keys(
            ctx,
            mapping,
            path,
            ("listPath", "idPath", "keyField", "importAsEntitlement", "colsToPropsMap"),
        )
        list_path = str(mapping.get("listPath") or "")
        id_path = str(mapping.get("idPath") or "")
        if mapping.get("importAsEntitlement"):
            ctx.info(
                path,
                "importAsEntitlement: values found only in accounts still count as values of the type",
            )
        if str(mapping.get("keyField") or "entitlementID").lower() != "entitlementid":
            ctx.warn(
                f"{path}.keyField",
                f"the account lists {mapping.get('keyField')}, but links match the type's value ({types[type_name].get('value_field', 'the value')})",
            )
        link: dict[str, Any] = {"type": "from_account_field", "entitlement_type": type_name}
        if list_path:
            link["path"] = record_path(ctx, list_path, f"{path}.listPath")
            if id_path:
                link["value_path"] = record_path(ctx, id_path, f"{path}.idPath")
        elif id_path:
            link["path"] = record_path(ctx, id_path, f"{path}.idPath")
        else:
            raise Refused(path, "neither listPath nor idPath")
        return link


def columns_path(columns: Mapping[str, tuple[str, str, str]], column: str) -> str:
    for name, (_, path, _) in columns.items():
        if name.lower() == column:
            return path
    return "accountParams.call"


def _scan_or_refuse(text: str, path: str) -> list[tuple[str, int, bool]]:
    try:
        return list(scan(text))
    except ValueError as exc:
        raise Refused(path, str(exc), text) from None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
