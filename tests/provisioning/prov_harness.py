"""A simulated corp wired to the importer and the provisioning worker, plus what to expect of it.

Everything "expected" is read from the simulator's own records (`SimState.users`, its activity
feed), never through the API, so the worker is checked against the source of truth.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.thresholds import Limit, Thresholds
from sigsci_iga.importer.run import Importer, ImportOptions, ImportResult
from sigsci_iga.provisioning.worker import PlannedTask, RunSummary, Worker, WorkerOptions
from sigsci_iga.sim import (
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimState,
)
from sigsci_iga.store import Repository
from sim_corp import SimulatedCorp

NO_LIMIT = Limit(absolute=None, percent=None)
#: Imports in these tests are about drift, not about holding big changes for approval.
NO_THRESHOLDS = Thresholds(NO_LIMIT, NO_LIMIT, NO_LIMIT)
#: Fast retries: the tests are about outcomes, not about waiting.
FAST = WorkerOptions(retry_base_seconds=0.01, retry_max_seconds=0.05, throttle_wait_seconds=0.01)

Access = tuple[str, tuple[str, ...]]


def later(seconds: float) -> Callable[[], datetime]:
    """A worker clock running `seconds` ahead of the real one (to make backed-off tasks due)."""
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


# -- the simulated corp ------------------------------------------------------------------------


@dataclass
class Corp(SimulatedCorp):
    """One simulated corp, reached in-process, and the endpoint that governs it."""

    @property
    def endpoint(self) -> str:
        return self.corp

    def import_(self, repo: Repository, mode: str = "auto") -> ImportResult:
        """One import to the end, in its own event loop."""

        async def main() -> ImportResult:
            async with self.client() as client:
                importer = Importer(repo, self.endpoint, SignalSciencesConnector(client))
                return await importer.run(ImportOptions(mode=mode, thresholds=NO_THRESHOLDS))  # type: ignore[arg-type]

        return asyncio.run(main())

    def work(
        self,
        repo: Repository,
        options: WorkerOptions = FAST,
        *,
        task_ids: Sequence[int] | None = None,
        until_done: bool = False,
        max_wait_seconds: float = 60.0,
        worker_id: str | None = None,
        connector_cls: type[SignalSciencesConnector] = SignalSciencesConnector,
        clock: Callable[[], datetime] | None = None,
    ) -> tuple[RunSummary, Counter[str]]:
        """One worker run; returns its summary and the calls its client sent."""

        async def main() -> tuple[RunSummary, Counter[str]]:
            async with self.client() as client:
                worker = Worker(
                    repo,
                    self.endpoint,
                    connector_cls(client),
                    options=options,
                    worker_id=worker_id,
                    **({"clock": clock} if clock is not None else {}),
                )
                summary = await worker.run(
                    task_ids=task_ids, until_done=until_done, max_wait_seconds=max_wait_seconds
                )
                return summary, Counter(client.calls)

        return asyncio.run(main())

    def plan(self, repo: Repository, options: WorkerOptions = FAST) -> list[PlannedTask]:
        async def main() -> list[PlannedTask]:
            async with self.client() as client:
                worker = Worker(
                    repo, self.endpoint, SignalSciencesConnector(client), options=options
                )
                return await worker.plan_due()

        return asyncio.run(main())

    # -- reading the simulator's own records ---------------------------------------------------

    def access(self, email: str) -> Access | None:
        """(role, explicit sites) of one user (any case), or None when the corp has no such user."""
        with self.state.lock:
            user = self.state.get_user(email)
            return None if user is None else (user.role, tuple(sorted(user.sites)))

    def all_access(self) -> dict[str, Access]:
        with self.state.lock:
            return {u.email: (u.role, tuple(sorted(u.sites))) for u in self.state.users.values()}

    def status(self, email: str) -> str | None:
        user = self.state.get_user(email)
        return None if user is None else user.status

    def sites(self) -> list[str]:
        with self.state.lock:
            return list(self.state.sites)

    def users_by_role(self, role: str) -> list[str]:
        with self.state.lock:
            return [
                u.email
                for u in self.state.users.values()
                if u.role == role and u.email != DEMO_EMAIL
            ]


def events(state: SimState, kind: str) -> list[Any]:
    """Every event of one type the simulator emitted, oldest first, whichever feeds show it."""
    with state.lock:
        return [e for e in state.events if e.event_type == kind]


def invites_per_email(state: SimState) -> Counter[str]:
    return Counter(e.msg_data["email"] for e in events(state, "corpUserInvited"))


def site_adds_per_pair(state: SimState) -> Counter[tuple[str, str]]:
    return Counter(
        (e.msg_data["email"], e.msg_data["siteName"]) for e in events(state, "userAddedToSite")
    )


def site_removals_per_pair(state: SimState) -> Counter[tuple[str, str]]:
    return Counter(
        (e.msg_data["email"], e.msg_data["siteName"]) for e in events(state, "userRemovedFromSite")
    )


def removals_per_email(state: SimState) -> Counter[str]:
    return Counter(e.msg_data["email"] for e in events(state, "userRemoved"))


def role_changes_per_email(state: SimState) -> Counter[str]:
    return Counter(
        e.msg_data["email"] for e in events(state, "userUpdated") if "role" in e.msg_data
    )


def writes(calls: Mapping[str, int]) -> dict[str, int]:
    """The non-GET entries of a call counter."""
    return {k: v for k, v in calls.items() if not k.startswith("GET ") and v}


def repo_access(repo: Repository, endpoint: str, email: str) -> tuple[str, str, list[str]] | None:
    """(role, status, sites) the repository holds for an account, None if absent or suspended."""
    account = repo.inventory.find_account(endpoint, email)
    if account is None or account.status == "suspended":
        return None
    return account.role, account.status, sorted(account.sites)


# -- the real command, as a child process --------------------------------------------------------


def cli_env(api_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The child's environment: inherited SIGSCI* variables stripped, the demo credentials set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SIGSCI") and k not in ("FORCE_COLOR", "USER")
    }
    env.update(
        {
            "SIGSCI_API_URL": api_url,
            "SIGSCI_EMAIL": DEMO_EMAIL,
            "SIGSCI_TOKEN": DEMO_TOKEN,
            "SIGSCI_CORP": "testcorp",
            "SIGSCI_IGA_DATABASE_URL": database_url,
            "COLUMNS": "200",
            **extra,
        }
    )
    return env


def provision_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sigsci_iga", "provision", "run", *args]


@dataclass
class Model:
    """What the corp must look like once every task ran: the tasks applied, in order, to a copy."""

    access: dict[str, Access]

    def apply(self, operation: str, email: str, params: Mapping[str, Any]) -> None:
        if operation == "create_account":
            self.access[email] = (str(params["role"]), tuple(sorted(params["sites"])))
            return
        if operation == "remove_account":
            self.access.pop(email, None)
            return
        role, sites = self.access[email]
        if operation == "update_account":
            self.access[email] = (str(params["role"]), sites)
        elif params["entitlement_type"] == "CorpRole":
            self.access[email] = (str(params["value"]), sites)
        elif operation == "add_access":
            self.access[email] = (role, tuple(sorted({*sites, params["value"]})))
        else:
            self.access[email] = (role, tuple(s for s in sites if s != params["value"]))


@dataclass
class Mix:
    """A mixed queue of tasks and exactly which events applying it once must produce."""

    tasks: list[tuple[str, str, dict[str, Any]]]
    model: Model
    invites: Counter[str]
    site_adds: Counter[tuple[str, str]]
    site_removals: Counter[tuple[str, str]]
    removals: Counter[str]
    role_changes: Counter[str]
    #: Indexes of tasks that find their change already in place.
    no_ops: set[int]


def site_entry(site: str) -> dict[str, Any]:
    return {"entitlement_type": "Site", "value": site}


def build_mix(corp: Corp, rng: random.Random, *, new_users: int, per_kind: int) -> Mix:
    """New joiners (some then moved or re-roled), site grants and removals, role changes,
    leavers and a few no-ops, each existing user touched once, in a shuffled queue order."""
    access = corp.all_access()
    sites = corp.sites()
    people = [
        e for e, (r, s) in access.items() if r != "owner" and not e.endswith("@testcorp.example")
    ]
    rng.shuffle(people)
    tasks: list[tuple[str, str, dict[str, Any]]] = []
    mix = Mix(
        tasks, Model(dict(access)), Counter(), Counter(), Counter(), Counter(), Counter(), set()
    )
    chains: list[list[tuple[str, str, dict[str, Any]]]] = []
    for index in range(new_users):
        email = f"joiner{index}@example.com"
        granted = sorted(rng.sample(sites, rng.randint(1, 3)))
        role = rng.choice(["user", "observer"])
        chain = [("create_account", email, {"role": role, "sites": granted})]
        if index % 3 == 0:
            extra = next(s for s in sites if s not in granted)
            chain.append(("add_access", email, site_entry(extra)))
        if index % 3 == 1:
            chain.append(("update_account", email, {"role": "admin"}))
        chains.append(chain)
    for _ in range(per_kind):
        email = people.pop()
        missing = [s for s in sites if s not in access[email][1]]
        chains.append([("add_access", email, site_entry(rng.choice(missing)))])
    for _ in range(per_kind):
        email = next(e for e in people if len(access[e][1]) >= 2)
        people.remove(email)
        chains.append(
            [("remove_access", email, {**site_entry(access[email][1][0]), "allow_no_sites": False})]
        )
    for _ in range(per_kind):
        email = people.pop()
        chains.append(
            [
                (
                    "update_account",
                    email,
                    {"role": "admin" if access[email][0] != "admin" else "user"},
                )
            ]
        )
    for _ in range(max(2, per_kind // 2)):
        chains.append([("remove_account", people.pop(), {})])
    for _ in range(2):
        email = people.pop()
        chains.append([("add_access", email, site_entry(access[email][1][0]))])
    rng.shuffle(chains)
    # Interleave: the first step of every chain, then the second steps, so an account's later
    # task sits behind its earlier one in the queue with other accounts' tasks between them.
    for depth in range(max(len(c) for c in chains)):
        tasks.extend(c[depth] for c in chains if len(c) > depth)
    _expect(mix)
    return mix


def _expect(mix: Mix) -> None:
    """Run the model over the queue and count the events each change must produce once."""
    for index, (operation, email, params) in enumerate(mix.tasks):
        before = mix.model.access.get(email)
        mix.model.apply(operation, email, params)
        after = mix.model.access.get(email)
        if before == after:
            mix.no_ops.add(index)
            continue
        if operation == "create_account":
            mix.invites[email] += 1
            for site in params["sites"]:
                mix.site_adds[(email, site)] += 1
        elif operation == "add_access":
            mix.site_adds[(email, params["value"])] += 1
        elif operation == "remove_access":
            mix.site_removals[(email, params["value"])] += 1
        elif operation == "remove_account":
            mix.removals[email] += 1
        else:
            mix.role_changes[email] += 1


def queue_mix(repo: Repository, endpoint: str, mix: Mix, **options: Any) -> list[int]:
    return [
        repo.tasks.create(endpoint, operation, email, params, **options).id
        for operation, email, params in mix.tasks
    ]


def assert_applied_once(corp: Corp, mix: Mix) -> None:
    """The corp is the model, and each change shows up in the activity feed exactly once."""
    assert corp.all_access() == mix.model.access
    assert invites_per_email(corp.state) == mix.invites
    assert site_adds_per_pair(corp.state) == mix.site_adds
    assert site_removals_per_pair(corp.state) == mix.site_removals
    assert removals_per_email(corp.state) == mix.removals
    assert role_changes_per_email(corp.state) == mix.role_changes
