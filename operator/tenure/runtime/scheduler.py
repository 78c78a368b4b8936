"""One deadline scheduler for all tenants.

Per-object kopf timers would cost a few asyncio tasks and tens of kilobytes
per tenant and write to the API on every tick. Instead a single loop keeps
:class:`Deadlines` (at most one entry per tenant, however often it is
rescheduled) and a set of tenants that changed, sleeps until the earliest
deadline or the next change, and hands due tenants to a bounded pool of
workers. A tenant is never reconciled twice at once; a change that arrives
mid-reconcile runs it again right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from tenure import metrics

from .logfields import FIELDS, bind

logger = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[float | None]]
"""Reconciles one tenant; returns the wall-clock time (epoch seconds) to look again, or None."""

MAX_SLEEP = 30.0
"""Upper bound on one sleep, so a wall-clock jump is noticed within this many seconds."""
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Deadlines:
    """A min-heap of (deadline, name) holding at most one entry per name: rescheduling moves the entry."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._at: dict[str, int] = {}  # name -> its position in the heap

    def __len__(self) -> int:
        return len(self._heap)

    def get(self, name: str) -> float | None:
        return self._heap[self._at[name]][0] if name in self._at else None

    def first(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def set(self, name: str, when: float) -> None:
        if name in self._at:
            self._heap[self._at[name]] = (when, name)
            self._sift(self._at[name])
        else:
            self._heap.append((when, name))
            self._at[name] = len(self._heap) - 1
            self._sift(len(self._heap) - 1)

    def remove(self, name: str) -> None:
        at = self._at.pop(name, None)
        if at is None:
            return
        last = self._heap.pop()
        if at < len(self._heap):
            self._heap[at] = last
            self._at[last[1]] = at
            self._sift(at)

    def pop_due(self, now: float) -> Iterator[tuple[float, str]]:
        while self._heap and self._heap[0][0] <= now:
            entry = self._heap[0]
            self.remove(entry[1])
            yield entry

    def _sift(self, at: int) -> None:
        heap = self._heap
        while at > 0 and heap[at] < heap[(up := (at - 1) // 2)]:
            self._swap(at, up)
            at = up
        while True:
            low = min((c for c in (2 * at + 1, 2 * at + 2) if c < len(heap)), key=heap.__getitem__, default=None)
            if low is None or heap[at] <= heap[low]:
                return
            self._swap(at, low)
            at = low

    def _swap(self, i: int, j: int) -> None:
        heap = self._heap
        heap[i], heap[j] = heap[j], heap[i]
        self._at[heap[i][1]], self._at[heap[j][1]] = i, j


class Scheduler:
    def __init__(self, name: str, reconcile: Reconcile, workers: int, clock: Callable[[], float] = time.time) -> None:
        self._field = FIELDS.get(name, name)
        """The log field naming the object a pass works on (tenant, datastore, legalhold)."""
        self._scheduled = metrics.SCHEDULED.labels(name)
        self._pending = metrics.PENDING.labels(name)
        self._lateness = metrics.DEADLINE_LATENESS.labels(name)
        self._reconcile = reconcile
        self._clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._due = Deadlines()
        self._inflight: set[str] = set()
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()

    def touch(self, name: str) -> None:
        """Reconcile this tenant soon: something it depends on changed."""
        self._dirty[name] = None
        self._wakeup.set()

    def busy(self) -> bool:
        """Whether anything is waiting for or in a reconcile pass."""
        return bool(self._dirty or self._inflight)

    def deadline(self, name: str) -> float | None:
        return self._due.get(name)

    def next_deadline(self) -> float | None:
        return self._due.first()

    def sizes(self) -> dict[str, int]:
        """How many entries each internal structure holds (deadlines: at most one per tenant)."""
        return {
            "deadlines": len(self._due),
            "dirty": len(self._dirty),
            "inflight": len(self._inflight),
            "failures": len(self._failures),
            "tasks": len(self._tasks),
        }

    def _schedule(self, name: str, when: float | None) -> None:
        if when is None:
            self._due.remove(name)
        else:
            self._due.set(name, when)
        self._scheduled.set(len(self._due))

    async def step(self) -> bool:
        """Hand every due or changed tenant to a worker; whether any is still waiting for a free one."""
        self._collect_due()
        await self._dispatch()
        self._wakeup.clear()
        return bool(self._dirty.keys() - self._inflight)

    async def run(self) -> None:
        try:
            while True:
                if not await self.step():
                    await self._sleep()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _collect_due(self) -> None:
        now = self._clock()
        for when, name in self._due.pop_due(now):
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
        if (first := self._due.first()) is not None:
            timeout = min(timeout, max(0.0, first - self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    async def _work(self, name: str) -> None:
        when: float | None
        bind(**{self._field: name})  # this task's log records carry the object as a field
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
