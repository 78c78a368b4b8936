"""Operator settings, from command-line flags or environment variables."""

from __future__ import annotations

from dataclasses import dataclass


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
