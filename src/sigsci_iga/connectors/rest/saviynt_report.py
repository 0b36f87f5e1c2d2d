"""Findings of a Saviynt conversion and the state shared while converting one connection.

Every finding names the Saviynt attribute, the JSON path inside that attribute and, where there is
one, the offending text, so a refusal can be found in the export without guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "refusal"]

#: Saviynt attribute → our provisioning operation.
OPERATIONS: dict[str, str] = {
    "CreateAccountJSON": "create_account",
    "UpdateAccountJSON": "update_account",
    "EnableAccountJSON": "enable_account",
    "DisableAccountJSON": "disable_account",
    "RemoveAccountJSON": "remove_account",
    "AddAccessJSON": "add_access",
    "RemoveAccessJSON": "remove_access",
}
IMPORT_ATTRIBUTE = "ImportAccountEntJSON"
#: Attributes the engine has no counterpart for: reported when they are not empty.
UNSUPPORTED_ATTRIBUTES = frozenset(
    {
        "ImportUserJSON",
        "UpdateUserJSON",
        "ChangePassJSON",
        "TicketStatusJSON",
        "CreateTicketJSON",
        "ENDPOINTS_FILTER",
        "PasswdPolicyJSON",
        "AddFFIDAccessJSON",
        "RemoveFFIDAccessJSON",
        "MODIFYUSERDATAJSON",
        "SendOtpJSON",
        "ValidateOtpJSON",
        "PAM_CONFIG",
    }
)
KNOWN_ATTRIBUTES = frozenset(
    {
        "ConnectionJSON",
        IMPORT_ATTRIBUTE,
        "STATUS_THRESHOLD_CONFIG",
        "ConfigJSON",
        *OPERATIONS,
        *UNSUPPORTED_ATTRIBUTES,
    }
)


@dataclass(frozen=True)
class Finding:
    """One remark about the conversion: what, where (attribute + JSON path) and the text."""

    severity: Severity
    attribute: str
    path: str
    message: str
    text: str | None = None

    @property
    def location(self) -> str:
        return f"{self.attribute}: {self.path}" if self.path else self.attribute

    def __str__(self) -> str:
        shown = f" in {_short(self.text)}" if self.text is not None else ""
        return f"{self.location}: {self.message}{shown}"


def _short(text: str, width: int = 160) -> str:
    flat = re.sub(r"\s+", " ", text)
    return repr(flat if len(flat) <= width else flat[: width - 3] + "...")


class Refused(Exception):  # a control-flow signal ("drop this unit"), hence the name
    """Raised inside one unit (op, call, field, link): the unit is dropped and reported."""

    def __init__(self, path: str, message: str, text: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.text = text


@dataclass
class Unit:
    """Something converted as a whole; its `${...}` count is credited only if it is kept."""

    expressions: int = 0


@dataclass
class AttributeOutcome:
    """What happened to one Saviynt attribute."""

    name: str
    status: Literal["converted", "partial", "refused", "unsupported", "ignored"] = "converted"
    #: Short descriptions of what it became (`create_account (1 call)`).
    produced: list[str] = field(default_factory=list)


@dataclass
class Context:
    """Mutable state of one conversion: findings, parameters, origins, counters."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    attribute: str = ""
    #: Declared parameters (our package `parameters` block), by name.
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Literal origins (`https://host`) seen in absolute URLs, in order of first use, with counts.
    origins: dict[str, int] = field(default_factory=dict)
    #: Parameters that stand for a whole origin (`@URL@`), in order of first use.
    origin_params: list[str] = field(default_factory=list)
    #: A URL was relative or had an empty/placeholder host: base_url must be supplied.
    needs_base_url: bool = False
    #: Auth profile names (Saviynt `connection` values) and how many calls use each.
    profiles: dict[str, int] = field(default_factory=dict)
    #: Header templates that carried `${access_token}` (name → value), per profile.
    token_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    #: `${...}` credited to units that were kept.
    converted_expressions: int = 0
    #: identity attribute (`customproperty4`) → our binding (`account.role`).
    identity_map: dict[str, str] = field(default_factory=dict)
    #: Account column (Saviynt, lower-case) → source record path, from the import.
    account_columns: dict[str, str] = field(default_factory=dict)
    #: Entitlement types that were converted, and those refused (their ops are dropped too).
    entitlement_types: set[str] = field(default_factory=set)
    refused_types: set[str] = field(default_factory=set)
    outcomes: dict[str, AttributeOutcome] = field(default_factory=dict)

    def add(self, severity: Severity, path: str, message: str, text: str | None = None) -> None:
        finding = Finding(severity, self.attribute, path, message, text)
        if finding not in self.findings:
            self.findings.append(finding)

    def info(self, path: str, message: str, text: str | None = None) -> None:
        self.add("info", path, message, text)

    def warn(self, path: str, message: str, text: str | None = None) -> None:
        self.add("warning", path, message, text)

    def refuse(self, path: str, message: str, text: str | None = None) -> None:
        self.add("refusal", path, message, text)

    def refused(self, error: Refused, what: str) -> None:
        """Record a dropped unit."""
        self.refuse(error.path, f"{error.message}; {what} dropped", error.text)

    def keep(self, unit: Unit) -> None:
        self.converted_expressions += unit.expressions

    @contextmanager
    def in_attribute(self, name: str) -> Iterator[AttributeOutcome]:
        previous = self.attribute
        self.attribute = name
        outcome = self.outcomes.setdefault(name, AttributeOutcome(name))
        try:
            yield outcome
        finally:
            self.attribute = previous

    def parameter(self, name: str, **spec: Any) -> str:
        """Declare a parameter once (first declaration wins); returns its name."""
        self.parameters.setdefault(name, spec)
        return name

    def placeholder(self, marker: str, path: str = "") -> str:
        """`@CORPNAME@` → the required parameter `corpname` (declared on first use)."""
        name = re.sub(r"[^a-z0-9_]", "_", marker.strip("@").lower()) or "value"
        if name[0].isdigit():
            name = "p_" + name
        if name not in self.parameters:
            self.warn(
                path,
                f"placeholder {marker} becomes the required parameter {name!r} (${{params.{name}}})",
            )
        return self.parameter(
            name,
            description=f"Replaces the Saviynt placeholder {marker} (edited by hand in EIC).",
            required=True,
        )
