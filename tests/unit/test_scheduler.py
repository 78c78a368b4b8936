"""The single deadline scheduler, on the real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from hypothesis import given
from hypothesis import strategies as st

from tenure.runtime.scheduler import Deadlines, Scheduler


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=10))


def test_a_deadline_fires_at_its_time_never_before() -> None:
    calls: list[tuple[str, float]] = []

    async def scenario() -> None:
        deadline = time.time() + 0.2

        async def reconcile(name: str) -> float | None:
            calls.append((name, time.time()))
            return deadline if len(calls) == 1 else None

        scheduler = Scheduler("test", reconcile, workers=4)
        task = asyncio.create_task(scheduler.run())
        scheduler.touch("acme")
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        assert calls[1][1] >= deadline

    run(scenario)
    assert [name for name, _ in calls] == ["acme", "acme"]


def test_touches_coalesce_and_a_name_never_runs_twice_at_once() -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    count = {"acme": 0}

    async def scenario() -> None:
        async def reconcile(name: str) -> float | None:
            if name in running:
                overlaps.append(name)
            running.add(name)
            count[name] += 1
            await asyncio.sleep(0.05)
            running.discard(name)
            return None

        scheduler = Scheduler("test", reconcile, workers=4)
        task = asyncio.create_task(scheduler.run())
        for _ in range(10):
            scheduler.touch("acme")
        await asyncio.sleep(0.01)
        for _ in range(10):
            scheduler.touch("acme")  # while in flight: runs once more afterwards
        await asyncio.sleep(0.3)
        task.cancel()

    run(scenario)
    assert overlaps == []
    assert count["acme"] == 2


def test_a_failing_reconcile_is_retried_with_backoff() -> None:
    attempts: list[float] = []

    async def scenario() -> None:
        async def reconcile(name: str) -> float | None:
            attempts.append(time.time())
            if len(attempts) == 1:
                raise RuntimeError("API unavailable")
            return None

        scheduler = Scheduler("test", reconcile, workers=1)
        task = asyncio.create_task(scheduler.run())
        scheduler.touch("acme")
        while len(attempts) < 2:
            await asyncio.sleep(0.05)
        task.cancel()

    run(scenario)
    assert attempts[1] - attempts[0] >= 1.0  # the first backoff step


def test_a_later_schedule_supersedes_an_earlier_one() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        async def reconcile(name: str) -> float | None:
            calls.append(name)
            return time.time() + 60 if len(calls) == 1 else None

        scheduler = Scheduler("test", reconcile, workers=1)
        task = asyncio.create_task(scheduler.run())
        scheduler.touch("acme")
        await asyncio.sleep(0.05)
        assert scheduler.deadline("acme") is not None
        scheduler.touch("acme")  # decided again: no deadline any more
        await asyncio.sleep(0.05)
        assert scheduler.deadline("acme") is None
        assert scheduler.sizes()["deadlines"] == 0
        task.cancel()

    run(scenario)
    assert calls == ["acme", "acme"]


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.one_of(st.none(), st.integers(0, 50))), max_size=200))
def test_deadlines_hold_one_entry_per_name_and_pop_in_order(operations: list[tuple[str, int | None]]) -> None:
    deadlines, model = Deadlines(), dict[str, int]()
    for name, when in operations:
        if when is None:
            deadlines.remove(name)
            model.pop(name, None)
        else:
            deadlines.set(name, when)
            model[name] = when
        assert len(deadlines) == len(model)
        assert deadlines.first() == min(model.values(), default=None)
    popped = list(deadlines.pop_due(25))
    assert popped == sorted((when, name) for name, when in model.items() if when <= 25)
    assert len(deadlines) == len([when for when in model.values() if when > 25])


def test_a_tenant_reconciled_again_and_again_keeps_one_deadline() -> None:
    async def scenario() -> dict[str, int]:
        async def reconcile(name: str) -> float | None:
            return 86_400.0 * 30  # a deadline days away, as an Expired tenant's purgeAfter

        scheduler = Scheduler("test", reconcile, workers=4, clock=lambda: 0.0)
        for _ in range(1_000):
            scheduler.touch("acme")
            while await scheduler.step() or scheduler.busy():
                await asyncio.sleep(0)
        return scheduler.sizes()

    assert asyncio.run(scenario())["deadlines"] == 1
