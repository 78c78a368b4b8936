"""Operator settings, from command-line flags or environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from .leader import Timing


@dataclass(frozen=True)
class Config:
    namespace: str = "tenure-system"
    """The operator's own namespace: always protected from deletion."""
    workers: int = 64
    """Tenants reconciled concurrently."""
    liveness_port: int = 8080
    metrics_port: int = 9090
    leader_election: Timing | None = None
    """Campaign for the leader Lease (several replicas, one acting); None: a single replica, always acting."""
