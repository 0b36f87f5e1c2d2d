"""A simulated corp wired to the importer, and the expected repository state read from the sim.

Everything "expected" here is computed from the simulator's own records (`SimState.users`,
`SimState.sites`), never from the API, so an import is checked against the source of truth.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sigsci_iga.connectors.base import Connector, PageResult
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.model import SiteSnapshot
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions, ImportResult
from sigsci_iga.sim import (
    FaultRule,
)
from sigsci_iga.store import Repository
from sim_corp import SimulatedCorp

NO_LIMIT = Limit(absolute=None, percent=None)
#: Thresholds that never hold: for tests about what is imported, not about holding.
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)


def sqlite_copy(template: Path, directory: Path) -> str:
    """A fresh migrated SQLite repository URL in `directory`, copied from a migrated template."""
    target = directory / "repo.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def options(**overrides: Any) -> ImportOptions:
    """Import options that never hold, unless the test passes thresholds itself."""
    values: dict[str, Any] = {"thresholds": NO_THRESHOLDS, **overrides}
    return ImportOptions(**values)


@dataclass
class Outcome:
    """One import's result, or the error it raised, and the calls its client sent."""

    result: ImportResult | None
    error: Exception | None
    client_calls: Counter[str]
    sim_calls: dict[str, int]

    @property
    def total_client_calls(self) -> int:
        return sum(self.client_calls.values())

    @property
    def total_sim_calls(self) -> int:
        return sum(self.sim_calls.values())

    def ok(self) -> ImportResult:
        """The result; fails the test with the error if the import raised."""
        if self.error is not None:
            raise AssertionError(f"import failed: {self.error!r}") from self.error
        assert self.result is not None
        return self.result


@dataclass
class SimCorp(SimulatedCorp):
    """One simulated corp and how to import it."""

    site_page_size: int = 100
    #: Small, so a full import of a test corp streams its users in several batches (and parts).
    users_batch: int = 7
    wrap: Callable[[Connector], Connector] | None = None

    def run(
        self,
        repo: Repository,
        endpoint: str | None = None,
        opts: ImportOptions | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        **client_options: Any,
    ) -> Outcome:
        """Run one import to the end (in its own event loop) and count its calls."""
        name = endpoint or self.corp
        self.runtime.calls.reset()

        async def go(client: SigSciClient) -> ImportResult:
            connector: Connector = SignalSciencesConnector(
                client, site_page_size=self.site_page_size, users_batch=self.users_batch
            )
            if self.wrap is not None:
                connector = self.wrap(connector)
            extra = {"clock": clock} if clock is not None else {}
            return await Importer(repo, name, connector, **extra).run(opts or options())

        client = self.client(**client_options)

        async def main() -> ImportResult:
            async with client:
                return await go(client)

        result: ImportResult | None = None
        error: Exception | None = None
        try:
            result = asyncio.run(main())
        except Exception as exc:  # noqa: BLE001  # the test inspects it
            error = exc
        return Outcome(result, error, Counter(client.calls), self.runtime.calls.snapshot())

    # -- what the repository should hold, read straight from the simulator -------------------

    def expected_accounts(self) -> dict[str, dict[str, Any]]:
        """email -> the fields `accounts list` shows; owners hold every site implicitly.

        The repository keys accounts by the lower-cased email, whatever the server's spelling.
        """
        state = self.state
        with state.lock:
            every_site = sorted(state.sites)
            return {
                user.email.lower(): {
                    "email": user.email.lower(),
                    "name": user.name,
                    "role": user.role,
                    "status": "active" if user.status == "active" else "pending",
                    "sites": every_site if user.role == "owner" else sorted(user.sites),
                }
                for user in state.users.values()
            }

    def expected_sites(self) -> dict[str, tuple[str, int]]:
        """site -> (display name, holders): explicit members plus every owner."""
        state = self.state
        with state.lock:
            owners = sum(1 for u in state.users.values() if u.role == "owner")
            return {
                name: (site.display_name, len(site.members) + owners)
                for name, site in state.sites.items()
            }

    def expected_roles(self) -> dict[str, int]:
        """role -> holders among the corp's users."""
        with self.state.lock:
            return dict(Counter(u.role for u in self.state.users.values()))


@contextmanager
def fault_after_first_sites_page(corp: SimCorp, rule: FaultRule) -> Iterator[None]:
    """Install `rule` as soon as the first page of sites has been read (a glitch mid-read)."""

    class Wrapped:
        def __init__(self, inner: Connector) -> None:
            self.inner = inner
            self.kind = inner.kind
            self.pages = 0

        async def sites_page(self, cursor: str | None) -> PageResult[SiteSnapshot]:
            page = await self.inner.sites_page(cursor)
            self.pages += 1
            if self.pages == 1:
                corp.runtime.faults.add(rule)
            return page

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    previous = corp.wrap
    corp.wrap = Wrapped  # type: ignore[assignment]
    try:
        yield
    finally:
        corp.wrap = previous
        corp.runtime.faults.clear()


# -- what the repository holds -------------------------------------------------------------------


def actual_accounts(repo: Repository, endpoint: str) -> dict[str, dict[str, Any]]:
    """email -> the same fields as `expected_accounts`, for accounts not suspended."""
    return {
        a.email: {
            "email": a.email,
            "name": a.name,
            "role": a.role,
            "status": a.status,
            "sites": a.sites,
        }
        for a in repo.inventory.accounts(endpoint)
        if a.status != "suspended"
    }


def suspended_emails(repo: Repository, endpoint: str) -> set[str]:
    return {a.email for a in repo.inventory.accounts(endpoint, status="suspended")}


def actual_sites(
    repo: Repository, endpoint: str, status: str = "active"
) -> dict[str, tuple[str, int]]:
    return {
        e.value: (e.display_name, e.holders)
        for e in repo.inventory.entitlements(endpoint, type="Site", status=status)
    }


def actual_roles(repo: Repository, endpoint: str) -> dict[str, int]:
    """role -> holders, for roles someone holds (a role nobody holds any more stays listed)."""
    return {
        e.value: e.holders
        for e in repo.inventory.entitlements(endpoint, type="CorpRole")
        if e.holders
    }


def assert_matches_sim(repo: Repository, endpoint: str, corp: SimCorp) -> None:
    """Accounts, sites and roles in the repository are exactly the simulator's."""
    assert actual_accounts(repo, endpoint) == corp.expected_accounts()
    assert actual_sites(repo, endpoint) == corp.expected_sites()
    assert actual_roles(repo, endpoint) == corp.expected_roles()
    for role in repo.inventory.entitlements(endpoint, type="CorpRole"):
        assert (role.display_name, role.status) == (role.value, "active")


def state_of(repo: Repository, endpoint: str) -> dict[str, Any]:
    """Accounts (every field), links and entitlement values: what two imports must agree on."""
    view = repo.runs.load_view(endpoint)
    return {
        "accounts": dict(view.accounts),
        "sites": dict(view.sites),
        "roles": dict(view.roles),
    }


def full_dump(repo: Repository, endpoint: str) -> dict[str, Any]:
    """Everything an import may write except the run records themselves."""
    info = repo.endpoints.get(endpoint)
    return {
        **state_of(repo, endpoint),
        "listed": [a.to_json() for a in repo.inventory.accounts(endpoint)],
        "entitlements": [e.to_json() for e in repo.inventory.entitlements(endpoint)],
        "version": info.version,
        "checkpoint": info.checkpoint,
        "history": len(repo.inventory.history(endpoint=endpoint, limit=None)),
    }
