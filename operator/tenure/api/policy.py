"""RetentionPolicy: the windows a tenant's lifecycle runs on.

A policy is cluster-scoped and shared by many tenants. Its windows are read
when a tenant enters a phase and then fixed for that phase (see
``tenure.lifecycle``), so editing a policy never shortens a running window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from .duration import BoundedDuration, Duration
from .meta import Model

DataClass = Literal["prompts", "responses", "logs", "usage"]
DATA_CLASSES: tuple[DataClass, ...] = ("prompts", "responses", "logs", "usage")


class DataClassRetention(Model):
    """Per-class active-data retention; a class left out falls back to activeDataRetention."""

    prompts: BoundedDuration | None = Field(None, description="Retention for prompts sent by the tenant's users.")
    responses: BoundedDuration | None = Field(None, description="Retention for generated content (model responses).")
    logs: BoundedDuration | None = Field(None, description="Retention for request and error logs.")
    usage: BoundedDuration | None = Field(None, description="Retention for usage and spend metrics.")


class RetentionPolicySpec(Model):
    """The retention windows for the tenants that name this policy."""

    suspension_grace_period: Duration = Field(
        timedelta(days=14),
        description=(
            "How long a suspended tenant can still be reopened. When it elapses the account is "
            "closed and its data expires. Syntax: <n>d<n>h<n>m<n>s, e.g. 14d."
        ),
    )
    expired_data_retention: Duration = Field(
        timedelta(days=30),
        description=(
            "How long a closed tenant's expired data is kept before it is permanently deleted. "
            "Syntax: <n>d<n>h<n>m<n>s, e.g. 30d."
        ),
    )
    active_data_retention: BoundedDuration | None = Field(
        None,
        description=(
            "Age after which stored records of an active tenant are deleted, 0d to 365d. Unset means "
            "records are kept while the account is active."
        ),
    )
    data_class_retention: DataClassRetention | None = Field(
        None,
        description="Per data class (prompts, responses, logs, usage) overrides of activeDataRetention, 0d to 365d.",
    )

    def retention_for(self, data_class: DataClass) -> timedelta | None:
        """The active-data retention of one data class, or None when it is kept."""
        override = getattr(self.data_class_retention, data_class, None) if self.data_class_retention else None
        return override if override is not None else self.active_data_retention


class RetentionPolicyStatus(Model):
    """What the operator observed about this policy."""

    tenants: int | None = Field(None, ge=0, description="How many tenants name this policy.")
