"""The Accessible condition: whether the tenant's users are kept out, as far as Tenure can tell.

``False`` while the tenant is inaccessible and its namespaces are closed; ``Unknown`` (GatewayUnverified) when they
are but its blocking at the LiteLLM gateway could not be verified, so its keys may still work; ``True`` once Active and
every namespace reopened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tenure.api import Condition
from tenure.api.meta import ConditionStatus

from .conditions import listing
from .model import CloseAccess, OpenAccess, TenantView, World
from .timeline import Draft

Make = Callable[[str, ConditionStatus, str, str], Condition]


def accessible(
    tenant: TenantView,
    draft: Draft,
    make: Make,
    access_actions: tuple[CloseAccess | OpenAccess, ...],
    stranded: list[str],
    world: World,
) -> Condition:
    """The condition; ``stranded``: namespaces that still carry Tenure's quota but that the tenant no longer provably
    owns."""
    found = _accessible(tenant, draft, make, access_actions, stranded)
    if found.status == "False" and draft.phase != "Purged" and world.gateway_unverified:
        # Inaccessible by the namespaces, unverified at the gateway: its LiteLLM keys may still work.
        why = listing(f"{store}: {reason}" for store, reason in sorted(world.gateway_unverified.items()))
        return make(
            "Accessible",
            "Unknown",
            "GatewayUnverified",
            f"{found.message} But its blocking at the LiteLLM gateway could not be verified, so its keys may "
            f"still work ({why}); retried at every check of the store.",
        )
    return found


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "(unknown)"


def _accessible(
    tenant: TenantView,
    draft: Draft,
    make: Make,
    access_actions: tuple[CloseAccess | OpenAccess, ...],
    stranded: list[str],
) -> Condition:
    """``stranded``: namespaces that still carry Tenure's quota but that the tenant no longer provably owns."""
    if draft.phase == "Active":
        if stranded:
            return make(
                "Accessible",
                "False",
                "LeftClosed",
                f"Namespaces {listing(stranded)} still carry Tenure's quota and network policy tenure-inaccessible "
                f"but are no longer provably this tenant's (labeled retention.tenure.dev/tenant={tenant.name}): "
                "Tenure leaves them closed. Label them again to have them reopened, or have the break-glass group "
                "remove what Tenure left (docs/access.md).",
            )
        if access_actions:
            names = listing(action.namespace for action in access_actions)
            return make(
                "Accessible",
                "False",
                "Reopening",
                f"Reopened: restoring workloads, access and network in {names}; the quota and the network policy "
                "tenure-inaccessible are removed last.",
            )
        return make("Accessible", "True", "Active", "The account is active.")
    if draft.phase == "Suspended":
        return make(
            "Accessible",
            "False",
            tenant.spec.suspension_reason or "Suspended",
            f"Suspended since {_iso(draft.suspended_at)}: inaccessible, not even for export ({_CLOSED}); can be "
            f"reopened until {_iso(draft.grace_ends_at)} by setting spec.state to Active.",
        )
    refusal = ""
    if tenant.spec.state != "Closed" and not tenant.deleting:
        refusal = f" spec.state {tenant.spec.state} is ignored: an expired account cannot be reopened."
    closed = f" Inaccessible: {_CLOSED}." if draft.phase != "Purged" else ""
    return make("Accessible", "False", draft.phase, f"The account is closed ({draft.closure_reason}).{closed}{refusal}")


_CLOSED = (
    "in its owned namespaces workloads are stopped, new pods refused and network cut by the ResourceQuota and "
    "NetworkPolicy tenure-inaccessible, and people's RoleBindings removed"
)
