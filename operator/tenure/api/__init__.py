"""The Tenure API (retention.tenure.dev/v1alpha1), defined once.

These pydantic models are the single source of truth: the operator parses
objects with them, and ``make crds`` renders them into the CRDs the API
server validates against. Field descriptions become ``kubectl explain`` text.
"""

from .datastore import DataStoreSpec, DataStoreStatus
from .duration import BoundedDuration, Duration, format_duration, parse_duration
from .hold import LegalHoldSpec, LegalHoldStatus
from .meta import (
    API_GROUP,
    API_VERSION,
    PROTECTED_LABEL,
    TENANT_LABEL,
    Condition,
    Timestamp,
    format_timestamp,
)
from .policy import DATA_CLASSES, DataClass, DataClassRetention, RetentionPolicySpec, RetentionPolicyStatus
from .receipt import PurgeReceiptSpec
from .resources import DATA_STORE, LEGAL_HOLD, PURGE_RECEIPT, RESOURCES, RETENTION_POLICY, TENANT, Resource
from .tenant import ClosureReason, Extensions, Phase, State, TenantSpec, TenantStatus

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "DATA_CLASSES",
    "DATA_STORE",
    "LEGAL_HOLD",
    "PROTECTED_LABEL",
    "PURGE_RECEIPT",
    "RESOURCES",
    "RETENTION_POLICY",
    "TENANT",
    "TENANT_LABEL",
    "BoundedDuration",
    "ClosureReason",
    "Condition",
    "DataClass",
    "DataClassRetention",
    "DataStoreSpec",
    "DataStoreStatus",
    "Duration",
    "Extensions",
    "LegalHoldSpec",
    "LegalHoldStatus",
    "Phase",
    "PurgeReceiptSpec",
    "Resource",
    "RetentionPolicySpec",
    "RetentionPolicyStatus",
    "State",
    "TenantSpec",
    "TenantStatus",
    "Timestamp",
    "format_duration",
    "format_timestamp",
    "parse_duration",
]  # fmt: skip
