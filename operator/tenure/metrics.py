"""Every Prometheus metric Tenure exports, in one place.

Names follow Prometheus conventions (``tenure_`` prefix, base units,
``_total`` for counters). Served on ``--metrics-port`` (default 9090).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LEADER = Gauge("tenure_leader", "1 while this replica holds the leader Lease and acts, 0 while it stands by.")
TENANTS = Gauge("tenure_tenants", "Tenants known to the operator, by lifecycle phase.", ["phase"])
RECONCILES = Counter("tenure_reconciles_total", "Tenant reconciliations, by outcome.", ["outcome"])
RECONCILE_ERRORS = Counter(
    "tenure_reconcile_errors_total",
    "Tenant reconciliations that failed (retried with backoff) or left a tenant untouched, by reason: the error's "
    "type (Forbidden, Invalid, NotOwned, TimeoutError, ...) or Unreadable.",
    ["reason"],
)
RECONCILE_SECONDS = Histogram(
    "tenure_reconcile_duration_seconds",
    "Time to decide and apply one tenant.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
API_WRITES = Counter("tenure_api_writes_total", "Writes Tenure made to the Kubernetes API, by kind.", ["kind"])
DEADLINE_LATENESS = Histogram(
    "tenure_deadline_lateness_seconds",
    "How late the scheduler picked up a deadline (0 means exactly on time).",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 60),
)
SCHEDULED = Gauge("tenure_scheduled_deadlines", "Objects with a future deadline in a scheduler queue.", ["queue"])
PENDING = Gauge("tenure_pending_reconciles", "Objects waiting for or in a reconcile pass.", ["queue"])
PURGE_DELETIONS = Counter(
    "tenure_purge_deletions_total",
    "Deletes sent by tenant purges, by kind and by what the API server did: done (deleted), gone (already absent),"
    " changed (a uid or resourceVersion precondition refused it; nothing deleted).",
    ["kind", "outcome"],
)
PURGES_COMPLETED = Counter("tenure_purges_completed_total", "Tenant purges confirmed complete.")
PURGE_REMAINING = Gauge(
    "tenure_purge_remaining",
    "Objects a running purge has yet to see gone; the series exists only while the tenant is purging.",
    ["tenant", "kind"],
)
PURGE_ROWS = Counter("tenure_purge_rows_deleted_total", "Rows deleted by tenant purges, by DataStore.", ["datastore"])
SWEEP_ROWS = Counter(
    "tenure_sweep_rows_total", "Rows deleted or redacted by active-data retention sweeps.", ["datastore", "action"]
)
SWEEP_SECONDS = Histogram(
    "tenure_sweep_duration_seconds",
    "Duration of one active-data retention sweep of a DataStore.",
    ["datastore"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
