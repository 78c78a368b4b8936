"""A DataStore purge already deleting stops when the tenant's spec stops asking for the end, not only the next one."""

from __future__ import annotations

from typing import Any

import pytest

from tenure.effects.gate import Gate
from tenure.runtime.purges import Paused, Purges
from tenure.runtime.store import Stores


def tenant(state: str, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "acme", "uid": "u1", "resourceVersion": "7", **meta},
        "spec": {"retentionPolicy": "default", "state": state},
        "status": {"phase": "Purging", "closureReason": "Voluntary"},
    }


def purges(body: dict[str, Any]) -> Purges:
    stores = Stores(b"key")
    stores.tenants.put(body)
    return Purges(None, stores, None, None, "tenure-system")  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["Active", "Suspended"])
def test_a_spec_set_back_stops_the_running_job(state: str) -> None:
    with pytest.raises(Paused, match="no longer asks"):
        purges(tenant(state))._spec_agrees("acme")


@pytest.mark.parametrize(
    "body", [tenant("Closed"), tenant("Active", deletionTimestamp="2026-11-28T00:00:00Z")], ids=["closed", "deleted"]
)
def test_a_closed_or_deleted_tenant_keeps_purging(body: dict[str, Any]) -> None:
    try:
        purges(body)._spec_agrees("acme")
    except Paused as paused:
        pytest.fail(f"a tenant whose spec asks for the end was paused: {paused}")


def test_a_dry_run_turned_on_stops_the_running_job_before_its_next_batch() -> None:
    """Checked before every batch (runtime/purges.py batch_done), not only when the job starts."""
    job = purges(tenant("Closed"))
    dry: set[str] = set()
    job.gate = Gate(dry_stores=lambda: dry)
    job._not_dry("db")  # deleting
    dry.add("db")  # spec.dryRun set on the DataStore meanwhile
    with pytest.raises(Paused, match="dry run"):
        job._not_dry("db")
    job._not_dry("other")
    job.gate = Gate(dry_run=True)
    with pytest.raises(Paused, match="dry run"):
        job._not_dry("other")
