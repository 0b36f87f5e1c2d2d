"""Connection packages: validate, describe, render an operation's calls, convert Saviynt exports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sigsci_iga.app.inputs import check_choice
from sigsci_iga.connectors.base import (
    AddToSite,
    DeleteAccount,
    Invite,
    PlannedCall,
    RemoveFromSite,
    SetRole,
    Step,
)
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.rest.saviynt import ConversionResult, import_saviynt
from sigsci_iga.connectors.rest.spec import package_json_schema
from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.model import EntitlementType
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.errors import ConfigError, InvalidInputError
from sigsci_iga.files import check_text_file


@dataclass(frozen=True)
class PackageSummary:
    name: str
    version: str
    calls: int
    parameters: int
    operations: tuple[str, ...]


def validate_package(file: Path) -> PackageSummary:
    """Load a package (schema, templates, expressions); raises naming the file and JSON path."""
    package = load_package(_readable(file, "package file"))
    spec = package.spec
    operations: tuple[str, ...] = ()
    if spec.provisioning is not None:
        dumped = spec.provisioning.model_dump(exclude_none=True)
        operations = tuple(sorted(name for name, value in dumped.items() if value))
    return PackageSummary(
        spec.name, spec.version, len(package.requests), len(spec.parameters), operations
    )


def package_schema() -> dict[str, Any]:
    """The JSON Schema of the package format."""
    return package_json_schema()


def convert_saviynt(file: Path, output: Path | None = None) -> ConversionResult:
    """Convert a Saviynt REST connection into a package, with a located report of findings."""
    _readable(file, "Saviynt export")
    if output is not None and output.exists() and not output.is_file():
        # Writing into a FIFO would wait for a reader; into a directory, fail obscurely.
        raise InvalidInputError(f"output {output} exists and is not a regular file")
    return import_saviynt(file, output)


def _readable(file: Path, what: str) -> Path:
    """The loaders open what they are given as it is: a FIFO would block them forever, and
    bytes that are not UTF-8 end them with a traceback."""
    return check_text_file(file, what)


def _step(
    operation: Operation,
    account: str,
    entitlements: Sequence[str],
    entitlement_type: str,
    role: str | None,
) -> Step:
    # A package's accounts need not be email addresses; the key is only trimmed and lower-cased.
    email = email_key(account)
    if not email:
        raise InvalidInputError("--account is empty")
    site_type = entitlement_type == EntitlementType.SITE.value
    if operation is Operation.CREATE_ACCOUNT:
        return Invite(email, role or "user", tuple(entitlements))
    if operation is Operation.UPDATE_ACCOUNT:
        if not role:
            raise InvalidInputError("update-account needs --role")
        return SetRole(email, role)
    if operation is Operation.ADD_ACCESS and role and not entitlements:
        return SetRole(email, role)
    if operation in (Operation.ADD_ACCESS, Operation.REMOVE_ACCESS):
        if not site_type or len(entitlements) != 1:
            extra = " (or --role for add-access)" if operation is Operation.ADD_ACCESS else ""
            raise InvalidInputError(f"{operation.label} needs one --entitlement SITE{extra}")
        if operation is Operation.ADD_ACCESS:
            return AddToSite(entitlements[0], (email,))
        return RemoveFromSite(entitlements[0], email)
    return DeleteAccount(email)


def render_operation(
    file: Path,
    operation: Operation,
    *,
    account: str,
    entitlements: Sequence[str] = (),
    entitlement_type: str = EntitlementType.SITE.value,
    role: str | None = None,
    params: Mapping[str, str] | None = None,
) -> tuple[PlannedCall, ...]:
    """The exact requests an operation would send, secrets masked; nothing is sent."""
    package = load_package(_readable(file, "package file"))
    # Secrets are masked in the output anyway; a missing one must not stop a preview.
    env = dict(os.environ)
    for parameter in package.spec.parameters.values():
        if parameter.secret and parameter.env and not env.get(parameter.env):
            env[parameter.env] = "unset-secret"
    bound = package.bind(dict(params or {}), env=env)
    step = _step(operation, account, entitlements, entitlement_type, role)
    return RestConnector(bound).describe_all(step)


#: Where the shipped packages live inside the installed `sigsci_iga` package.
SHIPPED_DIRECTORY = "packages_data"


@dataclass(frozen=True)
class ShippedPackage:
    """A package that ships with sigsci-iga: `signalsciences`, or `saviynt/NAME` converted."""

    name: str
    version: str
    description: str
    path: Path


def _shipped_root() -> Path:
    # An installed package (wheel or editable) is a directory on disk; a zip import is not
    # supported, and finding no directory is reported rather than shown as "no packages".
    root = Path(str(resources.files("sigsci_iga").joinpath(SHIPPED_DIRECTORY)))
    if not root.is_dir():
        raise ConfigError(f"the shipped packages are missing from this installation ({root})")
    return root


def shipped_packages() -> list[ShippedPackage]:
    """Every shipped package, loaded and checked, in name order."""
    root = _shipped_root()
    found = []
    for file in sorted(root.rglob("*.yaml")):
        spec = load_package(file).spec
        name = file.relative_to(root).with_suffix("").as_posix()
        found.append(ShippedPackage(name, spec.version, spec.description, file))
    return found


def shipped_package(name: str) -> ShippedPackage:
    """A shipped package by its name (`saviynt/airtable`, or `airtable` where that is unique)."""
    packages = shipped_packages()
    exact = [p for p in packages if p.name == name]
    matches = exact or [p for p in packages if p.name.rsplit("/", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        choices = ", ".join(p.name for p in matches)
        raise InvalidInputError(f"package name {name!r} is ambiguous: {choices}")
    check_choice(name, (p.name for p in packages), "shipped package")
    raise AssertionError("unreachable: check_choice refuses a name it does not know")
