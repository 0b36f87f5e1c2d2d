"""The pure diff between the repository's view of an endpoint and what an import read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from sigsci_iga.domain.model import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    CorpSnapshot,
    EntitlementState,
    EntitlementStatus,
    EntitlementType,
    JsonValue,
    RepositoryView,
    SiteSnapshot,
    parse_iso,
)
from sigsci_iga.errors import InvalidInputError

DiffMode = Literal["full", "incremental"]
DIFF_FORMAT = 1

_SITE = EntitlementType.SITE.value
_ROLE = EntitlementType.CORP_ROLE.value
_SUSPENDED = AccountStatus.SUSPENDED.value
_ACTIVE_ENT = EntitlementStatus.ACTIVE.value
_INACTIVE_ENT = EntitlementStatus.INACTIVE.value


class FieldChange(NamedTuple):
    """One field going from `old` to `new` (JSON-compatible values)."""

    field: str
    old: JsonValue
    new: JsonValue


class LinkRef(NamedTuple):
    """An account holding one entitlement value."""

    email: str
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class AccountChange:
    """Field-level changes to one existing account."""

    email: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class NewEntitlement:
    """An entitlement value the repository does not hold yet."""

    type: str
    value: str
    display_name: str


@dataclass(frozen=True, slots=True)
class EntitlementChange:
    """Field-level changes to one existing entitlement value."""

    type: str
    value: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class Diff:
    """Everything an apply must do; added accounts carry no sites (their links are in links_added)."""

    mode: DiffMode = "full"
    accounts_added: tuple[AccountSnapshot, ...] = ()
    accounts_changed: tuple[AccountChange, ...] = ()
    accounts_suspended: tuple[AccountChange, ...] = ()
    accounts_reactivated: tuple[AccountChange, ...] = ()
    entitlements_added: tuple[NewEntitlement, ...] = ()
    entitlements_changed: tuple[EntitlementChange, ...] = ()
    entitlements_inactivated: tuple[EntitlementChange, ...] = ()
    entitlements_reactivated: tuple[EntitlementChange, ...] = ()
    links_added: tuple[LinkRef, ...] = ()
    links_removed: tuple[LinkRef, ...] = ()
    #: The whole diff's `summary()` when this holds only some of its items: an applied full
    #: import streams its diff through a spool and keeps no more than a preview of it.
    counted: Mapping[str, Mapping[str, int]] | None = None

    def __repr__(self) -> str:
        # Counts, not contents: asyncio's SIGINT handling reprs the task holding an import's
        # result, and half a million links took seconds to spell out (and nobody reads them).
        return f"Diff(mode={self.mode!r}, {self.summary()})"

    @property
    def is_empty(self) -> bool:
        if self.counted is not None:
            return not any(n for counts in self.counted.values() for n in counts.values())
        return not any(
            (
                self.accounts_added,
                self.accounts_changed,
                self.accounts_suspended,
                self.accounts_reactivated,
                self.entitlements_added,
                self.entitlements_changed,
                self.entitlements_inactivated,
                self.entitlements_reactivated,
                self.links_added,
                self.links_removed,
            )
        )

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per object kind and action, e.g. `{"accounts": {"added": 3, ...}, "Site": ...}`."""
        if self.counted is not None:
            return {kind: dict(counts) for kind, counts in self.counted.items()}

        def per_type(items: Iterable[NewEntitlement | EntitlementChange], kind: str) -> int:
            return sum(1 for i in items if i.type == kind)

        result: dict[str, dict[str, int]] = {
            "accounts": {
                "added": len(self.accounts_added),
                "changed": len(self.accounts_changed),
                "suspended": len(self.accounts_suspended),
                "reactivated": len(self.accounts_reactivated),
            }
        }
        for kind in (_SITE, _ROLE):
            result[kind] = {
                "added": per_type(self.entitlements_added, kind),
                "changed": per_type(self.entitlements_changed, kind),
                "inactivated": per_type(self.entitlements_inactivated, kind),
                "reactivated": per_type(self.entitlements_reactivated, kind),
            }
        result["links"] = {"added": len(self.links_added), "removed": len(self.links_removed)}
        return result

    def format_summary(self) -> str:
        """One line per object kind, for printing."""
        return "\n".join(
            f"{kind}: " + ", ".join(f"{count} {action}" for action, count in actions.items())
            for kind, actions in self.summary().items()
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict; `Diff.from_json` reads it back exactly."""
        if self.counted is not None:
            raise ValueError("a preview of a diff cannot be stored as the diff")

        def account(snapshot: AccountSnapshot) -> dict[str, JsonValue]:
            data = snapshot.to_json()
            del data["sites"]
            return data

        def changes(items: Iterable[FieldChange]) -> list[list[JsonValue]]:
            return [[c.field, c.old, c.new] for c in items]

        return {
            "format": DIFF_FORMAT,
            "mode": self.mode,
            "accounts_added": [account(a) for a in self.accounts_added],
            "accounts_changed": [
                {"email": c.email, "changes": changes(c.changes)} for c in self.accounts_changed
            ],
            "accounts_suspended": [
                {"email": c.email, "changes": changes(c.changes)} for c in self.accounts_suspended
            ],
            "accounts_reactivated": [
                {"email": c.email, "changes": changes(c.changes)} for c in self.accounts_reactivated
            ],
            "entitlements_added": [
                {"type": e.type, "value": e.value, "display_name": e.display_name}
                for e in self.entitlements_added
            ],
            **{
                name: [
                    {"type": e.type, "value": e.value, "changes": changes(e.changes)}
                    for e in getattr(self, name)
                ]
                for name in (
                    "entitlements_changed",
                    "entitlements_inactivated",
                    "entitlements_reactivated",
                )
            },
            "links_added": [list(link) for link in self.links_added],
            "links_removed": [list(link) for link in self.links_removed],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diff:
        """Read a dict written by `to_json`; anything else is refused as `InvalidInputError`."""
        try:
            if data.get("format") != DIFF_FORMAT:
                raise InvalidInputError(f"diff format {data.get('format')!r} is not supported")
            mode = data["mode"]
            if mode not in ("full", "incremental"):
                raise InvalidInputError(f"diff mode {mode!r} is not supported")

            def changes(items: Iterable[list[JsonValue]]) -> tuple[FieldChange, ...]:
                return tuple(FieldChange(f, o, n) for f, o, n in items)

            def accounts(key: str) -> tuple[AccountChange, ...]:
                return tuple(AccountChange(i["email"], changes(i["changes"])) for i in data[key])

            def entitlements(key: str) -> tuple[EntitlementChange, ...]:
                return tuple(
                    EntitlementChange(i["type"], i["value"], changes(i["changes"]))
                    for i in data[key]
                )

            return cls(
                mode=mode,
                accounts_added=tuple(AccountSnapshot.from_json(a) for a in data["accounts_added"]),
                accounts_changed=accounts("accounts_changed"),
                accounts_suspended=accounts("accounts_suspended"),
                accounts_reactivated=accounts("accounts_reactivated"),
                entitlements_added=tuple(
                    NewEntitlement(e["type"], e["value"], e["display_name"])
                    for e in data["entitlements_added"]
                ),
                entitlements_changed=entitlements("entitlements_changed"),
                entitlements_inactivated=entitlements("entitlements_inactivated"),
                entitlements_reactivated=entitlements("entitlements_reactivated"),
                links_added=tuple(LinkRef(*link) for link in data["links_added"]),
                links_removed=tuple(LinkRef(*link) for link in data["links_removed"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"stored diff is malformed: {exc!r}") from exc


def compute_diff(
    current: RepositoryView, incoming: CorpSnapshot, *, mode: DiffMode = "full"
) -> Diff:
    """Diff a corp snapshot against the repository.

    `full`: accounts and sites the snapshot does not list are suspended / inactivated (a site still
    named by an account's memberships is kept, since it evidently exists). `incremental`: the
    snapshot only adds and changes; nothing is inferred from absence.
    """
    accounts: dict[str, AccountSnapshot | None] = {a.email: a for a in incoming.accounts}
    sites: dict[str, SiteSnapshot | None] = {s.name: s for s in incoming.sites}
    if mode == "full":
        referenced: set[str] = set()
        for snapshot in incoming.accounts:
            referenced.update(snapshot.sites)
        for email, state in current.accounts.items():
            if email not in accounts and state.status != _SUSPENDED:
                accounts[email] = None
        for name, site in current.sites.items():
            if name not in sites and name not in referenced and site.status == _ACTIVE_ENT:
                sites[name] = None
    elif mode != "incremental":
        raise ValueError(f"unknown diff mode {mode!r}")
    return _diff(current, accounts, sites, mode)


class FullDiffStream:
    """A full import's diff computed a batch of accounts at a time, as parts.

    `compute_diff(current, snapshot, mode="full")` needs the whole corp at once; this needs the
    sites first, then each batch of accounts (`accounts`), then what the read did not list
    (`absent`), then the entitlement work (`head`). Together the parts are that same diff
    (`join`), so a corp can be diffed while it is read, without holding it whole.
    """

    def __init__(self, current: RepositoryView, sites: Iterable[SiteSnapshot]) -> None:
        self.current = current
        self._sites: dict[str, SiteSnapshot] = {s.name: s for s in sites}
        self._seen: set[str] = set()
        self._needed_sites: set[str] = set()
        self._needed_roles: set[str] = set()

    def accounts(self, batch: Iterable[AccountSnapshot]) -> Diff:
        """The work for these accounts, each listed once in the whole read."""
        work = _AccountWork()
        held = self.current.accounts
        no_sites: set[str] = set()
        for snapshot in batch:
            email = snapshot.email
            state = held.get(email)
            if state is not None:
                self._seen.add(email)
            # In a full read no listed site is deleted, and an unlisted one that an account
            # holds is kept (see `head`): nothing can contradict a deletion.
            work.account(email, snapshot, state, no_sites)
        self._needed_sites |= work.needed_sites
        self._needed_roles |= work.needed_roles
        return work.diff("full")

    def absent(self, batch_size: int) -> Iterator[Diff]:
        """The work for the accounts the repository holds that no batch listed, in parts."""
        work = _AccountWork()
        count = 0
        for email, state in self.current.accounts.items():
            if email in self._seen:
                continue
            work.account(email, None, state, set())
            count += 1
            if count >= batch_size:
                yield work.diff("full")
                work, count = _AccountWork(), 0
        if count:
            yield work.diff("full")

    def head(self) -> Diff:
        """The entitlement work: sites listed or held, roles held, sites gone."""
        builder = _Builder(self.current)
        for name, site in self._sites.items():
            builder.give(_SITE, name, site.display_name)
        for name, state in self.current.sites.items():
            gone = name not in self._sites and name not in self._needed_sites
            if gone and state.status == _ACTIVE_ENT:
                builder.gone(_SITE, name)
        for name in self._needed_sites:
            builder.referenced(_SITE, name, "")
        for role in self._needed_roles:
            builder.referenced(_ROLE, role, role)
        return builder.diff("full")


def join(parts: Iterable[Diff], mode: DiffMode = "full") -> Diff:
    """One diff from disjoint parts (`FullDiffStream`), ordered as `compute_diff` orders it."""
    lists: dict[str, list[Any]] = {name: [] for name in _LISTS}
    for part in parts:
        for name in _LISTS:
            lists[name].extend(getattr(part, name))
    ordered: dict[str, Any] = {
        name: tuple(sorted(items, key=_ORDER[name])) for name, items in lists.items()
    }
    return Diff(mode=mode, **ordered)


def _by_email(item: AccountSnapshot | AccountChange) -> str:
    return item.email


def _by_key(item: NewEntitlement | EntitlementChange) -> tuple[str, str]:
    return (item.type, item.value)


def _link(item: LinkRef) -> LinkRef:
    return item


_ORDER: dict[str, Any] = {
    "accounts_added": _by_email,
    "accounts_changed": _by_email,
    "accounts_suspended": _by_email,
    "accounts_reactivated": _by_email,
    "entitlements_added": _by_key,
    "entitlements_changed": _by_key,
    "entitlements_inactivated": _by_key,
    "entitlements_reactivated": _by_key,
    "links_added": _link,
    "links_removed": _link,
}
_LISTS = tuple(_ORDER)


def compute_partial_diff(
    current: RepositoryView,
    changed_accounts: Mapping[str, AccountSnapshot | None],
    changed_sites: Mapping[str, SiteSnapshot | None],
) -> Diff:
    """Diff only what an incremental read reports; `None` means confirmed deleted.

    Links to a confirmed-deleted site are removed from every account; an account that still names
    a deleted site is contradictory input and raises `InvalidInputError`.
    """
    for email, snapshot in changed_accounts.items():
        if snapshot is not None and snapshot.email != email:
            raise InvalidInputError(f"changed account key {email!r} != {snapshot.email!r}")
    for name, site in changed_sites.items():
        if site is not None and site.name != name:
            raise InvalidInputError(f"changed site key {name!r} != {site.name!r}")
    return _diff(current, changed_accounts, changed_sites, "incremental")


def _field_changes(old: Mapping[str, JsonValue], new: Mapping[str, JsonValue]) -> list[FieldChange]:
    return [FieldChange(k, old[k], new[k]) for k in new if old[k] != new[k]]


class _Builder:
    """Collects entitlement work so each value is added or reactivated at most once."""

    def __init__(self, current: RepositoryView) -> None:
        self.current = current
        self.added: dict[tuple[str, str], NewEntitlement] = {}
        self.changed: dict[tuple[str, str], EntitlementChange] = {}
        self.inactivated: dict[tuple[str, str], EntitlementChange] = {}
        self.reactivated: dict[tuple[str, str], EntitlementChange] = {}

    def _existing(self, kind: str, value: str) -> EntitlementState | None:
        table = self.current.sites if kind == _SITE else self.current.roles
        return table.get(value)

    def give(self, kind: str, value: str, display_name: str) -> None:
        """The target reported this value with this display name."""
        key = (kind, value)
        state = self._existing(kind, value)
        if state is None:
            self.added[key] = NewEntitlement(kind, value, display_name)
            return
        changes = _field_changes(
            {"display_name": state.display_name}, {"display_name": display_name}
        )
        if state.status != _ACTIVE_ENT:
            changes.append(FieldChange("status", state.status, _ACTIVE_ENT))
            self.reactivated[key] = EntitlementChange(kind, value, tuple(changes))
        elif changes:
            self.changed[key] = EntitlementChange(kind, value, tuple(changes))

    def referenced(self, kind: str, value: str, default_display_name: str) -> None:
        """An account holds this value, so it exists even if no listing reported it."""
        key = (kind, value)
        if key in self.added or key in self.reactivated or key in self.changed:
            return
        state = self._existing(kind, value)
        if state is None:
            self.added[key] = NewEntitlement(kind, value, default_display_name)
        elif state.status != _ACTIVE_ENT:
            change = FieldChange("status", state.status, _ACTIVE_ENT)
            self.reactivated[key] = EntitlementChange(kind, value, (change,))

    def gone(self, kind: str, value: str) -> None:
        state = self._existing(kind, value)
        if state is not None and state.status == _ACTIVE_ENT:
            change = FieldChange("status", state.status, _INACTIVE_ENT)
            self.inactivated[(kind, value)] = EntitlementChange(kind, value, (change,))

    def diff(self, mode: DiffMode) -> Diff:
        """The entitlement work alone."""
        return Diff(
            mode=mode,
            entitlements_added=tuple(sorted(self.added.values(), key=_by_key)),
            entitlements_changed=tuple(sorted(self.changed.values(), key=_by_key)),
            entitlements_inactivated=tuple(sorted(self.inactivated.values(), key=_by_key)),
            entitlements_reactivated=tuple(sorted(self.reactivated.values(), key=_by_key)),
        )


class _AccountWork:
    """Collects account and link work, one account at a time."""

    def __init__(self) -> None:
        self.added: list[AccountSnapshot] = []
        self.changed: list[AccountChange] = []
        self.suspended: list[AccountChange] = []
        self.reactivated: list[AccountChange] = []
        self.links_added: list[LinkRef] = []
        self.links_removed: list[LinkRef] = []
        self.needed_sites: set[str] = set()
        self.needed_roles: set[str] = set()

    def account(
        self,
        email: str,
        snapshot: AccountSnapshot | None,
        state: AccountState | None,
        deleted_sites: set[str],
    ) -> None:
        if snapshot is None:
            if state is not None and state.status != _SUSPENDED:
                change = FieldChange("status", state.status, _SUSPENDED)
                self.suspended.append(AccountChange(email, (change,)))
                self.links_removed.extend(LinkRef(email, _SITE, s) for s in state.sites)
                self.links_removed.extend(LinkRef(email, _ROLE, r) for r in state.roles)
            return
        contradicted = snapshot.sites & deleted_sites
        if contradicted:
            raise InvalidInputError(
                f"account {email} holds site(s) {sorted(contradicted)} reported as deleted"
            )
        self.needed_sites.update(snapshot.sites)
        self.needed_roles.add(snapshot.role)
        old_sites: frozenset[str] = frozenset()
        old_roles: frozenset[str] = frozenset()
        if state is None:
            # Built directly: `dataclasses.replace` costs several times more, 50,000 times.
            self.added.append(
                AccountSnapshot(
                    snapshot.email,
                    snapshot.name,
                    snapshot.role,
                    snapshot.status,
                    snapshot.mfa_enabled,
                    snapshot.created,
                    frozenset(),
                    snapshot.extra,
                )
            )
        else:
            changes = _field_changes(state.field_values(), snapshot.field_values())
            if state.status == _SUSPENDED:
                self.reactivated.append(AccountChange(email, tuple(changes)))
            elif changes:
                self.changed.append(AccountChange(email, tuple(changes)))
            old_sites, old_roles = state.sites, state.roles
        new_roles = frozenset((snapshot.role,))
        # tuple.__new__ skips NamedTuple's Python-level constructor (half a million links).
        link = tuple.__new__
        self.links_added.extend(
            link(LinkRef, (email, _SITE, s)) for s in snapshot.sites - old_sites
        )
        self.links_added.extend(LinkRef(email, _ROLE, r) for r in new_roles - old_roles)
        self.links_removed.extend(LinkRef(email, _SITE, s) for s in old_sites - snapshot.sites)
        self.links_removed.extend(LinkRef(email, _ROLE, r) for r in old_roles - new_roles)

    def diff(self, mode: DiffMode) -> Diff:
        """The account and link work alone, in the order the accounts came (`join` sorts)."""
        return Diff(
            mode=mode,
            accounts_added=tuple(self.added),
            accounts_changed=tuple(self.changed),
            accounts_suspended=tuple(self.suspended),
            accounts_reactivated=tuple(self.reactivated),
            links_added=tuple(self.links_added),
            links_removed=tuple(self.links_removed),
        )


def _diff(
    current: RepositoryView,
    accounts: Mapping[str, AccountSnapshot | None],
    sites: Mapping[str, SiteSnapshot | None],
    mode: DiffMode,
) -> Diff:
    builder = _Builder(current)
    deleted_sites = {name for name, site in sites.items() if site is None}
    for name, site in sites.items():
        if site is None:
            builder.gone(_SITE, name)
        else:
            builder.give(_SITE, name, site.display_name)

    work = _AccountWork()
    for email, snapshot in accounts.items():
        work.account(email, snapshot, current.accounts.get(email), deleted_sites)
    links_removed = work.links_removed
    links_added = work.links_added

    if deleted_sites:
        # A deleted site takes its memberships with it, even for accounts this read did not touch.
        for email, state in current.accounts.items():
            if email not in accounts:
                links_removed.extend(LinkRef(email, _SITE, s) for s in state.sites & deleted_sites)
    for name in work.needed_sites:
        builder.referenced(_SITE, name, "")
    for role in work.needed_roles:
        builder.referenced(_ROLE, role, role)

    def by_key(item: NewEntitlement | EntitlementChange) -> tuple[str, str]:
        return (item.type, item.value)

    return Diff(
        mode=mode,
        accounts_added=tuple(sorted(work.added, key=lambda a: a.email)),
        accounts_changed=tuple(sorted(work.changed, key=lambda a: a.email)),
        accounts_suspended=tuple(sorted(work.suspended, key=lambda a: a.email)),
        accounts_reactivated=tuple(sorted(work.reactivated, key=lambda a: a.email)),
        entitlements_added=tuple(sorted(builder.added.values(), key=by_key)),
        entitlements_changed=tuple(sorted(builder.changed.values(), key=by_key)),
        entitlements_inactivated=tuple(sorted(builder.inactivated.values(), key=by_key)),
        entitlements_reactivated=tuple(sorted(builder.reactivated.values(), key=by_key)),
        links_added=tuple(sorted(links_added)),
        links_removed=tuple(sorted(links_removed)),
    )


def _with_fields(state: AccountState, changes: Iterable[FieldChange]) -> AccountState:
    values: dict[str, Any] = {}
    for change in changes:
        if change.field == "created":
            values["created"] = parse_iso(change.new)
        elif change.field == "extra":
            values["extra"] = dict(change.new or {})
        else:
            values[change.field] = change.new
    return replace(state, **values)


def apply_to_view(view: RepositoryView, diff: Diff) -> RepositoryView:
    """What the repository holds after applying `diff` to `view` (the store does the same in SQL)."""
    accounts = dict(view.accounts)
    for snapshot in diff.accounts_added:
        accounts[snapshot.email] = AccountState(
            email=snapshot.email,
            name=snapshot.name,
            role=snapshot.role,
            status=str(snapshot.status),
            mfa_enabled=snapshot.mfa_enabled,
            created=snapshot.created,
            extra=dict(snapshot.extra),
        )
    for change in (*diff.accounts_changed, *diff.accounts_suspended, *diff.accounts_reactivated):
        accounts[change.email] = _with_fields(accounts[change.email], change.changes)
    links: dict[str, tuple[set[str], set[str]]] = {
        email: (set(a.sites), set(a.roles)) for email, a in accounts.items()
    }
    for link in diff.links_removed:
        links[link.email][0 if link.type == _SITE else 1].discard(link.value)
    for link in diff.links_added:
        links[link.email][0 if link.type == _SITE else 1].add(link.value)
    accounts = {
        email: replace(a, sites=frozenset(links[email][0]), roles=frozenset(links[email][1]))
        for email, a in accounts.items()
    }
    sites = dict(view.sites)
    roles = dict(view.roles)
    for new in diff.entitlements_added:
        table = sites if new.type == _SITE else roles
        table[new.value] = EntitlementState(new.type, new.value, new.display_name, _ACTIVE_ENT)
    for ent in (
        *diff.entitlements_changed,
        *diff.entitlements_inactivated,
        *diff.entitlements_reactivated,
    ):
        table = sites if ent.type == _SITE else roles
        fields = {c.field: c.new for c in ent.changes}
        table[ent.value] = replace(table[ent.value], **fields)
    return RepositoryView(accounts=accounts, sites=sites, roles=roles, version=view.version + 1)
