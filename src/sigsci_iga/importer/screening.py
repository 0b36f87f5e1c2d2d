"""What the target answered, screened before it may reach the diff.

A name read from a server later becomes a path segment of a provisioning call, so it must pass
the same rule as a name someone types: an email or site that could not be addressed safely
(empty, with a slash, `.` or `..`, control or invisible characters, an email without `@`) is
skipped and reported, never stored. A role the connector does not know is reported too, never
turned into a new entitlement value. Two accounts with one email make the whole answer
untrustworthy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sigsci_iga.connectors.base import ChangeEvent, Connector
from sigsci_iga.connectors.http.segments import segment_problem
from sigsci_iga.domain.emails import check_address
from sigsci_iga.domain.model import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    SiteSnapshot,
)
from sigsci_iga.errors import InvalidInputError, UnexpectedResponseError

#: Reported values are cut to this many characters (and shown escaped, as `repr` does).
_SHOWN = 60
#: Events dated further ahead than this are not believed: clocks differ by seconds, not more.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Screening:
    """The warnings of one import, in the order found."""

    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def shown(value: object) -> str:
    """A value from a server as a warning may quote it: escaped and short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def known_roles(connector: Connector) -> frozenset[str] | None:
    """The roles a connector's target defines (None: a package's roles are whatever it lists)."""
    roles: frozenset[str] | None = getattr(connector, "known_roles", None)
    return roles


def email_problem(email: str) -> str | None:
    """Why an email read from a server cannot key an account and name it in calls, or None."""
    try:
        check_address(email)
    except InvalidInputError as exc:
        return str(exc)
    problem = segment_problem(email)
    return None if problem is None else f"email {shown(email)} {problem}"


def refuse_duplicate_emails(accounts: Iterable[AccountSnapshot], path: str) -> None:
    """Two accounts with one (lower-cased) email: the list cannot be the corp's."""
    seen: set[str] = set()
    for account in accounts:
        key = account.email.lower()
        if key in seen:
            raise UnexpectedResponseError(
                method="GET",
                path=path,
                status=None,
                message=f"the accounts list names {shown(key)} twice; the answer cannot be trusted",
            )
        seen.add(key)


def screen_account(
    account: AccountSnapshot,
    roles: Collection[str] | None,
    screening: Screening,
    checked_sites: frozenset[str] = frozenset(),
) -> AccountSnapshot | None:
    """The account without the sites it cannot hold, or None when it must be skipped whole.

    `checked_sites` passed `segment_problem` already (the sites read): half a million
    memberships name a few thousand sites, and each is checked once instead of every time.
    """
    for spelled in {account.email, account.address}:
        problem = email_problem(spelled)
        if problem is not None:
            screening.warn(f"skipped an account: {problem}")
            return None
    if roles is not None and account.role not in roles:
        screening.warn(
            f"skipped account {account.email}: unknown role {shown(account.role)} "
            f"(known: {', '.join(sorted(roles))})"
        )
        return None
    unchecked = account.sites - checked_sites if checked_sites else account.sites
    bad = sorted(site for site in unchecked if segment_problem(site) is not None)
    if not bad:
        return account
    for site in bad:
        screening.warn(
            f"account {account.email}: skipped its site {shown(site)}, which {segment_problem(site)}"
        )
    return replace(account, sites=account.sites - frozenset(bad))


def screen_site(site: SiteSnapshot, screening: Screening) -> SiteSnapshot | None:
    problem = segment_problem(site.name)
    if problem is None:
        return site
    screening.warn(f"skipped site {shown(site.name)}, which {problem}")
    return None


def screen_corp(
    accounts: Iterable[AccountSnapshot],
    sites: Iterable[SiteSnapshot],
    held: Mapping[str, AccountState],
    roles: Collection[str] | None,
    screening: Screening,
) -> tuple[list[AccountSnapshot], list[SiteSnapshot]]:
    """A full read, screened; an account skipped that the repository holds stays as it was.

    A full import reads absence as removal; a record refused for its content is not absent.
    """
    kept_sites = [s for s in sites if screen_site(s, screening) is not None]
    kept: list[AccountSnapshot] = []
    for account in accounts:
        screened = screen_account(account, roles, screening)
        if screened is not None:
            kept.append(screened)
            continue
        previous = held.get(account.email.lower())
        if previous is not None and previous.status != AccountStatus.SUSPENDED:
            kept.append(as_held(previous))
    names = {s.name for s in kept_sites}
    # A membership of a site that was skipped is no membership the repository can hold.
    return [replace(a, sites=a.sites & names) for a in kept], kept_sites


def as_held(state: AccountState) -> AccountSnapshot:
    """An account as the repository holds it, read again unchanged (one the screening skipped)."""
    return AccountSnapshot(
        email=state.email,
        name=state.name,
        role=state.role,
        status=str(state.status),
        mfa_enabled=state.mfa_enabled,
        created=state.created,
        sites=state.sites,
        extra=state.extra,
    )


def believable_events(
    events: Iterable[ChangeEvent], now: datetime, screening: Screening
) -> list[ChangeEvent]:
    """Events dated no later than now plus `CLOCK_SKEW`; later ones are reported, not believed.

    One event dated in year 9999 would otherwise move the checkpoint there, and every later
    incremental import would read nothing at all.
    """
    limit = now + CLOCK_SKEW
    kept: list[ChangeEvent] = []
    for event in events:
        if event.created > limit:
            screening.warn(
                f"event {shown(event.id)} ({event.kind}) is dated {event.created.isoformat()}, "
                "in the future: not used to move the checkpoint"
            )
        else:
            kept.append(event)
    return kept
