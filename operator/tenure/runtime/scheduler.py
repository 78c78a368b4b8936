"""One deadline scheduler for all tenants.

Per-object kopf timers would cost a few asyncio tasks and tens of kilobytes
per tenant and write to the API on every tick. Instead a single loop keeps a
heap of (deadline, tenant) and a set of tenants that changed, sleeps until
the earliest deadline or the next change, and hands due tenants to a bounded
pool of workers. A tenant is never reconciled twice at once; a change that
arrives mid-reconcile runs it again right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from tenure import metrics

logger = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[float | None]]
"""Reconciles one tenant; returns the wall-clock time (epoch seconds) to look again, or None."""

MAX_SLEEP = 30.0
"""Upper bound on one sleep, so a wall-clock jump is noticed within this many seconds."""
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Scheduler:
    def __init__(self, name: str, reconcile: Reconcile, workers: int, clock: Callable[[], float] = time.time) -> None:
        self._scheduled = metrics.SCHEDULED.labels(name)
        self._pending = metrics.PENDING.labels(name)
        self._lateness = metrics.DEADLINE_LATENESS.labels(name)
        self._reconcile = reconcile
        self._clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._inflight: set[str] = set()
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()

    def touch(self, name: str) -> None:
        """Reconcile this tenant soon: something it depends on changed."""
        self._dirty[name] = None
        self._wakeup.set()

    def forget(self, name: str) -> None:
        self._dirty.pop(name, None)
        self._due.pop(name, None)
        self._failures.pop(name, None)

    def busy(self) -> bool:
        """Whether anything is waiting for or in a reconcile pass."""
        return bool(self._dirty or self._inflight)

    def deadline(self, name: str) -> float | None:
        return self._due.get(name)

    def _schedule(self, name: str, when: float | None) -> None:
        if when is None:
            self._due.pop(name, None)
        else:
            self._due[name] = when
            heapq.heappush(self._heap, (when, name))
        self._scheduled.set(len(self._due))

    async def run(self) -> None:
        try:
            while True:
                self._collect_due()
                await self._dispatch()
                self._wakeup.clear()
                if self._dirty.keys() - self._inflight:
                    continue
                await self._sleep()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _collect_due(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            when, name = heapq.heappop(self._heap)
            if self._due.get(name) == when:  # else superseded by a later schedule
                del self._due[name]
                self._dirty[name] = None
                self._lateness.observe(max(0.0, now - when))
        self._scheduled.set(len(self._due))
        self._pending.set(len(self._dirty) + len(self._inflight))

    async def _dispatch(self) -> None:
        for name in list(self._dirty):
            if name in self._inflight:
                continue
            await self._slots.acquire()
            if name not in self._dirty:  # forgotten while we waited for a slot
                self._slots.release()
                continue
            del self._dirty[name]
            self._inflight.add(name)
            task = asyncio.create_task(self._work(name), name=f"reconcile {name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sleep(self) -> None:
        timeout = MAX_SLEEP
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # drop superseded entries
        if self._heap:
            timeout = min(timeout, max(0.0, self._heap[0][0] - self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    async def _work(self, name: str) -> None:
        when: float | None
        try:
            when = await self._reconcile(name)
            self._failures.pop(name, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            failures = self._failures.get(name, 0)
            self._failures[name] = failures + 1
            delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            logger.exception("reconciling tenant %s failed; retrying in %.0fs", name, delay)
            when = self._clock() + delay
        finally:
            self._inflight.discard(name)
            self._slots.release()
            self._pending.set(len(self._dirty) + len(self._inflight))
            self._wakeup.set()
        self._schedule(name, when)
