"""Is a tenant's data kept past its purge deadline, and why: the question compliance asks, answered purely.

A tenant is overdue from ``purgeAfter`` until it is Purged. The cause says
who must act:

- ``legal_hold``: a LegalHold names it; keeping the data is required, not a fault;
- ``waiting_for_spec``: its spec no longer asks for the account's end (e.g.
  ``spec.state`` set back to Active after expiry), so nothing is deleted;
- ``store_unavailable``: the purge runs but a DataStore it must clear is
  not Ready, or its purge there waits and retries;
- ``purging``: the purge runs (namespaces terminating, rows being deleted);
- ``operator_behind``: the deadline passed and the purge has not started:
  the operator is down, lagging, or not leading.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime
from typing import Literal, get_args

from .model import TenantView
from .trust import agrees

Cause = Literal["legal_hold", "waiting_for_spec", "store_unavailable", "purging", "operator_behind"]
CAUSES: tuple[Cause, ...] = get_args(Cause)


def overdue(tenant: TenantView, held: bool, unready: Set[str], now: datetime) -> Cause | None:
    """Why the tenant's data is still kept at ``now`` although its purge deadline passed; None if it is not overdue.

    ``held``: a LegalHold names the tenant; ``unready``: DataStores that are
    not Ready (missing, unreachable, tables missing).
    """
    status = tenant.status
    if status.phase not in ("Expired", "Purging") or status.purge_after is None or now < status.purge_after:
        return None
    if held:
        return "legal_hold"
    if not agrees(tenant, status.closure_reason):
        return "waiting_for_spec"
    if status.phase == "Expired":
        return "operator_behind"
    stores = status.purge.stores if status.purge is not None else ()
    if any(store.state != "Done" and (store.state == "Waiting" or store.name in unready) for store in stores):
        return "store_unavailable"
    return "purging"
