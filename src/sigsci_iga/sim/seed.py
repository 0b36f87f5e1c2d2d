"""Deterministic corp generation: the same config and seed always give the same users and sites."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sigsci_iga.sim.config import (
    DEMO_EMAIL,
    DEMO_NAME,
    OBSERVER_EMAIL,
    OBSERVER_NAME,
    SimConfig,
)
from sigsci_iga.sim.records import SiteRecord, UserRecord, rfc3339

_FIRST = [
    "ada",
    "alan",
    "amara",
    "anna",
    "ben",
    "carla",
    "chen",
    "daniel",
    "diego",
    "elena",
    "emil",
    "fatima",
    "felix",
    "grace",
    "hana",
    "hugo",
    "ines",
    "ivan",
    "jana",
    "jonas",
    "julia",
    "kai",
    "karin",
    "lars",
    "lea",
    "leo",
    "lina",
    "luca",
    "maya",
    "mei",
    "mia",
    "nadia",
    "nina",
    "noah",
    "olga",
    "omar",
    "oscar",
    "paula",
    "pedro",
    "priya",
    "rafael",
    "rosa",
    "sam",
    "sara",
    "sofia",
    "tariq",
    "theo",
    "uma",
    "vera",
    "wei",
    "yara",
    "yusuf",
    "zoe",
]
_LAST = [
    "adams",
    "bauer",
    "becker",
    "chen",
    "costa",
    "das",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "gomez",
    "hansen",
    "ito",
    "jensen",
    "kim",
    "klein",
    "kowalski",
    "kumar",
    "lee",
    "lopez",
    "martin",
    "meyer",
    "moreau",
    "muller",
    "nakamura",
    "nguyen",
    "novak",
    "okafor",
    "olsen",
    "park",
    "patel",
    "perez",
    "rossi",
    "santos",
    "schmidt",
    "silva",
    "smith",
    "suzuki",
    "tanaka",
    "taylor",
    "weber",
    "wong",
    "yilmaz",
    "young",
    "zhang",
]
_DOMAINS = ("example.com", "example.org", "example.net", "corp.example")
_SITE_PREFIXES = ("www", "api", "shop", "app", "admin", "blog", "cdn", "portal", "auth", "mobile")
_BRANDS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell")
_AGENT_LEVELS = ("block", "block", "log", "log", "log", "off")

#: Seeded timestamps fall in this window so they do not depend on the wall clock.
_EPOCH = datetime(2022, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 3 * 365 * 86_400


@dataclass
class SeedData:
    """Generated users and sites, in creation order."""

    users: dict[str, UserRecord]
    sites: dict[str, SiteRecord]


def _moment(rng: random.Random) -> str:
    offset = timedelta(seconds=rng.randrange(_SPAN_SECONDS), milliseconds=rng.randrange(1000))
    return rfc3339(_EPOCH + offset)


def _sites(config: SimConfig, rng: random.Random) -> dict[str, SiteRecord]:
    sites: dict[str, SiteRecord] = {}
    for index in range(1, config.sites + 1):
        prefix = rng.choice(_SITE_PREFIXES)
        brand = rng.choice(_BRANDS)
        name = f"{prefix}.{brand}-{index}.com"
        display = f"{brand.title()} {prefix.upper()} {index}"
        sites[name] = SiteRecord(
            name=name,
            display_name=display,
            created=_moment(rng),
            agent_level=rng.choice(_AGENT_LEVELS),
        )
    return sites


def _unique_email(rng: random.Random, taken: set[str], first: str, last: str) -> str:
    while True:
        tag = "+waf" if rng.random() < 0.01 else ""
        email = f"{first}.{last}{tag}{rng.randrange(1, 1000)}@{rng.choice(_DOMAINS)}"
        if email not in taken:
            taken.add(email)
            return email


def _role(config: SimConfig, rng: random.Random) -> str:
    draw = rng.random()
    if draw < config.admin_share:
        return "admin"
    if draw < config.admin_share + config.observer_share:
        return "observer"
    return "user"


def generate(config: SimConfig) -> SeedData:
    """Build the corp's users and sites; linear in users times memberships per user."""
    rng = random.Random(config.seed)  # noqa: S311  # repeatable fake data, not secrets
    sites = _sites(config, rng)
    site_names = list(sites)
    n_sites = len(site_names)
    upper = max(1, round(2 * config.memberships_per_user - 1))

    users: dict[str, UserRecord] = {}
    taken = {DEMO_EMAIL, OBSERVER_EMAIL}
    users[DEMO_EMAIL] = UserRecord(
        email=DEMO_EMAIL,
        name=DEMO_NAME,
        role="owner",
        status="active",
        created=rfc3339(_EPOCH),
        mfa_enabled=True,
    )
    observer = UserRecord(
        email=OBSERVER_EMAIL,
        name=OBSERVER_NAME,
        role="observer",
        status="active",
        created=rfc3339(_EPOCH + timedelta(days=1)),
        sites=set(site_names[:2]),
    )
    users[OBSERVER_EMAIL] = observer

    for index in range(config.users - 2):
        first = rng.choice(_FIRST)
        last = rng.choice(_LAST)
        email = _unique_email(rng, taken, first, last)
        role = "owner" if index < config.owners - 1 else _role(config, rng)
        pending = role != "owner" and rng.random() < config.pending_share
        record = UserRecord(
            email=email,
            # Invitees have not told the corp their name yet.
            name="" if pending else f"{first.title()} {last.title()}",
            role=role,
            status=config.pending_status if pending else "active",
            created=_moment(rng),
            mfa_enabled=not pending and rng.random() < config.mfa_share,
            api_user=rng.random() < config.api_user_share,
        )
        if role != "owner" and config.memberships_per_user > 0:
            count = min(n_sites, rng.randint(1, upper))
            record.sites = {site_names[i] for i in rng.sample(range(n_sites), count)}
        users[email] = record

    for record in users.values():
        for site in record.sites:
            sites[site].members.add(record.email)
    return SeedData(users=users, sites=sites)
