"""Capture scopes: each collects the calls made inside it, whatever runs beside or around it."""

from __future__ import annotations

import asyncio

from sigsci_iga.connectors.http.calls import CallRecord, capture_calls, record_call


def call(path: str) -> CallRecord:
    return CallRecord("GET", path, 200, 0.0, None)


def paths(calls: list[CallRecord]) -> list[str]:
    return [c.path for c in calls]


def test_a_scope_collects_the_calls_made_inside_it_and_no_others() -> None:
    record_call(call("/before"))
    with capture_calls() as calls:
        record_call(call("/inside"))
    record_call(call("/after"))

    assert paths(calls) == ["/inside"]


def test_a_call_made_outside_every_scope_goes_nowhere() -> None:
    record_call(call("/alone"))  # nothing to assert but that it is harmless


def test_nested_scopes_each_see_the_inner_calls_and_the_outer_one_sees_all() -> None:
    with capture_calls() as outer:
        record_call(call("/outer-first"))
        with capture_calls() as inner:
            record_call(call("/inner"))
        record_call(call("/outer-last"))

    assert paths(inner) == ["/inner"]
    assert paths(outer) == ["/outer-first", "/inner", "/outer-last"]


def test_concurrent_tasks_each_capture_only_their_own_calls() -> None:
    async def task(name: str, turns: int) -> list[CallRecord]:
        with capture_calls() as calls:
            for turn in range(turns):
                record_call(call(f"/{name}/{turn}"))
                await asyncio.sleep(0)  # let the sibling record in between
        return calls

    async def main() -> tuple[list[CallRecord], list[list[CallRecord]]]:
        with capture_calls() as parent:
            results = await asyncio.gather(task("a", 3), task("b", 2), task("c", 4))
        return parent, list(results)

    parent, (a, b, c) = asyncio.run(main())

    assert paths(a) == ["/a/0", "/a/1", "/a/2"]
    assert paths(b) == ["/b/0", "/b/1"]
    assert paths(c) == ["/c/0", "/c/1", "/c/2", "/c/3"]
    # The scope around the gather sees every task's calls, each once.
    assert sorted(paths(parent)) == sorted(paths(a) + paths(b) + paths(c))


def test_sibling_tasks_without_their_own_scope_share_their_parents() -> None:
    async def main() -> list[CallRecord]:
        with capture_calls() as parent:

            async def child(name: str) -> None:
                await asyncio.sleep(0)
                record_call(call(f"/{name}"))

            await asyncio.gather(child("a"), child("b"))
        return parent

    assert sorted(paths(asyncio.run(main()))) == ["/a", "/b"]


def test_a_task_that_outlives_its_scope_adds_nothing_after_the_scope_ended() -> None:
    async def main() -> list[CallRecord]:
        release = asyncio.Event()

        async def straggler() -> None:
            record_call(call("/in-time"))
            await release.wait()
            record_call(call("/too-late"))

        with capture_calls() as calls:
            task = asyncio.create_task(straggler())
            await asyncio.sleep(0)
        release.set()
        await task
        return calls

    assert paths(asyncio.run(main())) == ["/in-time"]
