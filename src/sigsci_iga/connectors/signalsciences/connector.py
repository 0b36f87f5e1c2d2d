"""The native Signal Sciences connector: the connector contract on top of `SigSciClient`."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

from sigsci_iga.connectors.base import (
    AccountBatches,
    AddToSite,
    ChangeBatch,
    ChangeEvent,
    ConnectionReport,
    DeleteAccount,
    Invite,
    PageResult,
    PlannedCall,
    RemoveFromSite,
    SetRole,
    Step,
    require_caller,
)
from sigsci_iga.connectors.signalsciences.client import (
    DEFAULT_SITE_PAGE_SIZE,
    SigSciClient,
    SiteCursor,
)
from sigsci_iga.connectors.signalsciences.decode import BATCH_USERS, UserRow
from sigsci_iga.connectors.signalsciences.models import ActivityEvent, Site, User, UserStatus
from sigsci_iga.connectors.signalsciences.paths import api_path
from sigsci_iga.domain.model import SERVER_EMAIL, AccountSnapshot, CorpRole, SiteSnapshot
from sigsci_iga.errors import NotFoundError, UnexpectedResponseError

#: Event types whose meaning is "this user is gone" (a re-read must still confirm it).
USER_REMOVED_EVENTS = frozenset({"userRemoved", "corpUserRemoved", "userDeleted"})
SITE_REMOVED_EVENTS = frozenset({"deleteSite", "siteDeleted"})


def account_from_user(user: User | UserRow, names: dict[str, str] | None = None) -> AccountSnapshot:
    """The repository's view of a corp user; details the diff does not compare go to `extra`.

    `names` shares one string per site name across the accounts of a list (half a million
    memberships name perhaps a thousand sites).
    """
    extra: dict[str, object] = {
        "api_user": user.api_user,
        "sso_provisioned": user.sso_provisioned,
        "raw_status": user.raw_status,
    }
    if user.auth_status is not None:
        extra["auth_status"] = user.auth_status
    if user.corp_auth_type is not None:
        extra["corp_auth_type"] = user.corp_auth_type
    if user.raw_email and user.raw_email != user.email:
        # Only when it differs: calls must name the user this way on a case-sensitive server.
        extra[SERVER_EMAIL] = user.raw_email
    return AccountSnapshot(
        email=user.email,
        name=user.name or "",
        role=user.role,
        status="active" if user.status is UserStatus.ACTIVE else "pending",
        mfa_enabled=user.mfa_enabled,
        created=user.created,
        sites=frozenset(
            m.site.name if names is None else names.setdefault(m.site.name, m.site.name)
            for m in user.memberships.data
        ),
        extra=extra,
    )


def site_from_api(site: Site) -> SiteSnapshot:
    return SiteSnapshot(name=site.name, display_name=site.display_name)


def change_from_event(event: ActivityEvent, feed_site: str | None = None) -> ChangeEvent:
    """One event as the importer needs it; on a site's feed the site is implied if not named."""
    data = event.msg_data
    email = data.get("email") or data.get("userEmail")
    spelling = email.strip() if isinstance(email, str) and email.strip() else None
    site = data.get("siteName") or data.get("site") or feed_site
    return ChangeEvent(
        id=event.id,
        kind=event.event_type,
        created=event.created,
        email=spelling.lower() if spelling else None,
        site=str(site) if isinstance(site, str) and site else None,
        removes_account=event.event_type in USER_REMOVED_EVENTS,
        removes_site=event.event_type in SITE_REMOVED_EVENTS,
        spelling=spelling,
    )


class SignalSciencesConnector:
    """Full reads: the users list with memberships, then site pages (see `site_page_at`)."""

    kind = "signalsciences"
    #: Owners are members of every site without a membership event; a new site changes them too.
    all_sites_roles: frozenset[str] = frozenset({"owner"})
    #: The only roles an account may hold; another one from the server is reported, not stored.
    known_roles: frozenset[str] = frozenset(role.value for role in CorpRole)

    def __init__(
        self,
        client: SigSciClient,
        *,
        site_page_size: int = DEFAULT_SITE_PAGE_SIZE,
        users_batch: int = BATCH_USERS,
    ) -> None:
        self.client = client
        self.site_page_size = site_page_size
        #: Users a streamed full read hands on at once (see `stream_accounts`).
        self.users_batch = users_batch

    async def validate(self, caller: str | None) -> ConnectionReport:
        """Read the corp, the caller and the site list; any failure raises from the error tree.

        The caller is the token owner (`x-api-user`), whatever `caller` says.
        """
        client = self.client
        corp = await client.get_corp()
        if corp.name != client.corp:
            raise UnexpectedResponseError(
                method="GET",
                path=api_path("corps", (client.corp, "corp name")),
                status=200,
                message=(
                    f"the corp that answered is {client.redact(corp.name)!r}, not {client.corp!r}"
                ),
            )
        try:
            role: str | None = (await client.get_user(client.email, expand_memberships=False)).role
        except NotFoundError:
            # A token owner outside the corp's user list (unusual) still passed the corp read.
            role = None
        sites = await client.list_sites()
        return ConnectionReport(
            target=corp.name,
            display_name=corp.display_name,
            caller=client.email,
            caller_role=role,
            sites_visible=len(sites),
            credential_max_age_seconds=corp.api_token_max_age,
        )

    async def accounts_page(self, cursor: str | None) -> PageResult[AccountSnapshot]:
        if cursor is not None:
            raise UnexpectedResponseError(
                method="GET",
                path="users",
                status=None,
                message="the users list is not paginated; no cursor expected",
            )
        users = await self.client.list_users(expand_memberships=True)
        # Popped as they are converted, so the decoded rows and the accounts never both hold
        # the whole corp.
        users.reverse()
        names: dict[str, str] = {}
        accounts: list[AccountSnapshot] = []
        while users:
            accounts.append(account_from_user(users.pop(), names))
        return PageResult(accounts, None, [a.email for a in accounts])

    async def stream_accounts(self, into: AccountBatches) -> None:
        """Every account, handed to `into` in batches as the users list arrives (never whole)."""
        names: dict[str, str] = {}

        def begin() -> None:
            into.begin()

        def take(users: list[UserRow]) -> None:
            into.batch([account_from_user(user, names) for user in users])

        await self.client.stream_users(take, begin=begin, batch_users=self.users_batch)

    async def sites_page(self, cursor: str | None) -> PageResult[SiteSnapshot]:
        at = SiteCursor() if cursor is None else SiteCursor(**json.loads(cursor))
        page, following = await self.client.site_page_at(at, limit=self.site_page_size)
        sites = [site_from_api(s) for s in page.items]
        next_cursor = json.dumps(dataclasses.asdict(following)) if following else None
        return PageResult(sites, next_cursor, [s.name for s in sites])

    async def read_account(self, email: str, *, confirmed: bool = False) -> AccountSnapshot | None:
        """One GET by `email` as spelled; an unconfirmed "not found" is checked in the list.

        A server that matches emails exactly answers "not found" for `mixed.case@x` when it
        stores `Mixed.Case@x`; reading that as "gone" would end a leaver request without
        removing anyone. So unless the spelling came from the server, the users list (one call,
        itself checked to include the caller) decides.
        """
        try:
            return account_from_user(await self.client.get_user(email, expand_memberships=True))
        except NotFoundError:
            if confirmed:
                return None
        page = await self.accounts_page(None)
        listed = {a.email: a for a in page.items}
        require_caller(listed.keys(), self.client.email, path="users")
        return listed.get(email.lower())

    async def read_site(self, name: str) -> SiteSnapshot | None:
        try:
            return site_from_api(await self.client.get_site(name))
        except NotFoundError:
            return None

    async def changes_since(self, since: datetime, *, site: str | None = None) -> ChangeBatch:
        events: list[ChangeEvent] = []
        seen: set[str] = set()
        async for page in self.client.iter_activity_pages(site=site, since=since, sort="asc"):
            for item in page.items:
                if item.id in seen:
                    continue
                seen.add(item.id)
                events.append(change_from_event(item, feed_site=site))
        events.sort(key=lambda e: (e.created, e.id))
        return ChangeBatch(
            events=events,
            emails=frozenset(e.email for e in events if e.email),
            sites=frozenset(e.site for e in events if e.site),
        )

    # -- provisioning ------------------------------------------------------------------------

    def describe_all(self, step: Step) -> tuple[PlannedCall, ...]:
        return (self.describe(step),)

    def describe(self, step: Step) -> PlannedCall:
        client = self.client
        match step:
            case Invite(email=email, role=role, sites=sites):
                return PlannedCall(
                    "POST",
                    client.user_path(email, "invite"),
                    client.invite_body(role=role, sites=sites),
                )
            case SetRole(email=email, role=role):
                return PlannedCall("PATCH", client.user_path(email), {"role": role})
            case AddToSite(site=site, emails=emails):
                return PlannedCall(
                    "POST", client.site_path(site, "members"), {"members": sorted(emails)}
                )
            case RemoveFromSite(site=site, email=email):
                return PlannedCall("DELETE", client.site_member_path(site, email))
            case DeleteAccount(email=email):
                return PlannedCall("DELETE", client.user_path(email))
        raise AssertionError(f"unknown step {step!r}")  # pragma: no cover

    async def execute(self, step: Step) -> None:
        client = self.client
        match step:
            case Invite(email=email, role=role, sites=sites):
                await client.invite_user(email, role=role, sites=sites)
            case SetRole(email=email, role=role):
                # Only the role: memberships in a PATCH would replace the user's whole site set.
                await client.update_user(email, role=role)
            case AddToSite(site=site, emails=emails):
                await client.add_site_members(site, emails)
            case RemoveFromSite(site=site, email=email):
                await client.remove_site_member(site, email)
            case DeleteAccount(email=email):
                await client.delete_user(email)
