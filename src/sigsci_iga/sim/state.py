"""The simulator's in-memory corp: users, sites, tokens, activity feed, and a shiftable clock.

Every mutation goes through a method here (the API and tests alike), takes the lock, emits the
activity events a real corp would, and invalidates the cached serialized user list.

Emails are stored as given. `lookup` is how the API finds a user named in a request (exactly, or
ignoring case, as `email_matching` says); the other methods, meant for tests, ignore case.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sigsci_iga.sim.config import (
    API_PREFIX,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOKEN,
    OBSERVER_EMAIL,
    OBSERVER_PASSWORD,
    OBSERVER_TOKEN,
    SimConfig,
)
from sigsci_iga.sim.records import Event, SiteRecord, UserRecord, normalize_role, rfc3339
from sigsci_iga.sim.seed import SeedData, generate

_SIM_ACTOR = "Signal Sciences Simulator (sim@localhost)"
#: The one recorded answer for an unknown user (a 2019 client log).
NOT_FOUND_MESSAGE = "ID not found"


class SimError(Exception):
    """An API error: the status and the `message` the response body carries."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Credential:
    """An API access token or a session token, and when it was created."""

    email: str
    created: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class SimState:
    """One simulated corp; all public methods are thread-safe."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        data: SeedData | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.lock = threading.RLock()
        self._clock = now or _utc_now
        self._offset = timedelta()
        # Session tokens and event ids only need to be unique and repeatable, not secret.
        self._rng = random.Random(self.config.seed ^ 0x5EED)  # noqa: S311  # see above
        seeded = data or generate(self.config)
        self.users: dict[str, UserRecord] = seeded.users
        #: Lower-cased email -> the stored spelling; no two users differ only in case.
        self._folded: dict[str, str] = {email.lower(): email for email in self.users}
        self.sites: dict[str, SiteRecord] = seeded.sites
        self.started_at = self.now()
        self.corp_created = "2022-01-01T00:00:00Z"
        self.passwords: dict[str, str] = {
            DEMO_EMAIL: DEMO_PASSWORD,
            OBSERVER_EMAIL: OBSERVER_PASSWORD,
        }
        self.api_tokens: dict[str, Credential] = {
            DEMO_TOKEN: Credential(DEMO_EMAIL, self.started_at),
            OBSERVER_TOKEN: Credential(OBSERVER_EMAIL, self.started_at),
        }
        self.sessions: dict[str, Credential] = {}
        self.events: list[Event] = []
        self._site_events: dict[str, list[Event]] = {}
        self._seq = 0
        self.version = 0
        self._fragments: dict[tuple[str, bool], bytes] = {}
        self._list_cache: dict[bool, bytes] = {}

    # ----------------------------------------------------------------- clock

    def now(self) -> datetime:
        """The simulated time: the injected clock plus any shift from advance_clock."""
        return self._clock().astimezone(UTC) + self._offset

    def advance_clock(self, seconds: float) -> datetime:
        """Shift simulated time (negative goes back); returns the new now."""
        with self.lock:
            self._offset += timedelta(seconds=seconds)
            return self.now()

    # ------------------------------------------------------------------ auth

    def _active_user(self, email: str) -> UserRecord | None:
        user = self.get_user(email)
        return user if user is not None and user.status == "active" else None

    def authenticate_token(self, email: str, token: str) -> UserRecord | None:
        """The active user owning this API access token, or None if wrong or expired."""
        with self.lock:
            cred = self.api_tokens.get(token)
            if cred is None or cred.email.lower() != email.strip().lower():
                return None
            expiry = self.config.token_expiry_seconds
            if expiry > 0 and self.now() >= cred.created + timedelta(seconds=expiry):
                return None
            return self._active_user(cred.email)

    def authenticate_session(self, token: str) -> UserRecord | None:
        """The active user behind a /auth session token, or None."""
        with self.lock:
            cred = self.sessions.get(token)
            if cred is None:
                return None
            max_age = timedelta(seconds=self.config.session_max_age_seconds)
            if self.now() >= cred.created + max_age:
                return None
            return self._active_user(cred.email)

    def login(self, email: str, password: str) -> str | None:
        """A new session token for a right password, else None."""
        email = email.strip().lower()
        with self.lock:
            if self.passwords.get(email) != password or self._active_user(email) is None:
                return None
            token = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            self.sessions[token] = Credential(email, self.now())
            return token

    def logout(self, token: str) -> None:
        """End a session (unknown tokens are ignored)."""
        with self.lock:
            self.sessions.pop(token, None)

    def add_api_token(self, email: str, token: str, *, password: str | None = None) -> None:
        """Give a user an API token (created now) and optionally a password, for tests."""
        with self.lock:
            user = self._require_user(email)
            self.api_tokens[token] = Credential(user.email, self.now())
            if password is not None:
                self.passwords[user.email.lower()] = password

    # --------------------------------------------------------------- reading

    def _require_user(self, email: str) -> UserRecord:
        user = self.get_user(email)
        if user is None:
            raise SimError(self.config.not_found_status, NOT_FOUND_MESSAGE)
        return user

    def _require_site(self, name: str) -> SiteRecord:
        site = self.sites.get(name)
        if site is None:
            raise SimError(400, "Site not found")
        return site

    def get_user(self, email: str) -> UserRecord | None:
        """The stored record whatever the case of `email` (for tests and the admin API), or None."""
        with self.lock:
            stored = self._folded.get(email.strip().lower())
            return None if stored is None else self.users[stored]

    def lookup(self, email: str) -> UserRecord | None:
        """The user a request's email names, matched as `email_matching` says, or None."""
        with self.lock:
            if self.config.email_matching == "insensitive":
                return self.get_user(email)
            return self.users.get(email)

    def owners(self) -> list[str]:
        """Owner emails in creation order."""
        with self.lock:
            return [u.email for u in self.users.values() if u.role == "owner"]

    def user_site_names(self, user: UserRecord) -> list[str]:
        """The sites a user can reach: all of them for owners."""
        with self.lock:
            if user.role == "owner":
                return sorted(self.sites)
            return sorted(user.sites)

    def site_member_emails(self, site: str) -> list[str]:
        """Owners and explicit members of a site, sorted by email."""
        with self.lock:
            record = self._require_site(site)
            return sorted(set(self.owners()) | record.members)

    def can_see_site(self, caller: UserRecord, site: str) -> bool:
        """Owners see every site; others see their own sites only."""
        return caller.role == "owner" or site in caller.sites

    def visible_emails(self, caller: UserRecord) -> set[str] | None:
        """Users a non-owner may see (members of its sites, owners, itself); None means all."""
        with self.lock:
            if caller.role == "owner":
                return None
            seen = {caller.email, *self.owners()}
            for site in caller.sites:
                record = self.sites.get(site)
                if record is not None:
                    seen |= record.members
            return seen

    def membership_count(self) -> int:
        """Explicit membership rows (owners' implicit ones not counted)."""
        with self.lock:
            return sum(len(s.members) for s in self.sites.values())

    # ---------------------------------------------------------- serializing

    def user_uri(self, email: str) -> str:
        """The API path of one user, with the email unescaped as the real API writes it."""
        return f"{API_PREFIX}/corps/{self.config.corp}/users/{email}"

    def membership_payloads(self, user: UserRecord) -> list[dict[str, Any]]:
        """The items of GET .../users/{email}/memberships."""
        with self.lock:
            return [
                {
                    "site": {"name": name, "displayName": self.sites[name].display_name},
                    "role": user.role,
                }
                for name in self.user_site_names(user)
            ]

    def user_payload(self, user: UserRecord, *, expand: bool) -> dict[str, Any]:
        """The User object of reference 3.7."""
        with self.lock:
            return {
                "name": user.name,
                "email": user.email,
                "announcements": {"uri": f"{API_PREFIX}/user/announcements"},
                "defaultDashboards": {"uri": f"{API_PREFIX}/user/defaultDashboards"},
                "memberships": {
                    "data": self.membership_payloads(user) if expand else [],
                    "uri": self.user_uri(user.email) + "/memberships",
                },
                "accessTokens": {"uri": f"{API_PREFIX}/user/apitokens"},
                "role": user.role,
                "status": user.status,
                "mfaEnabled": user.mfa_enabled,
                "corpAuthType": user.corp_auth_type,
                "authStatus": user.auth_status,
                "created": user.created,
                "apiUser": user.api_user,
                "accessTokenAllowed": user.access_token_allowed,
                "ssoProvisioned": user.sso_provisioned,
            }

    def _fragment(self, user: UserRecord, expand: bool) -> bytes:
        key = (user.email, expand)
        cached = self._fragments.get(key)
        if cached is None:
            cached = _dumps(self.user_payload(user, expand=expand))
            self._fragments[key] = cached
        return cached

    def users_list_bytes(self, *, expand: bool, caller: UserRecord | None = None) -> bytes:
        """The body of GET /corps/{corp}/users; cached per state version for owners."""
        with self.lock:
            visible = self.visible_emails(caller) if caller is not None else None
            if visible is None:
                cached = self._list_cache.get(expand)
                if cached is None:
                    parts = [self._fragment(u, expand) for u in self.users.values()]
                    cached = b'{"data":[' + b",".join(parts) + b"]}"
                    self._list_cache[expand] = cached
                return cached
            parts = [self._fragment(u, expand) for u in self.users.values() if u.email in visible]
            return b'{"data":[' + b",".join(parts) + b"]}"

    def member_payload(self, user: UserRecord) -> dict[str, Any]:
        """A site member as GET .../sites/{site}/members lists it."""
        return {
            "user": {
                "name": user.name,
                "email": user.email,
                "status": user.status,
                "apiUser": user.api_user,
            },
            "role": user.role,
        }

    def site_payload(self, site: SiteRecord) -> dict[str, Any]:
        """The Site object of reference 4.3."""
        base = f"{API_PREFIX}/corps/{self.config.corp}/sites/{site.name}"
        links = [
            "whitelist",
            "blacklist",
            "events",
            "requests",
            "redactions",
            "suspiciousIPs",
            "monitors",
            "pathwhitelist",
            "paramwhitelist",
            "integrations",
            "headerLinks",
            "agents",
            "alerts",
            "analyticsEvents",
            "topAttacks",
            "members",
        ]
        payload: dict[str, Any] = {
            "name": site.name,
            "displayName": site.display_name,
            "agentLevel": site.agent_level,
            "agentAnonMode": "",
            "blockHTTPCode": 406,
            "blockDurationSeconds": 86400,
            "blockRedirectURL": "",
            "created": site.created,
            "clientIPRules": [{"header": "X-Forwarded-For"}],
            "attackThresholds": [
                {"interval": 1, "threshold": 25},
                {"interval": 10, "threshold": 50},
                {"interval": 60, "threshold": 200},
            ],
            "immediateBlock": False,
        }
        payload.update({link: {"uri": f"{base}/{link}"} for link in links})
        return payload

    def corp_payload(self) -> dict[str, Any]:
        """The Corp object of reference 2.4."""
        corp = self.config.corp
        return {
            "name": corp,
            "displayName": self.config.corp_display_name,
            "smallIconURI": "",
            "created": self.corp_created,
            "siteLimit": max(len(self.sites), self.config.sites) + 10,
            "sites": {"uri": f"{API_PREFIX}/corps/{corp}/sites"},
            "authType": "builtin",
            "logoutURI": "",
            "samlCert": "",
            "samlEndpoint": "",
            "signRequestsUsingStoredCert": False,
            "samlRequestCert": "",
            "sessionMaxAgeDashboard": self.config.session_max_age_seconds,
            "apiAllowedIPs": [],
            "apiTokenMaxAge": self.config.token_expiry_seconds,
            "restrictedAccessTokens": False,
            "ssoProvisioningConfigured": False,
        }

    # ------------------------------------------------------------- mutation

    def _changed(self, *emails: str, everyone: bool = False) -> None:
        self.version += 1
        self._list_cache.clear()
        if everyone:
            self._fragments.clear()
            return
        for email in emails:
            self._fragments.pop((email, True), None)
            self._fragments.pop((email, False), None)

    def _actor(self, actor: str | None) -> str:
        record = self.users.get(actor or "")
        if record is None:
            return _SIM_ACTOR
        return f"{record.name or record.email} ({record.email})"

    def _emit(
        self,
        event_type: str,
        message: str,
        *,
        actor: str | None,
        site: str | None = None,
        **msg_data: str,
    ) -> Event:
        return self._record(event_type, message, actor, site, msg_data, corp_feed=True)

    def _emit_membership(
        self, event_type: str, message: str, actor: str | None, site: str, email: str
    ) -> Event:
        """A user added to or removed from a site, on the feeds `membership_events` names."""
        where = self.config.membership_events
        return self._record(
            event_type,
            message,
            actor,
            site,
            {"email": email},
            corp_feed=where != "site",
            site_feed=where != "corp",
        )

    def _record(
        self,
        event_type: str,
        message: str,
        actor: str | None,
        site: str | None,
        msg_data: dict[str, str],
        *,
        corp_feed: bool,
        site_feed: bool = True,
    ) -> Event:
        self._seq += 1
        created = self.now()
        corp = self.config.corp
        data = {"corpName": corp, **msg_data}
        if "email" in data:
            data["detailLink"] = (
                f"https://dashboard.signalsciences.net/corps/{corp}/users/{data['email']}"
            )
        if site is not None:
            data["siteName"] = site
        event_id = (
            f"{int(created.timestamp()) & 0xFFFFFFFF:08x}"
            f"{self._rng.getrandbits(32):08x}{self._seq & 0xFFFFFFFF:08x}"
        )
        event = Event(
            id=event_id,
            seq=self._seq,
            event_type=event_type,
            msg_data=data,
            message=f"{self._actor(actor)} {message}",
            created=created,
            site=site,
            on_corp_feed=corp_feed,
        )
        self.events.append(event)
        if site is not None and site_feed:
            self._site_events.setdefault(site, []).append(event)
        return event

    def _sites_for(self, names: Iterable[str]) -> set[str]:
        wanted = set()
        for name in names:
            self._require_site(name)
            wanted.add(name)
        return wanted

    @staticmethod
    def _checked_role(role: object) -> str:
        normalized = normalize_role(role)
        if normalized is None:
            raise SimError(400, f"Invalid role: {role}")
        return normalized

    @staticmethod
    def _checked_email(email: str) -> str:
        email = email.strip()
        local, _, domain = email.partition("@")
        if not local or not domain or " " in email or "/" in email:
            raise SimError(400, "Invalid email")
        return email

    def _join_sites(self, user: UserRecord, names: Iterable[str], actor: str | None) -> None:
        for name in sorted(set(names) - user.sites):
            user.sites.add(name)
            self.sites[name].members.add(user.email)
            self._emit_membership(
                "userAddedToSite", f"added {user.email} to site {name}", actor, name, user.email
            )

    def _leave_sites(self, user: UserRecord, names: Iterable[str], actor: str | None) -> None:
        for name in sorted(set(names) & user.sites):
            user.sites.discard(name)
            self.sites[name].members.discard(user.email)
            self._emit_membership(
                "userRemovedFromSite",
                f"removed {user.email} from site {name}",
                actor,
                name,
                user.email,
            )

    def invite_user(
        self,
        email: str,
        role: object,
        sites: Iterable[str] = (),
        *,
        actor: str | None = None,
        api_user: bool = False,
    ) -> UserRecord:
        """Create a pending invitee with these sites (emits corpUserInvited and site events)."""
        with self.lock:
            email = self._checked_email(email)
            checked_role = self._checked_role(role)
            if email.lower() in self._folded:
                raise SimError(400, "User already exists")
            wanted = self._sites_for(sites)
            user = UserRecord(
                email=email,
                name="",
                role=checked_role,
                status=self.config.pending_status,
                created=rfc3339(self.now()),
                api_user=api_user,
            )
            self.users[email] = user
            self._folded[email.lower()] = email
            self._emit(
                "corpUserInvited",
                f"invited {email} to the corp as {checked_role}",
                actor=actor,
                email=email,
                role=checked_role,
            )
            if checked_role != "owner":
                self._join_sites(user, wanted, actor)
            self._changed(email)
            return user

    def add_user(
        self,
        email: str,
        role: str = "user",
        sites: Iterable[str] = (),
        *,
        name: str | None = None,
        actor: str | None = None,
    ) -> UserRecord:
        """Create an already-registered user directly (emits userAddedToCorp), for tests."""
        with self.lock:
            email = self._checked_email(email)
            checked_role = self._checked_role(role)
            if email.lower() in self._folded:
                raise SimError(400, "User already exists")
            wanted = self._sites_for(sites)
            user = UserRecord(
                email=email,
                name=name if name is not None else email.split("@")[0].replace(".", " ").title(),
                role=checked_role,
                status="active",
                created=rfc3339(self.now()),
            )
            self.users[email] = user
            self._folded[email.lower()] = email
            self._emit(
                "userAddedToCorp",
                f"added {email} to the corp as {checked_role}",
                actor=actor,
                email=email,
                role=checked_role,
            )
            if checked_role != "owner":
                self._join_sites(user, wanted, actor)
            self._changed(email)
            return user

    def register(self, email: str, name: str | None = None) -> UserRecord:
        """Turn a pending invitee into an active user (emits userRegistered)."""
        with self.lock:
            user = self._require_user(email)
            if user.status == "active":
                raise SimError(400, "User is already registered")
            user.status = "active"
            if name is not None:
                user.name = name
            elif not user.name:
                user.name = user.email.split("@")[0].replace(".", " ").title()
            self._emit(
                "userRegistered",
                "completed registration",
                actor=user.email,
                email=user.email,
            )
            self._changed(user.email)
            return user

    def update_user(
        self,
        email: str,
        *,
        role: object = None,
        sites: Iterable[str] | None = None,
        api_user: bool | None = None,
        name: str | None = None,
        actor: str | None = None,
    ) -> UserRecord:
        """Change role, name, apiUser and/or replace the site set; emits userUpdated if changed."""
        with self.lock:
            user = self._require_user(email)
            new_role = user.role if role is None else self._checked_role(role)
            wanted = None if sites is None else self._sites_for(sites)
            if user.role == "owner" and new_role != "owner" and self._owner_count() == 1:
                raise SimError(400, "A corp needs at least one owner")
            details: dict[str, str] = {"email": user.email}
            sites_before = set(user.sites)
            old_role = user.role
            if new_role != old_role:
                details.update(role=new_role, oldRole=old_role)
                user.role = new_role
            if new_role == "owner":
                # Owners reach every site implicitly, so explicit rows would only go stale.
                self._leave_sites(user, set(user.sites), actor)
            elif wanted is not None:
                self._leave_sites(user, user.sites - wanted, actor)
                self._join_sites(user, wanted, actor)
            if api_user is not None and api_user != user.api_user:
                user.api_user = api_user
                details["apiUser"] = str(api_user).lower()
            if name is not None and name != user.name:
                details.update(name=name, oldName=user.name)
                user.name = name
            if len(details) > 1 or user.sites != sites_before:
                summary = ", ".join(f"{k}={v}" for k, v in details.items() if k != "email")
                self._emit(
                    "userUpdated",
                    f"updated {user.email}" + (f" ({summary})" if summary else ""),
                    actor=actor,
                    **details,
                )
            self._changed(user.email)
            return user

    def respell(self, email: str, spelling: str) -> UserRecord:
        """Store a user's email in another case, silently, for tests (a server may re-case one)."""
        with self.lock:
            user = self._require_user(email)
            if spelling.lower() != user.email.lower():
                raise SimError(400, "only the case of an email can change")
            del self.users[user.email]
            for site in user.sites:
                self.sites[site].members.discard(user.email)
                self.sites[site].members.add(spelling)
            for store in (self.api_tokens, self.sessions):
                for token, cred in list(store.items()):
                    if cred.email == user.email:
                        store[token] = Credential(spelling, cred.created)
            user.email = spelling
            self.users[spelling] = user
            self._folded[spelling.lower()] = spelling
            self._changed(everyone=True)
            return user

    def change_role(self, email: str, role: str, *, actor: str | None = None) -> UserRecord:
        """Change a user's corp role (emits userUpdated with role/oldRole)."""
        return self.update_user(email, role=role, actor=actor)

    def _owner_count(self) -> int:
        return sum(1 for u in self.users.values() if u.role == "owner")

    def remove_user(self, email: str, *, actor: str | None = None) -> None:
        """Delete a user from the corp, with its site rows and tokens (emits userRemoved)."""
        with self.lock:
            user = self._require_user(email)
            if user.role == "owner" and self._owner_count() == 1:
                raise SimError(400, "A corp needs at least one owner")
            for name in user.sites:
                self.sites[name].members.discard(user.email)
            del self.users[user.email]
            del self._folded[user.email.lower()]
            self.passwords.pop(user.email.lower(), None)
            for store in (self.api_tokens, self.sessions):
                for token in [t for t, c in store.items() if c.email == user.email]:
                    del store[token]
            self._emit(
                "userRemoved",
                f"removed {user.email} from the corp",
                actor=actor,
                email=user.email,
            )
            self._changed(user.email)

    def add_membership(self, email: str, site: str, *, actor: str | None = None) -> bool:
        """Give a user access to a site; False if it already had it (owners always have)."""
        with self.lock:
            user = self._require_user(email)
            self._require_site(site)
            if user.role == "owner" or site in user.sites:
                return False
            self._join_sites(user, [site], actor)
            self._changed(user.email)
            return True

    def remove_membership(self, email: str, site: str, *, actor: str | None = None) -> None:
        """Take a site away from a user (owners cannot lose a site; non-members are an error)."""
        with self.lock:
            user = self._require_user(email)
            self._require_site(site)
            if user.role == "owner":
                raise SimError(400, "Owners are members of every site")
            if site not in user.sites:
                raise SimError(400, "User is not a member of this site")
            self._leave_sites(user, [site], actor)
            self._changed(user.email)

    def add_site(
        self,
        name: str,
        display_name: str | None = None,
        *,
        agent_level: str = "log",
        actor: str | None = None,
    ) -> SiteRecord:
        """Create a site (emits newSite)."""
        with self.lock:
            name = name.strip()
            if not name or any(c not in "0123456789abcdefghijklmnopqrstuvwxyz_.-" for c in name):
                raise SimError(400, "Invalid site name")
            if name in self.sites:
                raise SimError(400, "Site already exists")
            site = SiteRecord(
                name=name,
                display_name=display_name or name,
                created=rfc3339(self.now()),
                agent_level=agent_level,
            )
            self.sites[name] = site
            self._emit("newSite", f"created site {name}", actor=actor, site=name)
            # Owners' expanded memberships list every site.
            self._changed(*self.owners())
            return site

    def remove_site(self, name: str, *, actor: str | None = None) -> None:
        """Delete a site and every membership in it (emits deleteSite)."""
        with self.lock:
            site = self._require_site(name)
            members = list(site.members)
            for email in members:
                self.users[email].sites.discard(name)
            del self.sites[name]
            self._site_events.pop(name, None)
            self._emit("deleteSite", f"deleted site {name}", actor=actor, siteName=name)
            self._changed(*members, *self.owners())

    # -------------------------------------------------------------- activity

    def activity(
        self,
        *,
        site: str | None = None,
        since: int | None = None,
        until: int | None = None,
        descending: bool = True,
        limit: int = 100,
        page: int = 1,
    ) -> tuple[int, list[Event]]:
        """Events within retention and [since, until), sorted, as (totalCount, this page)."""
        with self.lock:
            cutoff = self.now() - timedelta(days=self.config.activity_retention_days)
            if site is None:
                source = [e for e in self.events if e.on_corp_feed]
            else:
                source = self._site_events.get(site, [])
            low = cutoff if since is None else max(cutoff, datetime.fromtimestamp(since, UTC))
            high = None if until is None else datetime.fromtimestamp(until, UTC)
            chosen = [e for e in source if e.created >= low and (high is None or e.created < high)]
        chosen.sort(key=lambda e: (e.created, e.seq), reverse=descending)
        start = (page - 1) * limit
        return len(chosen), chosen[start : start + limit]
