"""The Tenure kinds: names, schemas, printer columns and whole-object rules.

Everything `kubectl` shows about a kind is declared here once, next to the
models, and rendered to ``crds/`` by :mod:`tenure.api.crd`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .datastore import DataStoreSpec, DataStoreStatus
from .hold import LegalHoldSpec, LegalHoldStatus
from .meta import Model
from .policy import RetentionPolicySpec, RetentionPolicyStatus
from .receipt import PurgeReceiptSpec
from .tenant import TenantSpec, TenantStatus


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    short_name: str
    description: str
    spec: type[Model]
    status: type[Model] | None
    columns: tuple[dict[str, Any], ...] = ()
    rules: tuple[dict[str, str], ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _condition(type_: str, field: str = "status") -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


TENANT = Resource(
    kind="Tenant",
    plural="tenants",
    short_name="tn",
    description=("A customer account whose data Tenure retains and, when its windows elapse, permanently deletes."),
    spec=TenantSpec,
    status=TenantStatus,
    columns=(
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Policy", "type": "string", "jsonPath": ".spec.retentionPolicy"},
        {
            "name": "Next Deadline",
            "type": "string",
            "format": "date-time",
            "jsonPath": ".status.nextDeadline",
        },
        {"name": "Accessible", "type": "string", "jsonPath": _condition("Accessible")},
        {"name": "Hold", "type": "string", "jsonPath": _condition("LegalHold")},
        _age(),
        {"name": "Access", "type": "string", "jsonPath": _condition("Accessible", "reason"), "priority": 1},
        {"name": "State", "type": "string", "jsonPath": ".spec.state", "priority": 1},
        {"name": "Closure", "type": "string", "jsonPath": ".status.closureReason", "priority": 1},
    ),
    rules=(
        {
            "rule": "size(self.metadata.name) <= 63",
            "message": "metadata.name: a tenant name is used as a label value and must be at most 63 characters",
        },
        {
            "rule": "self.spec.state != 'Suspended' || has(self.spec.suspensionReason)",
            "message": "spec.suspensionReason is required when spec.state is Suspended",
            "fieldPath": ".spec.suspensionReason",
            "reason": "FieldValueRequired",
        },
        {
            "rule": "self.spec.state == 'Suspended' || !has(self.spec.suspensionReason)",
            "message": "spec.suspensionReason is only allowed when spec.state is Suspended",
            "fieldPath": ".spec.suspensionReason",
            "reason": "FieldValueForbidden",
        },
    ),
)

RETENTION_POLICY = Resource(
    kind="RetentionPolicy",
    plural="retentionpolicies",
    short_name="rp",
    description="Retention windows shared by the tenants that name this policy.",
    spec=RetentionPolicySpec,
    status=RetentionPolicyStatus,
    columns=(
        {"name": "Grace", "type": "string", "jsonPath": ".spec.suspensionGracePeriod"},
        {"name": "Expired Retention", "type": "string", "jsonPath": ".spec.expiredDataRetention"},
        {"name": "Active Retention", "type": "string", "jsonPath": ".spec.activeDataRetention"},
        {"name": "Tenants", "type": "integer", "jsonPath": ".status.tenants"},
        _age(),
    ),
)

LEGAL_HOLD = Resource(
    kind="LegalHold",
    plural="legalholds",
    short_name="lh",
    description="A legal requirement that keeps the named tenants' data: nothing of theirs is deleted while it exists.",
    spec=LegalHoldSpec,
    status=LegalHoldStatus,
    columns=(
        {"name": "Reason", "type": "string", "jsonPath": ".spec.reason"},
        {"name": "Tenants Found", "type": "string", "jsonPath": _condition("TenantsFound")},
        _age(),
    ),
)

DATA_STORE = Resource(
    kind="DataStore",
    plural="datastores",
    short_name="dstore",  # "ds" is DaemonSet's, and kubectl prefers the built-in
    description="A database holding tenants' records: active-data retention sweeps it, a tenant's purge empties it.",
    spec=DataStoreSpec,
    status=DataStoreStatus,
    columns=(
        {"name": "Ready", "type": "string", "jsonPath": _condition("Ready")},
        {"name": "Preset", "type": "string", "jsonPath": ".spec.postgres.preset"},
        {"name": "Last Sweep", "type": "date", "jsonPath": ".status.lastSweep.finishedAt"},
        {"name": "Deleted", "type": "integer", "jsonPath": ".status.lastSweep.rowsDeleted"},
        _age(),
    ),
    rules=(
        {
            "rule": "has(self.spec.postgres.preset) || "
            "(has(self.spec.postgres.tables) && size(self.spec.postgres.tables) > 0)",
            "message": "spec.postgres needs a preset or at least one entry in tables",
            "fieldPath": ".spec.postgres",
        },
    ),
)

PURGE_RECEIPT = Resource(
    kind="PurgeReceipt",
    plural="purgereceipts",
    short_name="receipt",
    description="The signed, chained proof that a tenant's data was deleted: identifiers and counts, no data. "
    "Immutable; kept after the Tenant is gone (docs/records.md).",
    spec=PurgeReceiptSpec,
    status=None,
    columns=(
        {"name": "Seq", "type": "integer", "jsonPath": ".spec.sequence"},
        {"name": "Tenant", "type": "string", "jsonPath": ".spec.tenant.name"},
        {"name": "Policy", "type": "string", "jsonPath": ".spec.policy.name"},
        {"name": "Purged", "type": "string", "jsonPath": ".spec.timeline[-1:].at"},
        {"name": "Key", "type": "string", "jsonPath": ".spec.keyId", "priority": 1},
        {"name": "Digest", "type": "string", "jsonPath": ".spec.digest", "priority": 1},
        _age(),
    ),
    rules=(
        {
            "rule": "self.spec == oldSelf.spec",
            "message": "spec: a PurgeReceipt is immutable; its content is signed and chained to the next receipt",
        },
    ),
)

RESOURCES: tuple[Resource, ...] = (TENANT, RETENTION_POLICY, LEGAL_HOLD, DATA_STORE, PURGE_RECEIPT)
