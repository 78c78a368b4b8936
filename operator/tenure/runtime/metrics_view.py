"""Metrics computed at scrape time from the operator's in-memory view (never by asking the API server).

Every gauge here is derived from :class:`~tenure.runtime.store.Stores` and the
running purges when Prometheus scrapes, so a tenant or DataStore that is gone
has no series any more: nothing grows with the tenants that come and go. A
tenant's stored version is parsed once (by resourceVersion), not per scrape.

Per-tenant series — ``tenure_tenant_deadline_timestamp_seconds`` — are at most
one per tenant that is Suspended, Expired or Purging (10,000 such tenants:
10,000 series, about 30-40 MiB in a Prometheus server); ``--no-per-tenant-metrics``
turns them off. The per-purge series exist only while a purge runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from tenure.api import DataStoreStatus
from tenure.lifecycle import StoreProgress, TenantView
from tenure.lifecycle.overdue import CAUSES, overdue

from .store import Stores, Unreadable

DEADLINES = ("grace_ends", "purge_after")
"""The per-tenant deadline kinds: graceEndsAt while Suspended, purgeAfter while Expired or Purging."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    version: str
    view: TenantView | None
    """None when the stored tenant does not match the API models."""


@dataclass(frozen=True, slots=True)
class _Progress:
    mark: object
    since: float


def _deadline(view: TenantView) -> tuple[str, datetime] | None:
    status = view.status
    if status.phase == "Suspended" and status.grace_ends_at is not None:
        return "grace_ends", status.grace_ends_at
    if status.phase in ("Expired", "Purging") and status.purge_after is not None:
        return "purge_after", status.purge_after
    return None


class MetricsView(Collector):
    """The prometheus_client collector Tenure registers once at startup."""

    def __init__(
        self,
        stores: Stores,
        purges_of: Callable[[str, str], Mapping[str, StoreProgress]],
        per_tenant: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stores = stores
        self.purges_of = purges_of
        """The live progress of a tenant object's DataStore purges (ahead of what status says)."""
        self.per_tenant = per_tenant
        self.clock = clock
        self._parsed: dict[str, _Parsed] = {}
        self._progress: dict[str, _Progress] = {}
        self._lock = threading.Lock()
        """Scrapes may overlap (the metrics server answers each in its own thread)."""
        self._swept: dict[str, float] = {}
        """Per DataStore, the end of the last sweep seen finishing without an error."""

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        """Runs in the metrics server's thread while the event loop changes the stores: a collection that met a
        change mid-way (a dict that changed size while read) is taken again."""
        with self._lock:
            for _ in range(2):
                try:
                    return self._collect()
                except RuntimeError:
                    continue
            return self._collect()

    def _collect(self) -> Iterable[Metric]:
        families = self._families()
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        overdue_count, deadline, age, progressed, remaining = (
            families["overdue"],
            families["deadline"],
            families["age"],
            families["progressed"],
            families["remaining"],
        )
        unready, next_sweep = self._datastores(families)
        held = self.stores.held_tenants()
        counts = dict.fromkeys(CAUSES, 0)
        soonest: dict[str, float] = {}
        for name, view in self._views():
            cause = overdue(view, name in held, unready, moment)
            if cause is not None:
                counts[cause] += 1
            due = _deadline(view)
            if due is not None:
                kind, at = due
                if self.per_tenant:
                    deadline.add_metric([name, kind], at.timestamp())
                if at.timestamp() > now:
                    soonest[kind] = min(soonest.get(kind, at.timestamp()), at.timestamp())
            if view.status.phase == "Purging" and name not in held and view.status.purge_started_at is not None:
                since = self._progressed(name, view, now)
                age.add_metric([name], max(0.0, now - view.status.purge_started_at.timestamp()))
                progressed.add_metric([name], since)
                for store in view.status.purge.stores if view.status.purge else ():
                    if store.rows_remaining is not None:
                        remaining.add_metric([name, store.name], store.rows_remaining)
        self._forget({name for name, _ in self.stores.tenants.snapshot()})
        for cause, count in counts.items():
            overdue_count.add_metric([cause], count)
        for kind, first in soonest.items():
            families["next"].add_metric([kind], first - now)
        if next_sweep is not None:
            families["next_sweep"].add_metric([], max(0.0, next_sweep - now))
        families["holds"].add_metric([], len(self.stores.holds))
        families["held"].add_metric([], len(held))
        return list(families.values())

    def _families(self) -> dict[str, GaugeMetricFamily]:
        per_tenant = ["tenant"]
        return {
            "overdue": GaugeMetricFamily(
                "tenure_purges_overdue",
                "Tenants past their purge deadline and not purged, by cause: legal_hold, waiting_for_spec, "
                "store_unavailable, purging, operator_behind.",
                labels=["cause"],
            ),
            "next": GaugeMetricFamily(
                "tenure_next_deadline_seconds",
                "Seconds until the earliest future deadline of each kind (grace_ends, purge_after) of any tenant.",
                labels=["deadline"],
            ),
            "next_sweep": GaugeMetricFamily(
                "tenure_next_sweep_seconds", "Seconds until the earliest active-data retention sweep is due."
            ),
            "deadline": GaugeMetricFamily(
                "tenure_tenant_deadline_timestamp_seconds",
                "A tenant's pending deadline (grace_ends while Suspended, purge_after while Expired or Purging), "
                "epoch seconds; off with --no-per-tenant-metrics.",
                labels=["tenant", "deadline"],
            ),
            "age": GaugeMetricFamily(
                "tenure_purge_age_seconds",
                "Seconds since a running purge started (not paused by a legal hold).",
                labels=per_tenant,
            ),
            "progressed": GaugeMetricFamily(
                "tenure_purge_last_progress_timestamp_seconds",
                "When a running purge last made progress (objects gone, rows deleted, a store's state moved), epoch "
                "seconds; its start until this operator sees progress.",
                labels=per_tenant,
            ),
            "remaining": GaugeMetricFamily(
                "tenure_purge_rows_remaining",
                "Rows a running purge last counted as left in a DataStore (0 once a count proved none).",
                labels=["tenant", "datastore"],
            ),
            "ready": GaugeMetricFamily(
                "tenure_datastore_ready",
                "1 when the DataStore's Ready condition is True, else 0.",
                labels=["datastore"],
            ),
            "swept": GaugeMetricFamily(
                "tenure_datastore_last_sweep_timestamp_seconds",
                "When the last active-data retention sweep that finished without an error ended, epoch seconds; 0 "
                "before the first.",
                labels=["datastore"],
            ),
            "interval": GaugeMetricFamily(
                "tenure_datastore_sweep_interval_seconds", "The DataStore's spec.sweepInterval.", labels=["datastore"]
            ),
            "holds": GaugeMetricFamily("tenure_legal_holds", "LegalHold objects."),
            "held": GaugeMetricFamily("tenure_tenants_held", "Tenants named by at least one LegalHold."),
        }

    def _views(self) -> Iterator[tuple[str, TenantView]]:
        for name, record in self.stores.tenants.snapshot():
            parsed = self._parsed.get(name)
            if parsed is None or parsed.version != record.resource_version:
                try:
                    view: TenantView | None = record.view()
                except Unreadable:
                    view = None
                parsed = self._parsed[name] = _Parsed(record.resource_version, view)
            if parsed.view is not None:
                yield name, parsed.view

    def _progressed(self, name: str, view: TenantView, now: float) -> float:
        """When the purge's progress last changed, as far as this operator has seen."""
        purge = view.status.purge
        record = self.stores.tenants.get(name)
        live = self.purges_of(name, record.uid) if record is not None else {}
        mark = (
            purge.remaining_namespaces if purge else None,
            purge.remaining_volumes if purge else None,
            tuple((s.name, s.state, s.rows_deleted) for s in purge.stores) if purge else (),
            tuple(sorted((store, p.state, p.rows_deleted) for store, p in live.items())),
        )
        seen = self._progress.get(name)
        if seen is None:  # no progress seen yet: since the purge started
            started = view.status.purge_started_at
            seen = self._progress[name] = _Progress(mark, started.timestamp() if started else now)
        elif seen.mark != mark:
            seen = self._progress[name] = _Progress(mark, now)
        return seen.since

    def _datastores(self, families: dict[str, GaugeMetricFamily]) -> tuple[set[str], float | None]:
        """Readiness and sweeps of every DataStore; the names of those not Ready, and when the next sweep is due."""
        unready: set[str] = set()
        next_sweep: float | None = None
        for name, record in self.stores.datastores.snapshot():
            try:
                status = DataStoreStatus.model_validate(record.status)
            except ValidationError:  # written by someone else past the schema: nothing known from it
                status = DataStoreStatus()
            ready = next((c for c in status.conditions if c.type == "Ready"), None)
            is_ready = record.spec is not None and ready is not None and ready.status == "True"
            if not is_ready:
                unready.add(name)
            families["ready"].add_metric([name], 1.0 if is_ready else 0.0)
            sweep = status.last_sweep
            if sweep is not None and sweep.error is None and not sweep.dry_run and sweep.finished_at is not None:
                self._swept[name] = max(self._swept.get(name, 0.0), sweep.finished_at.timestamp())
            families["swept"].add_metric([name], self._swept.get(name, 0.0))
            if record.spec is not None:
                interval = record.spec.sweep_interval.total_seconds()
                families["interval"].add_metric([name], interval)
                due: float | None = None
                if status.next_sweep_at is not None:  # decided by the operator, also for spec.sweepSchedule
                    due = status.next_sweep_at.timestamp()
                elif sweep is not None and sweep.started_at is not None:
                    due = sweep.started_at.timestamp() + interval
                if due is not None:
                    next_sweep = due if next_sweep is None else min(next_sweep, due)
        for gone in self._swept.keys() - {name for name, _ in self.stores.datastores.snapshot()}:
            del self._swept[gone]
        return unready, next_sweep

    def _forget(self, present: set[str]) -> None:
        """Drop what was remembered about tenants that are gone, and purges that stopped running."""
        for name in self._parsed.keys() - present:
            del self._parsed[name]
        for name in list(self._progress):
            parsed = self._parsed.get(name)
            if parsed is None or parsed.view is None or parsed.view.status.phase != "Purging":
                del self._progress[name]
