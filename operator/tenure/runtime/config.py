"""Operator settings, from command-line flags or environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from tenure.lifecycle import PROTECTED_NAMESPACES

from .leader import Timing


@dataclass(frozen=True)
class Config:
    namespace: str = "tenure-system"
    """The operator's own namespace: always protected from deletion."""
    workers: int = 64
    """Tenants reconciled concurrently."""
    relist_seconds: float = 300.0
    """How long one watch of a small kind lasts before the kind is listed again (dropping anything missed)."""
    liveness_port: int = 8080
    metrics_port: int = 9090
    leader_election: Timing | None = None
    """Campaign for the leader Lease (several replicas, one acting); None: a single replica, always acting."""
    access_sweep_seconds: float = 60.0
    """While a tenant is inaccessible, how often its namespaces are swept again (scaled-up or new workloads
    stopped, new RoleBindings removed)."""
    access_pod_grace_seconds: int = 30
    """The longest grace period a pod deleted for inaccessibility gets (its own when shorter); one still there past it
    is deleted again with grace 0."""
    dry_run: bool = False
    """Decide and report everything, delete, scale, block and redact nothing (see tenure.effects.gate)."""
    per_tenant_metrics: bool = True
    """Export tenure_tenant_deadline_timestamp_seconds{tenant,deadline}: one series per tenant with a deadline."""
    protected_namespaces: frozenset[str] = frozenset()
    """More namespaces no tenant may own, besides ``default``, every ``kube-*`` one and the operator's own."""

    @property
    def protected(self) -> frozenset[str]:
        """Every namespace protected by name (``kube-*`` ones are protected by prefix)."""
        return PROTECTED_NAMESPACES | {self.namespace} | self.protected_namespaces


def namespace_list(value: str) -> frozenset[str]:
    """Namespaces from a comma- or space-separated list, as ``--protected-namespaces`` takes them."""
    return frozenset(value.replace(",", " ").split())
