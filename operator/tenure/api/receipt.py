"""PurgeReceipt: the proof that a tenant's data was deleted, kept after the Tenant is gone.

Tenure creates one when a purge completes, before it lets the Tenant go. It
holds identifiers and counts only, never customer data. Receipts form one
chain: each carries the digest of its own content and the digest of the
receipt before it, signed with Tenure's Ed25519 key (docs/records.md). The
API server refuses any change to a receipt's spec; an admission policy
refuses deleting one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .duration import Duration
from .meta import Model, Timestamp
from .tenant import HoldPeriod, Phase

DIGEST = r"^sha256:[0-9a-f]{64}$"
PhaseReason = Literal["NonPayment", "TermsViolation", "Other", "Voluntary", "SuspensionGraceElapsed", "TenantDeleted"]


class ReceiptTenant(Model):
    name: str = Field(description="The Tenant's name.", max_length=253)
    uid: str = Field(description="The Tenant object's uid: a tenant recreated under the same name is another.")


class ReceiptPolicy(Model):
    name: str = Field(description="The RetentionPolicy the tenant named.", max_length=253)
    suspension_grace_period: Duration | None = Field(None, description="The grace period that applied, if suspended.")
    expired_data_retention: Duration | None = Field(None, description="The expired-data retention that applied.")


class PhaseEntry(Model):
    phase: Phase = Field(description="The phase entered.")
    at: Timestamp = Field(description="When.")
    reason: PhaseReason | None = Field(None, description="Why: the suspension reason, or the closure reason.")


class ReceiptObject(Model):
    name: str = Field(description="The object's name.", max_length=253)
    uid: str = Field(description="Its uid.", max_length=64)


class ReceiptVolume(ReceiptObject):
    static: bool = Field(description="Statically provisioned: deleting the object could not wipe its storage.")
    source: str = Field("", description="The volume source, e.g. hostPath.", max_length=316)


class KeptVolume(Model):
    name: str = Field(description="The PersistentVolume's name.", max_length=253)
    why: str = Field(description="Why it was not deleted.", max_length=1024)


class ReceiptStore(Model):
    name: str = Field(description="The DataStore's name.", max_length=63)
    rows_deleted: int = Field(ge=0, description="Rows of the tenant deleted from the store.")
    rows_remaining: int = Field(ge=0, description="Rows of the tenant a closing count found left: 0 proves the end.")
    rows_shared: dict[str, int] = Field(
        default_factory=dict,
        description="Per table, rows kept because another tenant's key is on them too.",
        json_schema_extra={"maxProperties": 256},
    )
    residual: tuple[str, ...] = Field(
        (), description="Tables that may still hold copies no column attributes to the tenant."
    )


class PurgeReceiptSpec(Model):
    """What was deleted, when and under which policy, as one signed link of the receipt chain."""

    sequence: int = Field(ge=1, description="Position in the chain of all receipts, from 1.")
    previous_digest: str = Field(
        description="The digest of the receipt with the previous sequence; empty for the first.",
        pattern=r"^(sha256:[0-9a-f]{64})?$",
    )
    digest: str = Field(
        description="sha256 of this spec's canonical JSON without digest and signature (docs/records.md).",
        pattern=DIGEST,
    )
    key_id: str = Field(description="The signing key: its public key is in ConfigMap tenure-receipt-keys.")
    signature: str = Field(description="Ed25519 signature of the digest's 32 bytes, base64.", max_length=128)
    tenant: ReceiptTenant = Field(description="The tenant whose data was deleted.")
    policy: ReceiptPolicy = Field(description="The retention policy and the windows that applied.")
    timeline: tuple[PhaseEntry, ...] = Field(description="Each phase entered, in order.")
    holds: tuple[HoldPeriod, ...] = Field((), description="LegalHolds that named the tenant after it expired.")
    namespaces: tuple[ReceiptObject, ...] = Field((), description="Namespaces deleted.")
    volumes: tuple[ReceiptVolume, ...] = Field((), description="PersistentVolumes deleted.")
    kept_volumes: tuple[KeptVolume, ...] = Field((), description="PersistentVolumes not deleted, and why.")
    stores: tuple[ReceiptStore, ...] = Field((), description="Rows deleted per DataStore, and the closing count.")
    tenure_version: str = Field(description="The Tenure version that purged.", max_length=64)
