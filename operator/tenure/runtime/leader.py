"""Leader election: several replicas run, exactly one acts.

The replicas share a ``coordination.k8s.io/v1`` Lease in the operator's
namespace (``kubectl get lease -n tenure-system``), written the way client-go
writes it, so the usual tools read it. Every replica lists and watches and
keeps its stores current; only the holder of the Lease reconciles, writes
status, posts Events, purges and sweeps: the schedulers' passes wait at
:meth:`Leadership.gate` until this replica leads. A standby that takes over
therefore starts from a full view, not an empty one.

The election runs on its own thread with its own event loop and API
connection, so a renewal never waits behind the operator's event loop: a
loop busy with a burst of reconciles (or blocked outright) keeps the Lease,
and a leader that cannot renew stops at its renew deadline however busy its
loop is, because the stop is taken on the election's thread.

Timing, from client-go's rules:

- The leader renews every ``retry_period``. A renewal counts from when its
  request was *sent*; when none has succeeded for ``renew_deadline`` the
  leader stops acting at once by ending its process, from the election's
  thread (the Deployment restarts it as a standby). Ending the process is the one stop that cannot leave a
  pass running; every step Tenure takes is resumable after a crash.
- A standby takes over a Lease only after the record it observed has not
  changed for the Lease's ``leaseDurationSeconds``, measured on its own clock
  from when it saw the change (clocks of different nodes are never
  compared), or at once when the holder released it.
- ``lease_duration`` > ``renew_deadline``: a leader that cannot renew has
  stopped before anyone may start.

SIGTERM releases the Lease at once (after the passes in flight are cancelled),
so a rolling restart hands over within a standby's ``retry_period``.
A paused process (SIGSTOP, a frozen VM) can still finish a write it had sent
after it lost the Lease; status writes carry a resourceVersion precondition
and deletions a uid precondition, so such a late write is refused or does
nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client

from tenure import metrics
from tenure.effects.errors import ApiError, Conflict, Gone, checked
from tenure.effects.kube import connect

logger = logging.getLogger(__name__)

T = TypeVar("T")
LEASE = "tenure"
"""The Lease's name, in the operator's namespace."""


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0
    """How long a standby waits, after the Lease last changed, before it takes over."""
    renew_deadline: float = 10.0
    """How long the leader keeps acting without a successful renewal."""
    retry_period: float = 1.0
    """How often the leader renews and a standby tries to acquire."""

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration:g}s, {self.renew_deadline:g}s, {self.retry_period:g}s"
            )


def identity() -> str:
    """This process's name in the Lease: the host (the Pod's name in a cluster) and a random part."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _micro_time(moment: datetime) -> str:
    """A MicroTime as the API server writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leadership:
    """Whether this replica acts; without election (one replica) it always does."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()

    def gate(self, reconcile: Callable[[str], Awaitable[T]]) -> Callable[[str], Awaitable[T]]:
        """``reconcile``, waiting first until this replica leads."""

        async def gated(name: str) -> T:
            await self.leading.wait()
            return await reconcile(name)

        return gated

    def lead(self) -> None:
        self.leading.set()
        metrics.LEADER.set(1)

    async def release(self) -> None:
        """Give up leadership (at shutdown, after the passes in flight are cancelled)."""
        self.leading.clear()
        metrics.LEADER.set(0)


class Election(Leadership):
    """Campaigns for the Lease and keeps it, on a thread of its own; see the module's docstring for the timing
    rules. ``leading`` (the operator's loop) follows what the election's thread decided."""

    def __init__(
        self,
        namespace: str,
        timing: Timing,
        name: str = LEASE,
        holder: str | None = None,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.namespace = namespace
        self.name = name
        self.holder = holder or identity()
        self.timing = timing
        self.on_lost = on_lost or _exit
        """Called on the election's thread when this replica must stop acting; by default it ends the process."""
        self._clock = clock
        self._api: client.ApiClient | None = None
        self._observed: tuple[str, float, str] = ("", 0.0, "")
        """The Lease's resourceVersion as last seen, when (our clock) it was first seen, and its holder."""
        self._acting = False
        """Whether this replica acts, as the election's thread sees it."""
        self._operator: asyncio.AbstractEventLoop | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tenure leader election", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Campaign on the election's thread; ``leading`` is set on the calling (operator's) loop."""
        self._operator = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="tenure leader election")
        self._task.add_done_callback(self._ended)
        self._thread.start()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """An election that ended by anything but cancellation (an unexpected error) must not leave this replica
        acting without renewing: it stops acting, as when the Lease is lost."""
        if task.cancelled() or not self._acting:
            return
        self._stop_acting(f"leader election ended unexpectedly ({task.exception()!r})")

    def _begin_acting(self) -> None:
        self._acting = True
        metrics.LEADER.set(1)
        assert self._operator is not None
        self._operator.call_soon_threadsafe(self.leading.set)

    def _stop_acting(self, why: str) -> None:
        logger.critical("leader election: %s; stopping so that only one replica acts", why)
        self._acting = False
        metrics.LEADER.set(0)
        assert self._operator is not None
        self._operator.call_soon_threadsafe(self.leading.clear)
        self.on_lost()

    async def _coordination(self) -> client.CoordinationV1Api:
        if self._api is None:
            self._api = await connect(pool_size=2)  # on the election's loop: its own connections
        return client.CoordinationV1Api(self._api)

    async def _run(self) -> None:
        logger.info("leader election: %s campaigns for Lease %s/%s", self.holder, self.namespace, self.name)
        while not await self._attempt():
            await asyncio.sleep(self.timing.retry_period * random.uniform(1.0, 1.2))
        logger.info("leader election: %s leads; acting", self.holder)
        self._begin_acting()
        renewed = self._clock()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            sent = self._clock()
            left = renewed + self.timing.renew_deadline - sent
            if left > 0:
                try:
                    if await asyncio.wait_for(self._attempt(), timeout=left):
                        renewed = sent
                        continue
                except TimeoutError:
                    pass
            taken = self._observed[2] not in ("", self.holder)
            if taken or self._clock() - renewed >= self.timing.renew_deadline:
                self._stop_acting(
                    f"Lease {self.namespace}/{self.name} is held by {self._observed[2]}"
                    if taken
                    else f"no renewal of Lease {self.namespace}/{self.name} for {self.timing.renew_deadline:g}s"
                )
                return

    async def _attempt(self) -> bool:
        """One try to acquire or renew the Lease; True when this replica holds it now."""
        try:
            return await self._acquire_or_renew()
        except (ApiError, OSError, aiohttp.ClientError) as error:
            logger.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, error)
            return False

    async def _acquire_or_renew(self) -> bool:
        api = await self._coordination()
        now = datetime.now(UTC)
        try:
            lease = await checked(api.read_namespaced_lease(self.name, self.namespace, _preload_content=False))
        except Gone:
            created = await self._write(api, None, self._spec(now, {}))
            return created is not None
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        version = lease["metadata"]["resourceVersion"]
        if version != self._observed[0]:
            self._observed = (version, self._clock(), holder)
        if holder and holder != self.holder:
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            if self._clock() < self._observed[1] + duration:
                return False
            logger.info("leader election: Lease %s/%s of %s expired", self.namespace, self.name, holder)
        written = await self._write(api, lease, self._spec(now, spec))
        return written is not None

    def _spec(self, now: datetime, old: dict[str, Any]) -> dict[str, Any]:
        ours = old.get("holderIdentity") == self.holder
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": round(self.timing.lease_duration),
            "acquireTime": old.get("acquireTime") if ours else _micro_time(now),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions if ours or not old.get("holderIdentity") else transitions + 1,
        }

    async def _write(
        self, api: client.CoordinationV1Api, lease: dict[str, Any] | None, spec: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Create the Lease, or replace it guarded by the resourceVersion read; None when another replica won."""
        try:
            if lease is None:
                body: Any = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                written = await checked(api.create_namespaced_lease(self.namespace, body, _preload_content=False))
            else:
                body = {"metadata": lease["metadata"], "spec": spec}
                written = await checked(
                    api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False)
                )
        except Conflict:
            return None
        self._observed = (written["metadata"]["resourceVersion"], self._clock(), spec.get("holderIdentity") or "")
        return written

    async def release(self) -> None:
        """Stop renewing and, if this replica holds the Lease, hand it over at once."""
        await super().release()
        if self._task is None:  # never started
            self._loop.close()
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._hand_over(), self._loop))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()

    async def _hand_over(self) -> None:
        """On the election's loop: stop campaigning; if this replica holds the Lease, release it."""
        assert self._task is not None
        was_acting, self._acting = self._acting, False
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        try:
            if was_acting:
                api = await self._coordination()
                lease = await checked(api.read_namespaced_lease(self.name, self.namespace, _preload_content=False))
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") == self.holder:
                    now = _micro_time(datetime.now(UTC))
                    released = {**spec, "holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": now}
                    await self._write(api, lease, released)
                    logger.info("leader election: released Lease %s/%s", self.namespace, self.name)
        except (ApiError, OSError, aiohttp.ClientError) as error:
            logger.warning("leader election: could not release Lease %s/%s: %s", self.namespace, self.name, error)
        finally:
            if self._api is not None:
                await self._api.close()


def elect(namespace: str, timing: Timing | None) -> Leadership:
    """Leadership for this process: campaign for the Lease, or (``timing`` None, a single replica) lead at once."""
    if timing is None:
        alone = Leadership()
        alone.lead()
        return alone
    election = Election(namespace, timing)
    election.start()
    return election


def _exit() -> None:
    """End the process now: nothing of this replica may act once another can take over."""
    logging.shutdown()
    os._exit(1)
