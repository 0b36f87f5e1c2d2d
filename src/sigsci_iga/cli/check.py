"""`sigsci-iga check`: prove the credentials work and show what they can see."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import NotFoundError
from sigsci_iga.settings import Settings


@dataclass(frozen=True)
class CheckReport:
    corp_name: str
    corp_display_name: str
    email: str
    role: str
    sites_visible: int
    api_token_max_age: int | None
    uses_token: bool


async def run_check(settings: Settings, client: SigSciClient) -> CheckReport:
    """Read the corp, the caller and the site list; any failure raises from the error tree."""
    corp = await client.get_corp()
    try:
        me = await client.get_user(client.email, expand_memberships=False)
        role = me.role
    except NotFoundError:
        # A token owner outside the corp's user list (unusual) still passed the corp read.
        role = "unknown"
    sites = await client.list_sites()
    return CheckReport(
        corp_name=corp.name,
        corp_display_name=corp.display_name,
        email=client.email,
        role=role,
        sites_visible=len(sites),
        api_token_max_age=corp.api_token_max_age,
        uses_token=settings.token is not None,
    )


def describe_token_policy(max_age: int | None) -> tuple[str, bool]:
    """Human text for apiTokenMaxAge and whether it deserves a warning."""
    if max_age is None:
        return "the corp does not report a token expiry policy (apiTokenMaxAge absent)", False
    if max_age <= 0:
        return "API tokens do not expire (apiTokenMaxAge = 0)", False
    days = max_age / 86400
    span = f"{days:.1f} days" if days >= 1 else f"{max_age / 3600:.1f} hours"
    return (
        f"API tokens expire {max_age} s (~{span}) after creation (apiTokenMaxAge = {max_age}); "
        "plan to rotate SIGSCI_TOKEN before then",
        True,
    )


def check(settings: Settings) -> CheckReport:
    async def go() -> CheckReport:
        # A check should answer quickly: two tries, short waits.
        async with SigSciClient.from_settings(
            settings,
            read_attempts=2,
            retry_wait_initial=0.2,
            retry_wait_max=1.0,
            throttle_patience=5.0,
        ) as client:
            return await run_check(settings, client)

    return asyncio.run(go())
