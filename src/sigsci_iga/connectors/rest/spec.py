"""The native REST connection package format: pydantic models, validated strictly.

A package describes one target API as data: parameters (secrets come from the environment),
the connection and its auth profiles, how to import accounts, entitlements and links, and the
calls each provisioning operation sends. Every model refuses unknown keys, so a misspelt option
is an error instead of a silently ignored setting. Templates (`${...}`) are kept as text here and
compiled by the loader, which knows the JSON path of each one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

# -- record paths ------------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"""\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]""")

PathPart = str | int


def parse_path(text: str) -> tuple[PathPart, ...]:
    """Split `a.b[0]['c.d']` into ('a', 'b', 0, 'c.d'); "" is the value itself."""
    parts: list[PathPart] = []
    position = 0
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None or (position == 0 and text.startswith(".")):
            raise ValueError(f"invalid path {text!r} at character {position + 1}")
        name, index, quoted = match.groups()
        if name is not None:
            if position > 0 and not text.startswith(".", position):
                raise ValueError(f"invalid path {text!r}: expected '.' at character {position + 1}")
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted)
        position = match.end()
    return tuple(parts)


_MISSING: Any = object()


def get_path(value: Any, parts: tuple[PathPart, ...], default: Any = None) -> Any:
    """Follow parsed path parts through dicts and lists; `default` when any step is missing."""
    current = value
    for part in parts:
        if isinstance(part, int):
            if not isinstance(current, list) or not -len(current) <= part < len(current):
                return default
            current = current[part]
        else:
            if not isinstance(current, dict) or part not in current:
                return default
            current = current[part]
    return current


def _check_path(text: str) -> str:
    parse_path(text)
    return text


#: A path into a JSON record: dotted names, `[index]` and `['key with dots']`.
RecordPath = Annotated[str, AfterValidator(_check_path)]
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def _not_a_boolean(value: Any) -> Any:
    # pydantic would read `true` as 1: a count or a duration written as a boolean is a mistake.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")  # noqa: TRY004 - pydantic locates only ValueError
    return value


#: A whole number, and a finite number (rates, durations, percentages): never booleans.
Count = Annotated[int, BeforeValidator(_not_a_boolean)]
Finite = Annotated[float, BeforeValidator(_not_a_boolean), Field(allow_inf_nan=False)]
Status = Annotated[Count, Field(ge=100, le=599)]


class Strict(BaseModel):
    """Base of every package model: unknown keys are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- parameters --------------------------------------------------------------------------------

#: Environment variables a non-secret parameter may read: the settings the native connector reads
#: in the clear, and a namespace of the operator's own. Any other variable may hold a secret (a
#: database URL, a cloud key) that a non-secret parameter would show, so reading it needs
#: `secret: true`, which masks the value everywhere.
CLEAR_VARIABLES = frozenset({"SIGSCI_CORP", "SIGSCI_EMAIL", "SIGSCI_API_URL"})
CLEAR_VARIABLE_PREFIX = "SIGSCI_PARAM_"


class Parameter(Strict):
    """A value the operator supplies when binding the package (`${params.<name>}`)."""

    description: str = ""
    required: bool = False
    default: str | None = None
    #: Secret values come only from the environment variable `env` and are masked everywhere.
    secret: bool = False
    env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")

    @field_validator("env")
    @classmethod
    def _clear_variables_only(cls, env: str | None, info: ValidationInfo) -> str | None:
        secret = info.data.get("secret", False)
        if env is None or secret or env in CLEAR_VARIABLES or env.startswith(CLEAR_VARIABLE_PREFIX):
            return env
        allowed = ", ".join(sorted(CLEAR_VARIABLES))
        raise ValueError(
            f"a parameter that is not secret may read only {allowed} or "
            f"{CLEAR_VARIABLE_PREFIX}* variables; declare it `secret: true` to read {env} "
            "(its value is then masked everywhere)"
        )

    @model_validator(mode="after")
    def _secret_rules(self) -> Parameter:
        if self.secret and self.env is None:
            raise ValueError("a secret parameter needs `env`, the variable it is read from")
        if self.secret and self.default is not None:
            raise ValueError("a secret parameter cannot have a default (secrets are not stored)")
        return self


# -- requests ----------------------------------------------------------------------------------


class RequestSpec(Strict):
    """One HTTP call; every string is a template. `url` is relative to `base_url` or absolute on
    its host; the query goes in `query`, never in the URL."""

    method: HttpMethod = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    #: A JSON template (object, list or scalar) rendered into parsed JSON, never by text splicing.
    body: Any = None
    body_format: Literal["json", "form"] = "json"
    #: Name of the auth profile; default `connection.default_auth`.
    auth: str | None = None

    @model_validator(mode="after")
    def _url_rules(self) -> RequestSpec:
        if self.url != self.url.strip() or not self.url:
            raise ValueError("url must not be empty or have leading or trailing spaces")
        if "?" in self.url or "#" in self.url:
            raise ValueError("put query parameters in `query`, not in the url")
        if re.search(r"@[A-Z_]+@|<[A-Za-z_]+>", self.url):
            raise ValueError("url holds an unresolved placeholder; use ${params.<name>}")
        return self


# -- auth profiles -----------------------------------------------------------------------------


class StaticHeadersAuth(Strict):
    """Fixed headers on every call, e.g. `x-api-user`/`x-api-token` from parameters."""

    type: Literal["static_headers"]
    headers: dict[str, str] = Field(min_length=1)


class BasicAuth(Strict):
    """HTTP Basic credentials from templates."""

    type: Literal["basic"]
    username: str
    password: str


class TokenCallAuth(Strict):
    """Call a token endpoint, take the token from a body path or a header, send it on calls."""

    type: Literal["token_call"]
    call: RequestSpec
    token_path: RecordPath | None = None
    token_header: str | None = None
    header_name: str = "Authorization"
    prefix: str = "Bearer"
    refresh_on_statuses: list[Status] = Field(default_factory=lambda: [401])
    #: Substrings of the server's error message that mean "token expired or refused".
    refresh_on_messages: list[str] = Field(default_factory=list)
    max_refresh_tries: Count = Field(default=3, ge=0, le=10)

    @model_validator(mode="after")
    def _one_source(self) -> TokenCallAuth:
        if (self.token_path is None) == (self.token_header is None):
            raise ValueError("give exactly one of token_path and token_header")
        return self


class SessionLoginAuth(Strict):
    """A login call (form or JSON) whose answer holds a session token sent as a Bearer token."""

    type: Literal["session_login"]
    call: RequestSpec
    token_path: RecordPath = "token"  # noqa: S105  # a body path, not a credential
    refresh_on_statuses: list[Status] = Field(default_factory=lambda: [401])
    max_refresh_tries: Count = Field(default=1, ge=0, le=10)


AuthProfile = Annotated[
    StaticHeadersAuth | BasicAuth | TokenCallAuth | SessionLoginAuth,
    Field(discriminator="type"),
]


class Connection(Strict):
    """Where the target is, how to authenticate, and how hard to push it."""

    #: Template over `params`; absolute http(s) URL. Every call must stay on its scheme and host.
    base_url: str
    auth: dict[Identifier, AuthProfile] = Field(min_length=1)
    default_auth: str | None = None
    rate_limit_per_minute: Finite = Field(default=600.0, gt=0)
    max_concurrency: Count = Field(default=4, ge=1, le=64)
    timeout_seconds: Finite = Field(default=30.0, gt=0)
    #: Reads (GET) are retried on 429/5xx/transport errors this many times in all.
    read_attempts: Count = Field(default=5, ge=1, le=20)
    #: Zero waits are allowed (retry at once); negative, NaN and infinite ones are not.
    retry_wait_initial_seconds: Finite = Field(default=0.5, ge=0)
    retry_wait_max_seconds: Finite = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _default_auth(self) -> Connection:
        if self.default_auth is None and len(self.auth) > 1:
            raise ValueError("several auth profiles: name one in default_auth")
        if self.default_auth is not None and self.default_auth not in self.auth:
            raise ValueError(f"default_auth {self.default_auth!r} is not an auth profile")
        return self

    @property
    def default_profile(self) -> str:
        return self.default_auth or next(iter(self.auth))


# -- pagination --------------------------------------------------------------------------------

StopRule = Literal["short_page", "empty_page", "total", "empty_next"]
_SHORT_PAGE: tuple[StopRule, ...] = ("short_page",)


class _PagingGuard(Strict):
    #: A hard ceiling; reaching it is an error (the list would be truncated), not a silent stop.
    max_pages: Count = Field(default=1000, ge=1, le=1_000_000)


class NoPagination(_PagingGuard):
    type: Literal["none"]


class _Counted(_PagingGuard):
    size: Count = Field(ge=1)
    #: Any rule ends the listing; an empty page always does.
    stop: list[StopRule] = Field(default_factory=lambda: list(_SHORT_PAGE), min_length=1)
    #: Body path of the total number of records (for `stop: total`).
    total_path: RecordPath | None = None
    #: Body path of a "next" value whose emptiness ends the listing (for `stop: empty_next`).
    next_path: RecordPath | None = None

    @model_validator(mode="after")
    def _stop_paths(self) -> _Counted:
        if "total" in self.stop and self.total_path is None:
            raise ValueError("stop rule `total` needs total_path")
        if "empty_next" in self.stop and self.next_path is None:
            raise ValueError("stop rule `empty_next` needs next_path")
        return self


class PagePagination(_Counted):
    """`page_param` counts pages from `start`; `size_param` asks for `size` records each."""

    type: Literal["page"]
    page_param: str
    size_param: str
    start: Count = Field(default=1, ge=0)


class OffsetPagination(_Counted):
    """`offset_param` counts records from `start`; `limit_param` asks for `size` records each."""

    type: Literal["offset"]
    offset_param: str
    limit_param: str
    start: Count = Field(default=0, ge=0)


class NextUrlPagination(_PagingGuard):
    """The body names the next page's URL (relative, or absolute on base_url's host)."""

    type: Literal["next_url"]
    path: RecordPath


class LinkHeaderPagination(_PagingGuard):
    """RFC 8288 `Link: <...>; rel="next"` names the next page."""

    type: Literal["link_header"]


class CursorPagination(_PagingGuard):
    """The body holds an opaque cursor sent back as `cursor_param`; empty or null ends."""

    type: Literal["cursor"]
    cursor_path: RecordPath
    cursor_param: str


Pagination = Annotated[
    NoPagination
    | PagePagination
    | OffsetPagination
    | NextUrlPagination
    | LinkHeaderPagination
    | CursorPagination,
    Field(discriminator="type"),
]


class ImportCall(RequestSpec):
    """A read call: its records sit at `records_path` (default: the block's records_path)."""

    pagination: Pagination = Field(default_factory=lambda: NoPagination(type="none"))
    records_path: RecordPath | None = None

    @model_validator(mode="after")
    def _paging_params_not_in_query(self) -> ImportCall:
        names = {
            "page": ("page_param", "size_param"),
            "offset": ("offset_param", "limit_param"),
            "cursor": ("cursor_param",),
        }.get(self.pagination.type, ())
        for attribute in names:
            param = getattr(self.pagination, attribute)
            if param in self.query:
                raise ValueError(f"query sets {param!r}, which the pagination controls")
        return self


class ReadCall(RequestSpec):
    """A single-record read (re-read one account or site); not found means gone."""

    record_path: RecordPath = ""


# -- import mapping ----------------------------------------------------------------------------

FieldType = Literal["string", "int", "bool", "datetime", "list", "json"]
ACCOUNT_TARGETS = ("email", "name", "role", "mfa_enabled", "created")


class FieldMapping(Strict):
    """One target value from a record path, an expression over `record`/`params`, or a constant."""

    path: RecordPath | None = None
    expression: str | None = None
    constant: Any = None
    type: FieldType = "string"
    #: strptime format, or `epoch` / `epoch_ms`; default: ISO 8601.
    date_format: str | None = None
    #: Used when the source is missing or null.
    default: Any = None
    #: Source values (compared case-insensitively) replaced before conversion.
    value_map: dict[str, Any] = Field(default_factory=dict)
    #: Leave the target out entirely when the value is null (for `extra.*`).
    omit_if_null: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> FieldMapping:
        given = [n for n in ("path", "expression", "constant") if n in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of path, expression and constant")
        if self.date_format is not None and self.type != "datetime":
            raise ValueError("date_format applies to type datetime only")
        return self


def _check_target(name: str) -> str:
    if name in ACCOUNT_TARGETS:
        return name
    if name.startswith("extra.") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name[6:]):
        return name
    if name == "status":
        raise ValueError("map status with accounts.status (active and pending values)")
    raise ValueError(f"unknown target {name!r}: use {', '.join(ACCOUNT_TARGETS)} or extra.<name>")


AccountTarget = Annotated[str, AfterValidator(_check_target)]
Scalar = str | int | bool


class StatusRule(Strict):
    """Which source values mean an active account and which a pending invitee."""

    path: RecordPath
    active_values: list[Scalar] = Field(min_length=1)
    #: None: every value that is not active means pending. A list: other values are an error.
    pending_values: list[Scalar] | None = None
    case_sensitive: bool = False


class AccountsImport(Strict):
    calls: list[ImportCall] = Field(min_length=1)
    records_path: RecordPath = ""
    #: Record path that identifies an account (records from several calls merge on it).
    key_field: RecordPath
    fields: dict[AccountTarget, FieldMapping]
    status: StatusRule
    #: Optional re-read of one account (`${account.email}`, `${id}`); else the list is read.
    read_account: ReadCall | None = None

    @model_validator(mode="after")
    def _email_mapped(self) -> AccountsImport:
        if "email" not in self.fields:
            raise ValueError("fields must map `email` (accounts are keyed by email)")
        return self


class EntitlementTypeSpec(Strict):
    """Values from calls, a constant list, or (neither) only from the account links."""

    calls: list[ImportCall] = Field(default_factory=list)
    values: list[str] = Field(default_factory=list)
    records_path: RecordPath = ""
    value_field: RecordPath | None = None
    display_name_field: RecordPath | None = None
    #: Optional re-read of one value (`${entitlementValue.value}`); else the list is read.
    read: ReadCall | None = None

    @model_validator(mode="after")
    def _source(self) -> EntitlementTypeSpec:
        if self.calls and self.values:
            raise ValueError("give calls or values, not both")
        if self.calls and self.value_field is None:
            raise ValueError("calls need value_field (the record path of the value)")
        return self


class FromAccountFieldLink(Strict):
    """Each account record lists its values (`path`), or a mapped target holds it (`field`)."""

    type: Literal["from_account_field"]
    entitlement_type: str
    path: RecordPath | None = None
    #: Path inside each listed object; absent when the list holds plain values.
    value_path: RecordPath | None = None
    field: Literal["role"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FromAccountFieldLink:
        if (self.path is None) == (self.field is None):
            raise ValueError("give exactly one of path and field")
        return self


class PerEntitlementCallLink(Strict):
    """One call per entitlement value (`${entitlementValue.value}`) lists its members."""

    type: Literal["per_entitlement_call"]
    entitlement_type: str
    call: ImportCall
    records_path: RecordPath = ""
    #: Path of the member's account key inside each record, matched against key_field.
    account_key_path: RecordPath


class PerAccountCallLink(Strict):
    """One call per account (`${account.key}`, `${account.email}`) lists its values."""

    type: Literal["per_account_call"]
    entitlement_type: str
    call: ImportCall
    records_path: RecordPath = ""
    value_path: RecordPath = ""


Link = Annotated[
    FromAccountFieldLink | PerEntitlementCallLink | PerAccountCallLink,
    Field(discriminator="type"),
]


class Limit(Strict):
    """Hold a run that removes more than `absolute` items or `percent` of them (null: off)."""

    absolute: Count | None = Field(default=10, ge=0)
    percent: Finite | None = Field(default=10.0, ge=0, le=100)


class ThresholdsSpec(Strict):
    accounts_suspended: Limit = Field(default_factory=Limit)
    links_removed: Limit = Field(default_factory=Limit)
    sites_inactivated: Limit = Field(default_factory=Limit)


class ImportSpec(Strict):
    accounts: AccountsImport
    entitlement_types: dict[Identifier, EntitlementTypeSpec] = Field(default_factory=dict)
    #: The entitlement type that plays the engine's Site role (sites, site links).
    site_entitlement_type: str | None = None
    #: The entitlement type that plays the corp role (single-valued per account).
    role_entitlement_type: str | None = None
    links: list[Link] = Field(default_factory=list)
    thresholds: ThresholdsSpec = Field(default_factory=ThresholdsSpec)

    @model_validator(mode="after")
    def _types_exist(self) -> ImportSpec:
        known = set(self.entitlement_types)
        named = [self.site_entitlement_type, self.role_entitlement_type]
        named += [link.entitlement_type for link in self.links]
        for name in named:
            if name is not None and name not in known:
                raise ValueError(f"entitlement type {name!r} is not in entitlement_types")
        site = self.site_entitlement_type
        if site is not None and not self.entitlement_types[site].calls:
            raise ValueError("the site entitlement type needs calls that list its values")
        for link in self.links:
            if (
                isinstance(link, FromAccountFieldLink)
                and link.field == "role"
                and link.entitlement_type != self.role_entitlement_type
            ):
                raise ValueError("a link from the role field must be the role entitlement type")
        return self


# -- provisioning ------------------------------------------------------------------------------


class BodyMatch(Strict):
    """A check on the response body at `path`: equal to a value, containing text, or present."""

    path: RecordPath
    equals: Any = None
    contains: str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_check(self) -> BodyMatch:
        given = [n for n in ("equals", "contains", "exists") if n in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, contains and exists")
        return self


class ResponseRule(Strict):
    """Matches when the status is listed (if any are) and the body matches (if a check is set)."""

    statuses: list[Status] = Field(default_factory=list)
    body_match: BodyMatch | None = None

    @model_validator(mode="after")
    def _something(self) -> ResponseRule:
        if not self.statuses and self.body_match is None:
            raise ValueError("give statuses, body_match or both")
        return self


class ProvisioningCall(RequestSpec):
    """One call of an operation; `response.<name>` holds its status, body and captures after."""

    name: Identifier
    #: Default: any 2xx is success; other statuses map through the shared error rules.
    success: ResponseRule | None = None
    failure: ResponseRule | None = None
    #: capture name → response body path; bound as `response.<call>.<capture>`.
    capture: dict[Identifier, RecordPath] = Field(default_factory=dict)
    #: Expression; the call is skipped when it is false.
    when: str | None = None

    @model_validator(mode="after")
    def _capture_names(self) -> ProvisioningCall:
        clash = {"status", "body"} & set(self.capture)
        if clash:
            raise ValueError(f"capture name {sorted(clash)[0]!r} is reserved")
        return self


def _unique_names(calls: list[ProvisioningCall]) -> list[ProvisioningCall]:
    names = [c.name for c in calls]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"call name {duplicated[0]!r} is used twice in one operation")
    return calls


#: An operation: calls sent in order; a failing call stops the operation.
Operation = Annotated[list[ProvisioningCall], Field(min_length=1), AfterValidator(_unique_names)]


class ProvisioningSpec(Strict):
    create_account: Operation | None = None
    update_account: Operation | None = None
    enable_account: Operation | None = None
    disable_account: Operation | None = None
    remove_account: Operation | None = None
    add_access: dict[str, Operation] = Field(default_factory=dict)
    remove_access: dict[str, Operation] = Field(default_factory=dict)


# -- the package -------------------------------------------------------------------------------


class Package(Strict):
    """A whole connection package (YAML or JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    connection: Connection
    import_: ImportSpec = Field(alias="import")
    provisioning: ProvisioningSpec = Field(default_factory=ProvisioningSpec)

    @model_validator(mode="after")
    def _references(self) -> Package:
        types = set(self.import_.entitlement_types)
        for kind in ("add_access", "remove_access"):
            for name in getattr(self.provisioning, kind):
                if name not in types:
                    raise ValueError(f"provisioning.{kind}.{name}: no such entitlement type")
        for where, request in iter_requests(self):
            if request.auth is not None and request.auth not in self.connection.auth:
                raise ValueError(f"{where}: auth profile {request.auth!r} is not defined")
        return self


def iter_requests(package: Package) -> list[tuple[str, RequestSpec]]:
    """Every request of the package with its JSON path (for checks and compilation)."""
    found: list[tuple[str, RequestSpec]] = []
    for name, profile in package.connection.auth.items():
        if isinstance(profile, TokenCallAuth | SessionLoginAuth):
            found.append((f"connection.auth.{name}.call", profile.call))
    accounts = package.import_.accounts
    found += [(f"import.accounts.calls[{i}]", c) for i, c in enumerate(accounts.calls)]
    if accounts.read_account is not None:
        found.append(("import.accounts.read_account", accounts.read_account))
    for type_name, spec in package.import_.entitlement_types.items():
        base = f"import.entitlement_types.{type_name}"
        found += [(f"{base}.calls[{i}]", c) for i, c in enumerate(spec.calls)]
        if spec.read is not None:
            found.append((f"{base}.read", spec.read))
    for index, link in enumerate(package.import_.links):
        if isinstance(link, PerEntitlementCallLink | PerAccountCallLink):
            found.append((f"import.links[{index}].call", link.call))
    for op_path, calls in iter_operations(package.provisioning):
        found += [(f"{op_path}[{i}]", c) for i, c in enumerate(calls)]
    return found


def iter_operations(spec: ProvisioningSpec) -> list[tuple[str, list[ProvisioningCall]]]:
    """Every provisioning operation with its JSON path."""
    found: list[tuple[str, list[ProvisioningCall]]] = []
    for name in (
        "create_account",
        "update_account",
        "enable_account",
        "disable_account",
        "remove_account",
    ):
        calls = getattr(spec, name)
        if calls is not None:
            found.append((f"provisioning.{name}", calls))
    for kind in ("add_access", "remove_access"):
        for type_name, calls in getattr(spec, kind).items():
            found.append((f"provisioning.{kind}.{type_name}", calls))
    return found


def package_json_schema() -> dict[str, Any]:
    """The JSON Schema of the package format (for editors and external validation)."""
    schema = Package.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sigsci-iga REST connection package"
    return schema
