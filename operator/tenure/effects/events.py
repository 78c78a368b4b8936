"""Kubernetes Events on Tenure's objects, for `kubectl describe` and audit.

Events are posted by a small background pool that gives way while tenants
are being reconciled (for at most ``MAX_DEFER`` seconds), so a burst of
transitions lands in status first and its Events follow. Events of
cluster-scoped objects live in the ``default`` namespace, where
`kubectl describe` and `kubectl events` look for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes_asyncio.client import CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference

from tenure.api import API_GROUP, API_VERSION

from .errors import checked
from .kube import Kube

COMPONENT = "tenure"
QUEUE_LIMIT = 50_000
MAX_DEFER = 10.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    name: str
    uid: str
    reason: str
    message: str
    warning: bool
    at: datetime


class EventPoster:
    def __init__(self, kube: Kube, workers: int = 4) -> None:
        self.kube = kube
        self.busy: Callable[[], bool] = lambda: False
        """While this says True, queued Events wait (status writes go first)."""
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.tasks = [asyncio.create_task(self._work(), name=f"tenure events {i}") for i in range(workers)]

    def post(self, kind: str, name: str, uid: str, reason: str, message: str, warning: bool = False) -> None:
        """Queue one Event; when the queue is full the Event is logged instead, never blocking a reconcile."""
        notice = Notice(kind, name, uid, reason, message[:1024], warning, datetime.now(UTC))
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            logger.warning("event queue full; not posting %s on %s %s: %s", reason, kind, name, message)

    async def stop(self, timeout: float = 5.0) -> None:
        """Post what is queued (for at most ``timeout`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            notice = await self.queue.get()
            deferred = 0.0
            while self.busy() and deferred < MAX_DEFER:
                await asyncio.sleep(0.05)
                deferred += 0.05
            try:
                await self._send(notice)
            except Exception as error:
                logger.warning("could not post event %s on %s %s: %s", notice.reason, notice.kind, notice.name, error)
            finally:
                self.queue.task_done()

    async def _send(self, notice: Notice) -> None:
        event = CoreV1Event(
            metadata=V1ObjectMeta(generate_name=f"{notice.name}.", namespace="default"),
            involved_object=V1ObjectReference(
                api_version=f"{API_GROUP}/{API_VERSION}", kind=notice.kind, name=notice.name, uid=notice.uid
            ),
            reason=notice.reason,
            message=notice.message,
            type="Warning" if notice.warning else "Normal",
            source=V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=COMPONENT,
            first_timestamp=notice.at,
            last_timestamp=notice.at,
            count=1,
        )
        await checked(self.kube.core.create_namespaced_event("default", event, _preload_content=False))
