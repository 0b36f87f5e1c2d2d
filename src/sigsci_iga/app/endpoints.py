"""Endpoints: which corp a command acts on, registering, removing and checking them."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sigsci_iga.app.context import AppContext
from sigsci_iga.connectors.base import ConnectionReport
from sigsci_iga.domain.emails import normalize_email
from sigsci_iga.domain.model import CorpRole
from sigsci_iga.domain.secrets import parse_secret_ref
from sigsci_iga.domain.text import check_name
from sigsci_iga.errors import (
    AuthError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RecordNotFoundError,
    SigsciIgaError,
    TransientError,
    UnexpectedResponseError,
)
from sigsci_iga.files import check_text_file
from sigsci_iga.settings import Settings, check_api_url, native_api_url
from sigsci_iga.store import Checkpoint, EndpointInfo


def endpoint_name(ctx: AppContext, explicit: str | None) -> str:
    """The endpoint a command is about: the one named, else the configured corp."""
    if explicit is not None:
        # An empty name is a mistake, not a request for the default endpoint.
        return check_name(explicit, "endpoint name")
    if ctx.settings.corp:
        return ctx.settings.corp
    raise ConfigError("no endpoint: pass --endpoint or set SIGSCI_CORP")


def list_endpoints(ctx: AppContext, *, include_retired: bool = False) -> list[EndpointInfo]:
    return ctx.repository.endpoints.list(include_retired=include_retired)


def get_endpoint(ctx: AppContext, name: str) -> EndpointInfo:
    """A registered, usable endpoint; a retired one is reported as such."""
    info = ctx.repository.endpoints.get(name)
    if info.retired_at is not None:
        raise RecordNotFoundError(
            f"endpoint {name!r} was removed on {info.retired_at:%Y-%m-%d}; its journal is kept"
        )
    return info


def resolve_endpoint(ctx: AppContext, explicit: str | None) -> EndpointInfo:
    """The endpoint a command acts on, registered from the single-corp settings on first use.

    Only the endpoint named after the settings' corp is registered so; another name must have
    been registered (`register_native`, `register_rest`). An endpoint that carries its own
    credentials (or runs a package) is used as registered. One that the settings describe (no
    stored credentials) follows the settings' API URL and email, but never changes corp; a new
    caller is used at once but stored only once an import shows it is not an observer
    (`adopt_caller`).
    """
    return resolve_first_use(ctx, explicit)[0]


def resolve_first_use(ctx: AppContext, explicit: str | None) -> tuple[EndpointInfo, bool]:
    """`resolve_endpoint`, and whether this call registered the endpoint.

    A use case that registered it undoes that with `forget_new_endpoint` when its first contact
    with the target fails, so a mistyped corp leaves nothing behind.
    """
    name = endpoint_name(ctx, explicit)
    repo = ctx.repository
    try:
        info = get_endpoint(ctx, name)
    except RecordNotFoundError:
        # Only the settings' own corp is registered on first use: any other name is a typo
        # or an endpoint still to be added, and must not become a second name for that corp.
        if _retired(ctx, name) or name != ctx.settings.corp:
            raise
        email, corp = ctx.settings.require_credentials()
        added = repo.endpoints.add(name, corp=corp, api_url=ctx.settings.api_url, email=email)
        return added, True
    if info.connector == "rest" or info.credentials:
        return info, False
    email, corp = ctx.settings.require_credentials()
    if info.corp != corp:
        raise ConfigError(
            f"endpoint {name!r} governs corp {info.corp!r} but SIGSCI_CORP is {corp!r}; "
            "pass --endpoint to choose another name"
        )
    if info.api_url != ctx.settings.api_url:
        info = repo.endpoints.update(name, api_url=ctx.settings.api_url)
    if info.email != email:
        # Whoever the settings name calls the target now; the stored caller, which every full
        # read must list, changes only once `adopt_caller` has seen the new one's role.
        info = replace(info, email=email)
    return info, False


def adopt_caller(ctx: AppContext, name: str, email: str | None) -> None:
    """Store the settings' caller for an endpoint, unless the repository holds it as an observer.

    Observer credentials can read a corp but change nothing: a run made with them must not
    make the observer the endpoint's caller.
    """
    if email is None:
        return
    repo = ctx.repository
    stored = repo.endpoints.get(name)
    if stored.email == email or stored.credentials or stored.connector == "rest":
        return
    account = repo.inventory.find_account(name, email)
    if account is None or account.role == CorpRole.OBSERVER.value:
        return
    repo.endpoints.update(name, email=email)


def forget_new_endpoint(ctx: AppContext, name: str, error: BaseException) -> None:
    """Delete an endpoint registered on first use whose first contact says it is misconfigured.

    A corp that does not exist, refused credentials, a host that cannot be reached or answers
    what no API would (a login page) mean the settings are wrong: nothing stays. A server error
    or throttling of a right corp keeps the endpoint and its failed run, for the record.
    """
    misconfigured = isinstance(
        error, (ConfigError, AuthError, NotFoundError, UnexpectedResponseError)
    ) or (isinstance(error, TransientError) and error.status is None)
    if not misconfigured:
        return
    with contextlib.suppress(SigsciIgaError):
        repo = ctx.repository
        if not repo.tasks.list(endpoint=name, state=("new", "in_progress")):
            repo.endpoints.remove(name)


def _retired(ctx: AppContext, name: str) -> bool:
    try:
        return ctx.repository.endpoints.get(name).retired_at is not None
    except RecordNotFoundError:
        return False


def settings_endpoint(settings: Settings, name: str | None = None) -> EndpointInfo:
    """The endpoint the single-corp settings describe, without registering it."""
    email, corp = settings.require_credentials()
    return EndpointInfo(
        id=0,
        name=name or corp,
        connector="signalsciences",
        api_url=settings.api_url,
        corp=corp,
        email=email,
        settings={},
        checkpoint=Checkpoint(last_activity=None),
        version=0,
        created_at=datetime.now(UTC),
    )


def register_native(
    ctx: AppContext,
    name: str,
    *,
    corp: str,
    email: str,
    api_url: str | None = None,
    token: str | None = None,
    password: str | None = None,
) -> EndpointInfo:
    """Register a Signal Sciences corp with its own caller and secret references.

    `token` and `password` are references (`env:NAME`, `file:PATH`), never secrets; one of them
    is required, so that the endpoint never silently borrows the process settings' token.
    """
    # The HTTP and package machinery load for the commands that register endpoints, not for
    # every command that names one.
    from sigsci_iga.connectors.http.segments import check_segment  # noqa: PLC0415

    check_name(name, "endpoint name")
    check_segment(check_name(corp, "corp"), "corp")
    caller = normalize_email(email)
    refs = {key: ref for key, ref in (("token", token), ("password", password)) if ref}
    if not refs:
        raise InvalidInputError(
            "an endpoint needs a token (or password) reference: env:NAME or file:PATH"
        )
    for key, ref in refs.items():
        _check_secret_ref(ref, key)
    url = _api_url(api_url or ctx.settings.api_url, "--api-url", native=True)
    return ctx.repository.endpoints.add(
        name, corp=corp, api_url=url, email=caller, credentials=refs
    )


def _check_secret_ref(ref: str, key: str) -> None:
    """A well-formed reference; a file it names may be missing (mounted later), not a FIFO."""
    parsed = parse_secret_ref(ref, key)
    if parsed.kind != "file":
        return
    try:
        mode = Path(parsed.target).stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{key}: secret file {parsed.target!r} is not a regular file")


def register_rest(
    ctx: AppContext,
    name: str,
    *,
    package: Path,
    corp: str,
    params: Mapping[str, str],
    caller: str | None = None,
    secrets: Mapping[str, str] | None = None,
) -> EndpointInfo:
    """Register an endpoint run by the `rest` connector through a package.

    `secrets` maps a secret parameter to a reference; without one, the parameter is read from
    the environment variable the package declares. The package must bind now, so a missing
    parameter is reported before anything is stored.
    """
    check_name(name, "endpoint name")
    check_name(corp, "corp")
    from sigsci_iga.connectors.rest.loader import load_package  # noqa: PLC0415

    # The loader opens the file as it is: a FIFO would block it, and non-UTF-8 bytes crash it.
    loaded = load_package(check_text_file(package, "package file"))
    refs = dict(secrets or {})
    for key, ref in refs.items():
        parameter = loaded.spec.parameters.get(key)
        if parameter is None or not parameter.secret:
            raise InvalidInputError(f"{package}: {key!r} is not a secret parameter of the package")
        _check_secret_ref(ref, key)
    # References are resolved when a connector opens, not here: a placeholder stands in.
    bound = loaded.bind(params, secrets=dict.fromkeys(refs, "resolved-at-connection"))
    _api_url(bound.base_url, f"{package}: the base URL")
    chosen = caller or bound.params.get("email")
    return ctx.repository.endpoints.add(
        name,
        corp=corp,
        api_url=bound.base_url,
        email=normalize_email(chosen) if chosen else None,
        connector="rest",
        settings={"package": str(package.resolve()), "params": dict(params)},
        credentials=refs,
    )


def _api_url(value: str, what: str, *, native: bool = False) -> str:
    try:
        return native_api_url(value) if native else check_api_url(value)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {exc}") from None


@dataclass(frozen=True)
class Removal:
    endpoint: str
    outcome: Literal["deleted", "retired"]
    discontinued: int


def remove_endpoint(ctx: AppContext, name: str, *, force: bool = False) -> Removal:
    """Delete an endpoint (or retire it, when its journal must be kept).

    Refused while it has open tasks, unless `force`, which discontinues them first.
    """
    repo = ctx.repository
    get_endpoint(ctx, name)
    open_tasks = repo.tasks.list(endpoint=name, state=("new", "in_progress"))
    if open_tasks and not force:
        raise InvalidInputError(
            f"endpoint {name!r} has {len(open_tasks)} open task(s); discontinue them or pass "
            "--force"
        )
    for task in open_tasks:
        repo.tasks.discontinue(task.id, reason=f"endpoint {name} removed")
    return Removal(name, repo.endpoints.remove(name), len(open_tasks))


@dataclass(frozen=True)
class CheckResult:
    endpoint: str
    report: ConnectionReport


async def check_endpoint(ctx: AppContext, explicit: str | None = None) -> CheckResult:
    """Prove an endpoint's connection and credentials work.

    Without a name, the endpoint the settings describe is checked without being registered, so
    a check on a fresh machine writes nothing.
    """
    info = (
        get_endpoint(ctx, endpoint_name(ctx, explicit))
        if explicit is not None
        else settings_endpoint(ctx.settings)
    )
    async with ctx.connectors.open(info, quick=True) as connector:
        report = await connector.validate(info.email)
    return CheckResult(info.name, report)
