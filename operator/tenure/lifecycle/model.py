"""What the lifecycle core decides from, and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tenure.api import TenantSpec, TenantStatus


@dataclass(frozen=True, slots=True)
class TenantView:
    """A Tenant as the core sees it: identity, what is asked, what was recorded."""

    name: str
    generation: int
    spec: TenantSpec
    status: TenantStatus
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to post on the Tenant."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The status the tenant should have now, what to tell people, and when to look again."""

    status: TenantStatus
    events: tuple[Event, ...] = field(default=())
    wake_at: datetime | None = None
