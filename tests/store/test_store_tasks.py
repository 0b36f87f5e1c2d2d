"""Provisioning tasks: queueing, claiming under leases, finishing, retries and the account update."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pg_databases import truncate_all
from sigsci_iga.domain import AccountSnapshot, compute_diff
from sigsci_iga.domain.tasks import runs_alongside
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import (
    JournalEntry,
    LeaseLostError,
    RecordNotFoundError,
    Repository,
    RepositoryChangedError,
    TaskFinish,
    TaskRecord,
    TaskStateError,
    open_repository,
)
from sigsci_iga.store.db import create_engine_for, current_revision, head_revision, upgrade

from .helpers import account, add_endpoint, corp, import_full

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0


def queue(
    repo: Repository,
    email: str,
    operation: str = "add_access",
    *,
    at: datetime = T0,
    max_attempts: int = 10,
    **params: object,
) -> TaskRecord:
    return repo.tasks.create(
        "prod", operation, email, params or {"site": "www"}, now=at, max_attempts=max_attempts
    )


def claim(
    repo: Repository,
    worker: str = "w1",
    *,
    at: datetime = T0,
    limit: int = 10,
    **options: object,
) -> list[TaskRecord]:
    return repo.tasks.claim(
        "prod",
        worker=worker,
        now=at,
        lease_seconds=LEASE,
        limit=limit,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def prod(repo: Repository) -> Repository:
    add_endpoint(repo)
    return repo


def test_a_created_task_is_new_due_now_and_journaled_as_requested(prod: Repository) -> None:
    task = prod.tasks.create(
        "prod",
        "create_account",
        " Carol@Example.com ",
        {"role": "user", "sites": ["www"]},
        requester="admin@example.com",
        justification="joins the team",
        now=T0,
    )

    assert (task.state, task.email, task.attempts, task.max_attempts) == (
        "new",
        "carol@example.com",
        0,
        10,
    )
    assert task.next_attempt_at == T0
    assert len(task.request_id) == 32
    assert not task.write_sent
    assert prod.tasks.get(task.id) == task
    (requested,) = prod.journal.list(task_id=task.id)
    assert (requested.kind, requested.state_after, requested.target) == (
        "requested",
        "new",
        "carol@example.com",
    )
    assert requested.detail == {
        "params": {"role": "user", "sites": ["www"]},
        "requester": "admin@example.com",
        "justification": "joins the team",
    }
    assert task.to_json()["created_at"] == "2024-03-01T12:00:00+00:00"


def test_bad_operations_emails_secret_params_and_unknown_tasks_are_refused(
    prod: Repository,
) -> None:
    with pytest.raises(InvalidInputError, match="operation 'delete_corp'"):
        prod.tasks.create("prod", "delete_corp", "a@x.io", {})
    with pytest.raises(InvalidInputError, match="not an email"):
        prod.tasks.create("prod", "add_access", "nobody", {})
    with pytest.raises(InvalidInputError, match="never stored"):
        prod.tasks.create("prod", "create_account", "a@x.io", {"api_token": "t"})
    with pytest.raises(RecordNotFoundError, match="'nope'"):
        prod.tasks.create("nope", "add_access", "a@x.io", {})
    with pytest.raises(RecordNotFoundError, match="task 99"):
        prod.tasks.get(99)

    assert prod.tasks.list() == []
    assert prod.journal.list() == []


def test_claiming_leases_due_tasks_oldest_first_and_counts_the_attempt(
    prod: Repository,
) -> None:
    first = queue(prod, "a@x.io")
    second = queue(prod, "b@x.io")
    queue(prod, "c@x.io", at=T0 + timedelta(minutes=5))

    claimed = claim(prod, limit=5)

    assert [t.id for t in claimed] == [first.id, second.id]
    assert all(t.state == "in_progress" and t.attempts == 1 for t in claimed)
    assert claimed[0].lease_owner == "w1"
    assert claimed[0].lease_until == T0 + timedelta(seconds=LEASE)
    assert claim(prod, "w2") == []
    (entry,) = prod.journal.list(task_id=first.id, kind="claimed")
    assert (entry.state_before, entry.state_after, entry.attempt) == ("new", "in_progress", 1)
    assert entry.detail == {"worker": "w1", "lease_until": "2024-03-01T12:01:00+00:00"}


def test_one_accounts_tasks_run_in_order_and_one_at_a_time(prod: Repository) -> None:
    older = queue(prod, "a@x.io", site="www")
    younger = queue(prod, "A@x.io", site="api")
    other = queue(prod, "b@x.io")

    first_claim = claim(prod)
    prod.tasks.finish(older.id, worker="w1", state="completed", now=T0)
    second_claim = claim(prod)

    assert [t.id for t in first_claim] == [older.id, other.id]
    assert [t.id for t in second_claim] == [younger.id]


def test_a_retried_older_task_does_not_run_beside_a_younger_running_one(
    prod: Repository,
) -> None:
    older = queue(prod, "a@x.io", site="www")
    younger = queue(prod, "a@x.io", site="api")
    claim(prod)
    prod.tasks.finish(older.id, worker="w1", state="failed", error="boom", now=T0)
    claim(prod)
    prod.tasks.retry(older.id, now=T0)

    assert claim(prod, "w2") == []
    prod.tasks.finish(younger.id, worker="w1", state="completed", now=T0)
    assert [t.id for t in claim(prod, "w2")] == [older.id]


def test_per_operation_limits_cap_each_operation_within_one_claim(prod: Repository) -> None:
    creates = [queue(prod, f"new{i}@x.io", "create_account", role="user") for i in range(3)]
    removals = [queue(prod, f"old{i}@x.io", "remove_account", name="x") for i in range(3)]
    updates = [queue(prod, f"up{i}@x.io", "update_account", role="admin") for i in range(2)]

    claimed = claim(prod, per_operation_limits={"create_account": 1, "remove_account": 0})

    assert [t.id for t in claimed] == [creates[0].id, *(t.id for t in updates)]
    assert all(t.state == "new" for t in prod.tasks.list(email="old0@x.io"))
    assert len(removals) == 3


def test_task_ids_restrict_what_a_claim_may_take(prod: Repository) -> None:
    queue(prod, "a@x.io")
    wanted = queue(prod, "b@x.io")

    assert [t.id for t in claim(prod, task_ids=[wanted.id])] == [wanted.id]
    assert [t.email for t in prod.tasks.list(state="new")] == ["a@x.io"]


def test_an_abandoned_lease_is_reclaimed_only_after_it_expires(prod: Repository) -> None:
    task = queue(prod, "a@x.io")
    claim(prod, "dead-worker")

    early = claim(prod, "w2", at=T0 + timedelta(seconds=LEASE - 1))
    late = claim(prod, "w2", at=T0 + timedelta(seconds=LEASE + 1))

    assert early == []
    assert [(t.id, t.lease_owner, t.attempts) for t in late] == [(task.id, "w2", 2)]
    reclaimed = prod.journal.list(task_id=task.id, kind="claimed")[-1]
    assert reclaimed.state_before == "in_progress"
    assert reclaimed.detail is not None
    assert reclaimed.detail["reclaimed_from"] == "dead-worker"


def test_a_stale_worker_cannot_touch_a_task_another_worker_reclaimed(prod: Repository) -> None:
    task = queue(prod, "a@x.io")
    claim(prod, "slow")
    claim(prod, "fast", at=T0 + timedelta(seconds=LEASE + 1))
    intent = JournalEntry(endpoint="prod", kind="intent", method="PUT", path="/x")

    with pytest.raises(LeaseLostError, match="held by fast"):
        prod.tasks.finish(task.id, worker="slow", state="completed")
    with pytest.raises(LeaseLostError):
        prod.tasks.record_intent(task.id, worker="slow", entry=intent)
    with pytest.raises(LeaseLostError):
        prod.tasks.reschedule(task.id, worker="slow", error="e", next_attempt_at=T0)
    with pytest.raises(LeaseLostError):
        prod.tasks.extend_lease(task.id, worker="slow", now=T0, lease_seconds=LEASE)

    current = prod.tasks.get(task.id)
    assert (current.state, current.lease_owner, current.write_sent) == (
        "in_progress",
        "fast",
        False,
    )


def test_an_extended_lease_is_not_reclaimed(prod: Repository) -> None:
    task = queue(prod, "a@x.io")
    claim(prod)

    prod.tasks.extend_lease(
        task.id, worker="w1", now=T0 + timedelta(seconds=50), lease_seconds=LEASE
    )

    assert claim(prod, "w2", at=T0 + timedelta(seconds=LEASE + 1)) == []


def test_a_rescheduled_task_waits_until_due_and_fails_after_its_last_attempt(
    prod: Repository,
) -> None:
    task = queue(prod, "a@x.io", max_attempts=2)
    later = T0 + timedelta(minutes=1)
    claim(prod)

    again = prod.tasks.reschedule(
        task.id, worker="w1", error="503 from the API", next_attempt_at=later, now=T0
    )
    not_yet = claim(prod, at=later - timedelta(seconds=1))
    claim(prod, at=later)
    final = prod.tasks.reschedule(
        task.id, worker="w1", error="503 again", next_attempt_at=later, now=later
    )

    assert (again.state, again.next_attempt_at, again.last_error) == (
        "new",
        later,
        "503 from the API",
    )
    assert again.lease_owner is None
    assert not_yet == []
    assert (final.state, final.attempts, final.finished_at) == ("failed", 2, later)
    states = [
        (e.state_before, e.state_after) for e in prod.journal.list(task_id=task.id, kind="state")
    ]
    assert states == [("in_progress", "new"), ("in_progress", "failed")]


def test_retry_puts_a_failed_task_back_with_a_fresh_budget_and_refuses_others(
    prod: Repository,
) -> None:
    task = queue(prod, "a@x.io", max_attempts=1)
    claim(prod)
    prod.tasks.reschedule(task.id, worker="w1", error="boom", next_attempt_at=T0)
    pending = queue(prod, "b@x.io")

    retried = prod.tasks.retry(task.id, now=T0)

    assert (retried.state, retried.attempts, retried.finished_at) == ("new", 0, None)
    note = prod.journal.list(task_id=task.id)[-1]
    assert (note.kind, note.state_before, note.state_after) == ("note", "failed", "new")
    with pytest.raises(TaskStateError, match="only failed or discontinued"):
        prod.tasks.retry(pending.id)


def test_discontinue_stops_open_and_failed_tasks_but_not_finished_ones(
    prod: Repository,
) -> None:
    waiting = queue(prod, "a@x.io")
    running = queue(prod, "b@x.io")
    done = queue(prod, "c@x.io")
    claim(prod, task_ids=[running.id, done.id])
    prod.tasks.finish(done.id, worker="w1", state="completed")

    stopped = prod.tasks.discontinue(waiting.id, reason="requested by mistake")
    prod.tasks.discontinue(running.id)

    assert stopped.state == "discontinued"
    assert stopped.finished_at is not None
    assert prod.journal.list(task_id=waiting.id)[-1].detail == {"reason": "requested by mistake"}
    with pytest.raises(LeaseLostError, match="discontinued"):
        prod.tasks.finish(running.id, worker="w1", state="completed")
    with pytest.raises(TaskStateError, match="is completed"):
        prod.tasks.discontinue(done.id)
    assert prod.tasks.retry(stopped.id).state == "new"


def test_an_intent_marks_the_task_as_having_sent_a_write_for_good(prod: Repository) -> None:
    task = queue(prod, "a@x.io")
    claim(prod)

    marked = prod.tasks.record_intent(
        task.id,
        worker="w1",
        entry=JournalEntry(endpoint="prod", kind="intent", method="PUT", path="/corps/c/users/a"),
    )
    prod.tasks.reschedule(task.id, worker="w1", error="timeout", next_attempt_at=T0)

    assert marked.write_sent
    assert prod.tasks.get(task.id).write_sent
    (intent,) = prod.journal.list(task_id=task.id, kind="intent")
    assert (intent.target, intent.attempt, intent.operation) == ("a@x.io", 1, "add_access")
    with pytest.raises(InvalidInputError, match="not 'call'"):
        prod.tasks.record_intent(
            task.id, worker="w1", entry=JournalEntry(endpoint="prod", kind="call")
        )


def test_listing_tasks_filters_by_endpoint_state_email_and_request(prod: Repository) -> None:
    add_endpoint(prod, "stage")
    a = prod.tasks.create("prod", "add_access", "a@x.io", {"site": "www"}, request_id="r1")
    b = prod.tasks.create("prod", "add_access", "b@x.io", {"site": "www"}, request_id="r1")
    c = prod.tasks.create("stage", "add_access", "a@x.io", {"site": "www"})

    assert [t.id for t in prod.tasks.list(request_id="r1")] == [a.id, b.id]
    assert [t.id for t in prod.tasks.list(endpoint="stage")] == [c.id]
    assert [t.id for t in prod.tasks.list(email="A@X.io")] == [a.id, c.id]
    assert [t.id for t in prod.tasks.list(state=["new", "failed"], limit=1)] == [a.id]
    with pytest.raises(InvalidInputError, match="running"):
        prod.tasks.list(state="running")


# -- finishing brings the accounts up to date ------------------------------------------------


def finish_with(
    repo: Repository, email: str, snapshot: AccountSnapshot | None, operation: str
) -> TaskRecord:
    task = queue(repo, email, operation)
    claim(repo, task_ids=[task.id])
    return repo.tasks.finish(
        task.id, worker="w1", state="completed", account_changes={email: snapshot}, now=T0
    )


def test_finishing_a_task_updates_just_its_account_links_and_history(prod: Repository) -> None:
    import_full(prod, corp(account("alice@x.io", "www"), account("bob@x.io", "www")))

    added = finish_with(prod, "alice@x.io", account("alice@x.io", "www", "api"), "add_access")
    finish_with(prod, "alice@x.io", account("alice@x.io", "api", role="admin"), "update_account")
    finish_with(prod, "carol@x.io", account("carol@x.io", "api"), "create_account")

    alice = prod.inventory.account("prod", "alice@x.io")
    assert (alice.role, alice.sites) == ("admin", ["api"])
    assert prod.inventory.account("prod", "carol@x.io").sites == ["api"]
    assert prod.inventory.account("prod", "bob@x.io").sites == ["www"]
    changes = prod.inventory.history(task_id=added.id)
    assert [(h.object_type, h.field, h.old_value, h.new_value, h.run_id) for h in changes] == [
        ("link", "Site", None, "api", None)
    ]
    assert changes[0].task_id == added.id
    assert prod.endpoints.get("prod").version == 4


def test_finishing_a_removal_suspends_the_account_and_drops_its_links(prod: Repository) -> None:
    import_full(prod, corp(account("alice@x.io", "www", "api"), account("bob@x.io", "www")))

    task = finish_with(prod, "alice@x.io", None, "remove_account")

    alice = prod.inventory.account("prod", "alice@x.io")
    assert (alice.status, alice.sites) == ("suspended", [])
    assert {(h.object_type, h.field) for h in prod.inventory.history(task_id=task.id)} == {
        ("account", "status"),
        ("link", "Site"),
        ("link", "CorpRole"),
    }
    assert compute_diff(prod.runs.load_view("prod"), corp(account("bob@x.io", "www"))).is_empty


def test_a_task_outcome_already_in_the_repository_changes_nothing(prod: Repository) -> None:
    import_full(prod, corp(account("alice@x.io", "www")))

    task = finish_with(prod, "alice@x.io", account("alice@x.io", "www"), "add_access")

    assert prod.inventory.history(task_id=task.id) == []
    assert prod.endpoints.get("prod").version == 1


def test_a_held_import_diffed_before_a_task_finished_cannot_be_approved(
    prod: Repository,
) -> None:
    import_full(prod, corp(account("alice@x.io", "www")))
    run_id = prod.runs.start("prod")
    view = prod.runs.load_view("prod")
    prod.runs.hold(
        run_id, diff=compute_diff(view, corp()), base_version=view.version, reasons=["x"]
    )

    finish_with(prod, "bob@x.io", account("bob@x.io", "www"), "create_account")

    with pytest.raises(RepositoryChangedError):
        prod.runs.approve(run_id)


def test_a_finish_whose_account_change_is_refused_leaves_the_task_running(
    prod: Repository,
) -> None:
    task = queue(prod, "a@x.io")
    claim(prod)

    with pytest.raises(InvalidInputError, match="changed account key"):
        prod.tasks.finish(
            task.id,
            worker="w1",
            state="completed",
            account_changes={"a@x.io": account("someone-else@x.io")},
        )

    assert prod.tasks.get(task.id).state == "in_progress"
    assert prod.journal.list(task_id=task.id, kind="state") == []


# -- a batch at a time -----------------------------------------------------------------------


def test_finishing_a_batch_ends_each_task_with_its_own_journal_and_history(
    prod: Repository,
) -> None:
    import_full(prod, corp(account("alice@x.io", "www"), account("bob@x.io", "www")))
    alice, bob, carol = (queue(prod, e) for e in ("alice@x.io", "bob@x.io", "carol@x.io"))
    claim(prod)
    note = JournalEntry(endpoint="prod", kind="note", detail={"reason": "already there"})

    result = prod.tasks.finish_many(
        [
            TaskFinish(
                task_id=alice.id,
                state="completed",
                account_changes={"alice@x.io": account("alice@x.io", "www", "api")},
            ),
            TaskFinish(
                task_id=bob.id,
                state="no_action_required",
                journal=[note],
                account_changes={"bob@x.io": account("bob@x.io", "www")},
            ),
            TaskFinish(
                task_id=carol.id,
                state="completed",
                account_changes={"carol@x.io": account("carol@x.io", "api", role="admin")},
            ),
        ],
        worker="w1",
        now=T0,
    )

    assert result.lost == []
    assert [(t.id, t.state) for t in result.finished] == [
        (alice.id, "completed"),
        (bob.id, "no_action_required"),
        (carol.id, "completed"),
    ]
    assert all(t.lease_owner is None and t.finished_at == T0 for t in result.finished)
    assert [(h.object_type, h.new_value) for h in prod.inventory.history(task_id=alice.id)] == [
        ("link", "api")
    ]
    assert prod.inventory.history(task_id=bob.id) == []
    # carol's account and the CorpRole value first seen through her are her task's doing.
    assert {(h.object_type, h.object_key) for h in prod.inventory.history(task_id=carol.id)} == {
        ("account", "carol@x.io"),
        ("entitlement", "CorpRole:admin"),
    }
    assert prod.inventory.account("prod", "carol@x.io").sites == ["api"]
    assert [e.kind for e in prod.journal.list(task_id=bob.id)][-2:] == ["note", "state"]
    assert prod.endpoints.get("prod").version == 2
    assert all(report.intact for report in prod.journal.verify())


def test_a_batch_finish_leaves_a_task_whose_lease_was_lost_alone_and_names_it(
    prod: Repository,
) -> None:
    kept, taken = queue(prod, "a@x.io"), queue(prod, "b@x.io")
    claim(prod, "w1")
    prod.tasks.discontinue(taken.id)

    result = prod.tasks.finish_many(
        [
            TaskFinish(task_id=kept.id, state="completed"),
            TaskFinish(task_id=taken.id, state="completed"),
        ],
        worker="w1",
    )

    assert [t.id for t in result.finished] == [kept.id]
    assert len(result.lost) == 1
    assert f"task {taken.id} is discontinued" in result.lost[0]
    assert prod.tasks.get(taken.id).state == "discontinued"
    assert prod.journal.list(task_id=taken.id, kind="state")[-1].state_after == "discontinued"


def test_a_batch_finish_that_changes_one_account_two_ways_is_refused_whole(
    prod: Repository,
) -> None:
    first, second = queue(prod, "a@x.io"), queue(prod, "b@x.io")
    claim(prod)

    with pytest.raises(InvalidInputError, match="changed by tasks"):
        prod.tasks.finish_many(
            [
                TaskFinish(
                    task_id=first.id,
                    state="completed",
                    account_changes={"a@x.io": account("a@x.io", "www")},
                ),
                TaskFinish(
                    task_id=second.id,
                    state="completed",
                    account_changes={"a@x.io": account("a@x.io", "api")},
                ),
            ],
            worker="w1",
        )
    with pytest.raises(InvalidInputError, match="each task once"):
        prod.tasks.finish_many(
            [
                TaskFinish(task_id=first.id, state="completed"),
                TaskFinish(task_id=first.id, state="failed"),
            ],
            worker="w1",
        )

    assert {prod.tasks.get(t.id).state for t in (first, second)} == {"in_progress"}
    assert prod.journal.list(kind="state") == []


def test_intents_for_a_shared_write_are_recorded_for_all_its_tasks_or_for_none(
    prod: Repository,
) -> None:
    a, b, c = (queue(prod, e) for e in ("a@x.io", "b@x.io", "c@x.io"))
    claim(prod)

    def intent() -> JournalEntry:
        return JournalEntry(endpoint="prod", kind="intent", method="POST", path="/members")

    prod.tasks.record_intents({a.id: [intent()], b.id: [intent()]}, worker="w1")
    prod.tasks.discontinue(c.id)
    with pytest.raises(LeaseLostError):
        prod.tasks.record_intents({a.id: [intent()], c.id: [intent()]}, worker="w1")
    with pytest.raises(InvalidInputError, match="no intent"):
        prod.tasks.record_intents(
            {a.id: [JournalEntry(endpoint="prod", kind="snapshot", detail={"role": "user"})]},
            worker="w1",
        )

    assert [prod.tasks.get(t.id).write_sent for t in (a, b, c)] == [True, True, False]
    assert [len(prod.journal.list(task_id=t.id, kind="intent")) for t in (a, b, c)] == [1, 1, 0]
    assert all(report.intact for report in prod.journal.verify())


# -- concurrency and migration ---------------------------------------------------------------


@pytest.mark.postgres
def test_two_workers_claiming_at_once_never_take_the_same_task(pg_session_url: str) -> None:
    truncate_all(pg_session_url)
    setup = open_repository(pg_session_url)
    add_endpoint(setup)
    # Several tasks per account too: their order must hold across workers.
    created = [queue(setup, f"user{i % 60}@x.io") for i in range(150)]
    setup.close()
    barrier = threading.Barrier(2)
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    failures: list[BaseException] = []

    def work(worker: str) -> None:
        repo = open_repository(pg_session_url)
        try:
            barrier.wait()
            while True:
                batch = claim(repo, worker, limit=7)
                if not batch and not repo.tasks.list(state="new"):
                    return
                for task in batch:
                    claimed[worker].append(task.id)
                    repo.tasks.finish(task.id, worker=worker, state="completed", now=T0)
        except BaseException as exc:  # noqa: BLE001  # reported by the main thread
            failures.append(exc)
        finally:
            repo.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    everything = claimed["w1"] + claimed["w2"]
    assert sorted(everything) == sorted(t.id for t in created)
    assert claimed["w1"]
    assert claimed["w2"]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_database_at_0001_is_upgraded_to_the_head_with_its_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("fresh_pg_url")
    )
    upgrade(url, "0001")
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO endpoints (name, connector, api_url, corp, settings,"
                " checkpoint_event_ids, version, created_at)"
                " VALUES ('prod', 'signalsciences', 'https://x', 'c', '{}', '[]', 1, :at)"
            ),
            {"at": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO history (endpoint_id, object_type, object_key, changed_at)"
                " VALUES (1, 'account', 'a@x.io', :at)"
            ),
            {"at": T0},
        )
    assert current_revision(engine) == "0001"
    engine.dispose()

    repo = open_repository(url)
    try:
        task = repo.tasks.create("prod", "add_access", "a@x.io", {"site": "www"})

        assert current_revision(repo.engine) == head_revision() == "0009"
        assert repo.endpoints.get("prod").version == 1
        assert [(h.object_key, h.task_id) for h in repo.inventory.history()] == [("a@x.io", None)]
        assert [e.kind for e in repo.journal.list(task_id=task.id)] == ["requested"]
    finally:
        repo.close()


# -- an account's site grants go together ------------------------------------------------------


def grant(repo: Repository, email: str, site: str, **at: datetime) -> TaskRecord:
    return queue(repo, email, entitlement_type="Site", value=site, **at)


def test_an_accounts_site_grants_on_different_sites_are_claimed_together(
    prod: Repository,
) -> None:
    www, api = grant(prod, "a@x.io", "www"), grant(prod, "a@x.io", "api")
    other = grant(prod, "b@x.io", "www")
    www_again = grant(prod, "a@x.io", "www")
    later = grant(prod, "a@x.io", "docs")

    # The second grant on www stops the run: it, and the docs grant behind it, wait.
    assert [t.id for t in claim(prod)] == [www.id, api.id, other.id]
    assert claim(prod, "w2") == []

    prod.tasks.finish_many(
        [TaskFinish(task_id=t.id, state="completed") for t in (www, api, other)], worker="w1"
    )
    assert [t.id for t in claim(prod, "w2")] == [www_again.id, later.id]


def test_anything_but_a_site_grant_keeps_the_accounts_later_tasks_waiting(
    prod: Repository,
) -> None:
    first = grant(prod, "a@x.io", "www")
    leaver = queue(prod, "a@x.io", "remove_account")
    after = grant(prod, "a@x.io", "api")
    role = queue(prod, "b@x.io", entitlement_type="CorpRole", value="admin")
    b_site = grant(prod, "b@x.io", "www")
    removal = queue(prod, "c@x.io", "remove_access", entitlement_type="Site", value="www")
    c_site = grant(prod, "c@x.io", "api")

    assert [t.id for t in claim(prod)] == [first.id, role.id, removal.id]
    prod.tasks.finish(first.id, worker="w1", state="completed")
    # The remove-account queued after the grant goes only now, and alone.
    assert [t.id for t in claim(prod, "w2")] == [leaver.id]
    assert {after.id, b_site.id, c_site.id}.isdisjoint(t.id for t in claim(prod, "w3"))


def test_a_grant_held_back_by_a_limit_holds_back_the_accounts_later_grants(
    prod: Repository,
) -> None:
    first = grant(prod, "a@x.io", "www")
    second = grant(prod, "a@x.io", "api")
    third = grant(prod, "a@x.io", "docs")

    assert [t.id for t in claim(prod, limit=2)] == [first.id, second.id]
    assert claim(prod, "w2") == []
    only = claim(prod, "w3", at=T0 + timedelta(seconds=LEASE + 1), task_ids=[second.id, third.id])
    # The first grant's lease ran out, and it is not among the wanted ids: the others wait.
    assert only == []


def test_an_accounts_grants_finished_together_name_their_own_links_in_the_history(
    prod: Repository,
) -> None:
    import_full(prod, corp(account("alice@x.io", "www")))
    api, docs = grant(prod, "alice@x.io", "api"), grant(prod, "alice@x.io", "docs")
    assert len(claim(prod)) == 2
    after = {"alice@x.io": account("alice@x.io", "www", "api", "docs")}

    prod.tasks.finish_many(
        [
            TaskFinish(task_id=api.id, state="completed", account_changes=after),
            TaskFinish(task_id=docs.id, state="completed", account_changes=after),
        ],
        worker="w1",
        now=T0,
    )

    assert prod.inventory.account("prod", "alice@x.io").sites == ["api", "docs", "www"]
    for task, site in ((api, "api"), (docs, "docs")):
        links = [
            h.new_value for h in prod.inventory.history(task_id=task.id) if h.object_type == "link"
        ]
        assert links == [site], (task.id, links)


@pytest.mark.postgres
def test_two_workers_never_split_or_reorder_one_accounts_tasks(pg_session_url: str) -> None:
    truncate_all(pg_session_url)
    setup = open_repository(pg_session_url)
    add_endpoint(setup)
    rng = random.Random(7)
    created: list[TaskRecord] = []
    for _ in range(180):
        email, pick = f"user{rng.randrange(30)}@x.io", rng.random()
        if pick < 0.7:
            created.append(grant(setup, email, rng.choice(["www", "api", "docs", "blog"])))
        elif pick < 0.85:
            created.append(queue(setup, email, "update_account", role="admin"))
        else:
            created.append(
                queue(setup, email, "remove_access", entitlement_type="Site", value="www")
            )
    setup.close()
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def work(worker: str) -> None:
        repo = open_repository(pg_session_url)
        try:
            barrier.wait()
            while repo.tasks.list(state=["new", "in_progress"]):
                batch = claim(repo, worker, limit=9)
                repo.tasks.finish_many(
                    [TaskFinish(task_id=t.id, state="completed") for t in batch], worker=worker
                )
        except BaseException as exc:  # noqa: BLE001  # reported by the main thread
            failures.append(exc)
        finally:
            repo.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    check = open_repository(pg_session_url)
    try:
        by_id = {t.id: t for t in created}
        # The journal is chained in commit order: replay it, and at every claim the account's
        # older tasks are finished, or held by the same worker, all of them grants on other
        # sites than this one.
        held: dict[str, dict[int, str]] = {}
        finished: set[int] = set()
        claimers: set[str] = set()
        lines = [e for e in check.journal.list() if e.kind in ("claimed", "state")]
        for entry in lines:
            assert entry.task_id is not None
            task = by_id[entry.task_id]
            mine = held.setdefault(task.email, {})
            if entry.kind == "state":
                assert entry.task_id in mine
                del mine[entry.task_id]
                finished.add(entry.task_id)
                continue
            assert entry.detail is not None
            worker = str(entry.detail["worker"])
            claimers.add(worker)
            assert entry.task_id not in finished
            assert entry.task_id not in mine
            older = [t for t in created if t.email == task.email and t.id < task.id]
            waiting = [t for t in older if t.id not in finished]
            assert all(t.id in mine for t in waiting), (task.id, waiting, mine)
            if waiting:
                assert set(mine.values()) == {worker}
                together = [*waiting, task]
                assert all(runs_alongside(t.operation, t.params) for t in together)
                sites = [t.params["value"] for t in together]
                assert len(set(sites)) == len(sites)
            mine[task.id] = worker
        assert finished == set(by_id)
        assert claimers == {"w1", "w2"}
    finally:
        check.close()
