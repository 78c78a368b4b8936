"""LegalHold: a legal requirement that keeps tenants' data.

While any hold names a tenant, nothing of that tenant is deleted: no purge
starts, a running purge stops at its next step, and active-data retention
sweeps skip it. Releasing a hold is deleting the object.
"""

from __future__ import annotations

from pydantic import Field

from .meta import Condition, Model, conditions_field
from .tenant import TenantName


class LegalHoldSpec(Model):
    """Which tenants are held, and why."""

    tenants: tuple[TenantName, ...] = Field(
        description="Names of the Tenants whose data must not be deleted while this hold exists.",
        min_length=1,
        max_length=10000,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    reason: str = Field(
        description="Why the data is held: a case number or request reference. Required.",
        min_length=1,
        max_length=1024,
        pattern=r"\S",
    )


class LegalHoldStatus(Model):
    """What the operator observed about this hold."""

    observed_generation: int | None = Field(None, ge=0, description="The metadata.generation last observed.")
    conditions: tuple[Condition, ...] = conditions_field(
        "TenantsFound: False names held tenants that do not exist (the hold still applies if they appear)."
    )
