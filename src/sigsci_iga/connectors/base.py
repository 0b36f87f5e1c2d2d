"""The connector contract: what the importer and the provisioning worker may ask of any target.

Connectors talk to targets and return typed pages; they never touch the repository. The engine
(importer) drives paging by handing back the cursor it was given.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.model import AccountSnapshot, SiteSnapshot
from sigsci_iga.errors import UnexpectedResponseError

T = TypeVar("T")


@dataclass(frozen=True)
class PageResult(Generic[T]):
    """One page of items and the opaque cursor of the next page (None: no more pages)."""

    items: Sequence[T]
    next_cursor: str | None
    #: Keys that identify the items, so the engine can refuse a page that repeats earlier ones.
    keys: Sequence[str] = ()


@dataclass(frozen=True)
class ChangeEvent:
    """One activity-feed event reduced to what an incremental import needs."""

    id: str
    kind: str
    created: datetime
    #: Lower-cased (the account key); `spelling` is the email as the event wrote it.
    email: str | None = None
    site: str | None = None
    #: The event says the account was removed (a re-read must still confirm it).
    removes_account: bool = False
    #: The event says the site was deleted (a re-read must still confirm it).
    removes_site: bool = False
    spelling: str | None = None

    @property
    def is_membership(self) -> bool:
        """A user added to or removed from a site: the event names both (and is not a deletion)."""
        return bool(self.email and self.site) and not self.removes_site


@dataclass(frozen=True)
class ChangeBatch:
    """Events since a point in time, oldest first, de-duplicated by id."""

    events: Sequence[ChangeEvent]
    emails: frozenset[str] = field(default_factory=frozenset)
    sites: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ConnectionReport:
    """What `validate` found: the target answers, who the caller is there, what it can see."""

    target: str
    display_name: str
    caller: str | None
    #: The caller's role on the target; None when the target does not say.
    caller_role: str | None
    sites_visible: int
    accounts_visible: int | None = None
    #: How long the target lets a credential live (Signal Sciences' apiTokenMaxAge); 0: forever.
    credential_max_age_seconds: int | None = None


class AccountBatches(Protocol):
    """Takes a full read's accounts a batch at a time (`StreamingConnector.stream_accounts`)."""

    def begin(self) -> None:
        """A read (or a retry of it) starts: forget every batch taken so far."""

    def batch(self, accounts: list[AccountSnapshot]) -> None:
        """The next accounts of the read; raising stops it."""


class Connector(Protocol):
    """Reading side of a target."""

    kind: str

    async def validate(self, caller: str | None) -> ConnectionReport:
        """Prove the connection works and that `caller` (the endpoint's caller) is visible."""
        ...

    async def accounts_page(self, cursor: str | None) -> PageResult[AccountSnapshot]:
        """A page of accounts with their site memberships; cursor None asks for the first."""
        ...

    async def sites_page(self, cursor: str | None) -> PageResult[SiteSnapshot]:
        """A page of sites; cursor None asks for the first."""
        ...

    async def read_account(self, email: str, *, confirmed: bool = False) -> AccountSnapshot | None:
        """Re-read one account, named as `email` spells it; None only when it does not exist.

        `confirmed` says the target itself gave that spelling (in this run), so a "not found"
        is final; otherwise a target that matches emails exactly may only disagree about case,
        and the connector must make sure before answering None.
        """
        ...

    async def read_site(self, name: str) -> SiteSnapshot | None:
        """Re-read one site; None only when the target says it does not exist."""
        ...

    async def changes_since(self, since: datetime, *, site: str | None = None) -> ChangeBatch:
        """The corp's activity since `since`, or one site's; raises unless read completely."""
        ...


def require_caller(emails: Collection[str], caller: str | None, *, path: str) -> None:
    """Refuse an accounts listing that cannot be the target's whole list.

    A target always lists its caller (the token owner, or the account an endpoint names): a
    list that is empty or lacks it is a glitch or someone else's list, never "accounts gone".
    """
    if emails and (caller is None or email_key(caller) in emails):
        return
    found = f"{len(emails)} accounts" if emails else "empty"
    lacks = f"does not include the caller {email_key(caller)}" if caller else "lists no one"
    raise UnexpectedResponseError(
        method="GET",
        path=path,
        status=200,
        message=f"the accounts list ({found}) {lacks}; not read as the target's list",
    )


# -- provisioning -----------------------------------------------------------------------------
# The provisioning worker plans a task as a list of steps; a connector describes and executes them.


@dataclass(frozen=True)
class Invite:
    """Create an account (a pending invitee) with a role and its sites."""

    email: str
    role: str
    sites: tuple[str, ...]


@dataclass(frozen=True)
class SetRole:
    """Change only the account's role."""

    email: str
    role: str


@dataclass(frozen=True)
class AddToSite:
    """Grant one site to one or more accounts in a single call, leaving their other sites alone."""

    site: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class RemoveFromSite:
    """Take one site away from one account."""

    site: str
    email: str


@dataclass(frozen=True)
class DeleteAccount:
    """Remove the account from the target."""

    email: str


Step = Invite | SetRole | AddToSite | RemoveFromSite | DeleteAccount


@dataclass(frozen=True)
class PlannedCall:
    """The exact HTTP call a step sends (for dry runs and the journal); never carries secrets."""

    method: str
    path: str
    body: object = None


class StreamingConnector(Connector, Protocol):
    """A connector that can hand over a full read's accounts as they arrive, never all at once."""

    async def stream_accounts(self, into: AccountBatches) -> None:
        """Every account, once each, in batches; a read that starts again calls `begin` again."""
        ...


class ProvisioningConnector(Connector, Protocol):
    """A connector that can also change the target."""

    def describe(self, step: Step) -> PlannedCall:
        """The call `execute(step)` would send."""
        ...

    def describe_all(self, step: Step) -> tuple[PlannedCall, ...]:
        """Every call `execute(step)` would send, in order (a package's step may send several)."""
        ...

    async def execute(self, step: Step) -> None:
        """Send the step's call once; raises from the error tree on failure."""
        ...
