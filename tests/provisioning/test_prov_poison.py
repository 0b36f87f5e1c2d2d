"""A poisoned task fails alone, with the reason; the worker run and the other tasks go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prov_harness import Corp

from sigsci_iga import app
from sigsci_iga.connectors.base import AddToSite, Step
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.settings import Settings
from sigsci_iga.store import Repository

POISON = "poison@example.com"


class _PoisonedConnector(SignalSciencesConnector):
    """Fails, as a bug would, whenever a step names the poisoned address."""

    async def execute(self, step: Step) -> None:
        if POISON in str(step):
            raise ValueError("cannot encode this request")
        await super().execute(step)


def _user_task(repo: Repository, corp: Corp, site: str, email: str) -> int:
    params = build_params(repo, corp.endpoint, "add_access", site=site)
    return repo.tasks.create(corp.endpoint, "add_access", email, params).id


def _sites_without(corp: Corp, email: str) -> list[str]:
    held = set(corp.state.get_user(email).sites)  # type: ignore[union-attr]
    return [s for s in corp.sites() if s not in held]


def test_a_task_whose_parameters_break_planning_fails_alone_and_the_rest_complete(
    imported: Repository, corp: Corp
) -> None:
    users = corp.users_by_role("user")[:3]
    good = [_user_task(imported, corp, _sites_without(corp, u)[0], u) for u in users[:2]]
    # Parameters no request would make: planning a create-account without a role raises.
    broken = imported.tasks.create(corp.endpoint, "create_account", users[2], {"sites": []}).id

    summary, _ = corp.work(imported)

    assert imported.tasks.get(broken).state is TaskState.FAILED
    assert "could not be processed (planning)" in (imported.tasks.get(broken).last_error or "")
    assert [imported.tasks.get(t).state for t in good] == [TaskState.COMPLETED] * 2
    assert summary.failed == 1
    assert summary.completed == 2


def test_a_step_that_raises_fails_its_task_only_even_inside_a_shared_bulk_call(
    imported: Repository, corp: Corp
) -> None:
    users = corp.users_by_role("user")[:3]
    site = next(s for s in corp.sites() if all(s in _sites_without(corp, u) for u in users))
    corp.state.add_user(POISON, "user", [next(x for x in corp.sites() if x != site)])
    corp.import_(imported, mode="full")
    tasks = [_user_task(imported, corp, site, u) for u in [*users, POISON]]

    summary, _ = corp.work(imported, connector_cls=_PoisonedConnector)

    states = {t: imported.tasks.get(t).state for t in tasks}
    assert states[tasks[-1]] is TaskState.FAILED
    assert "ValueError" in (imported.tasks.get(tasks[-1]).last_error or "")
    assert [states[t] for t in tasks[:-1]] == [TaskState.COMPLETED] * 3
    assert all(site in corp.state.get_user(u).sites for u in users)  # type: ignore[union-attr]
    assert site not in corp.state.get_user(POISON).sites  # type: ignore[union-attr]
    assert summary.failed == 1


@pytest.mark.parametrize(
    "field",
    [{"justification": "bad \ud800 text"}, {"requester": "\udfff"}, {"email": "a\ud800@x.io"}],
)
def test_text_that_is_not_valid_unicode_is_refused_at_request_time(
    tmp_path: Any, field: dict[str, str]
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/iga.db",
        corp="testcorp",
        email="owner@testcorp.example",
        token="x" * 20,
    )
    values: dict[str, Any] = {"email": "pat@example.com", "role": "user", "sites": ("www",)}
    values.update(field)
    with app.AppContext(settings) as ctx:
        with pytest.raises(InvalidInputError, match=r"valid Unicode|not an email"):
            app.submit_request(ctx, None, app.AccessRequest(Operation.CREATE_ACCOUNT, **values))
        assert app.list_tasks(ctx) == []


def test_the_poisoned_connector_really_poisons(corp: Corp) -> None:
    """The fixture works: a step naming the address raises (so the tests above mean something)."""

    async def main() -> None:
        async with corp.client() as client:
            with pytest.raises(ValueError, match="cannot encode"):
                await _PoisonedConnector(client).execute(AddToSite("www", (POISON,)))

    asyncio.run(main())
