"""Tenant: one customer account and the namespaces its workloads live in.

``spec`` is what the business asks for (billing, support staff or GitOps
write it); ``status`` is what Tenure computed and did. Tenure never writes
spec.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .duration import Duration
from .meta import Condition, Model, Timestamp, conditions_field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""An object name (RFC 1123 subdomain): what the API server accepts as the name of a Tenure object."""

TenantName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, max_length=63)]
"""Any name a Tenant can have (a subdomain, at most 63 characters since it is used as a label value)."""
PolicyName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, max_length=253)]
DataStoreName = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
"""No control character (NUL, newline, escape...): what the API server requires of every key and name that reaches
SQL. A NUL makes any statement binding it fail; control characters have no place in an id or a table name."""
DataKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    Field(json_schema_extra={"pattern": NO_CONTROL}),
]
"""One key. Its pattern is the API server's alone: a Tenant stored earlier with a control character stays readable,
and the runtime leaves such a key out of every statement and reports it (it matches no row)."""
MAX_DATA_KEYS = 64
"""Keys per DataStore in spec.dataKeys (each at most 256 characters): the spec and its status stay small for etcd."""
NamespaceName = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]

State = Literal["Active", "Suspended", "Closed"]
SuspensionReason = Literal["NonPayment", "TermsViolation", "Other"]
Phase = Literal["Active", "Suspended", "Expired", "Purging", "Purged"]
ClosureReason = Literal["Voluntary", "SuspensionGraceElapsed", "TenantDeleted"]


class Extensions(Model):
    """Extra time added to this tenant's windows. Extensions only ever lengthen a window."""

    suspension_grace_period: Duration | None = Field(
        None, description="Added to the policy's suspensionGracePeriod for this tenant, e.g. 7d."
    )
    expired_data_retention: Duration | None = Field(
        None, description="Added to the policy's expiredDataRetention for this tenant, e.g. 30d."
    )


class TenantSpec(Model):
    """The account state the business asks for, and where the tenant's resources live."""

    display_name: str | None = Field(None, max_length=256, description="A human-friendly name for the account.")
    retention_policy: PolicyName = Field(
        "default", description="Name of the RetentionPolicy whose windows apply to this tenant."
    )
    state: State = Field(
        "Active",
        description=(
            "The account state asked for: Active (in use), Suspended (inaccessible, can be reopened "
            "within the grace period; needs suspensionReason) or Closed (voluntary closure: data "
            "expires and is permanently deleted after the expired-data retention). An expired "
            "account cannot be reopened."
        ),
    )
    suspension_reason: SuspensionReason | None = Field(
        None,
        description="Why the account is suspended: NonPayment, TermsViolation or Other. Required when "
        "state is Suspended and rejected otherwise.",
    )
    namespaces: tuple[NamespaceName, ...] = Field(
        (),
        max_length=64,
        description=(
            "Namespaces holding the tenant's workloads and volumes. While the tenant is Active, one that does "
            "not exist is created with the label retention.tenure.dev/tenant=<tenant>. An existing namespace "
            "is never labeled by Tenure: it is the tenant's only once an administrator labels it so. Only "
            "namespaces with that label are ever deleted, and never a protected one."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    extensions: Extensions | None = Field(
        None, description="Per-tenant extensions of the policy windows; they can only lengthen a window."
    )
    data_keys: dict[DataStoreName, Annotated[tuple[DataKey, ...], Field(max_length=MAX_DATA_KEYS)]] | None = Field(
        None,
        description=(
            "Per DataStore name, the key values that identify this tenant's rows there (default: the tenant's "
            "name). For the LiteLLM preset: organization ids and/or team ids."
        ),
        json_schema_extra={
            "maxProperties": 32,
            "x-kubernetes-validations": [
                {"rule": f"self.all(name, name.matches('{DNS_LABEL}'))", "message": "keys must be DataStore names"}
            ],
        },
    )


class AppliedWindows(Model):
    """Policy windows fixed when the current phase was entered, before extensions."""

    suspension_grace_period: Duration | None = Field(
        None, description="The policy's suspensionGracePeriod when the current suspension began."
    )
    expired_data_retention: Duration | None = Field(
        None, description="The policy's expiredDataRetention when the account expired."
    )


class PurgedNamespace(Model):
    """A namespace of the tenant that the purge deletes."""

    name: str = Field(description="The namespace's name.", max_length=63)
    uid: str = Field(description="Its uid: a namespace recreated under the same name is not this one.", max_length=64)


class CreatedNamespace(Model):
    """A namespace Tenure created for the tenant (it did not exist when the tenant listed it)."""

    name: str = Field(description="The namespace's name.", max_length=63)
    uid: str = Field(description="The uid of the namespace Tenure created.", max_length=64)


class PurgedVolume(Model):
    """A PersistentVolume of the tenant that the purge deletes."""

    name: str = Field(description="The PersistentVolume's name.", max_length=253)
    uid: str = Field(description="Its uid: a volume recreated under the same name is not this one.", max_length=64)
    claim_uid: str | None = Field(
        None,
        description="The uid of the PersistentVolumeClaim in a purged namespace it was bound to, as Tenure saw it.",
        max_length=64,
    )
    reclaim_policy: str | None = Field(
        None,
        description="Its reclaim policy before the purge changed anything; restored while a legal hold pauses the "
        "purge.",
        max_length=16,
    )
    static: bool = Field(
        description="True when no provisioner created the volume: deleting the object cannot wipe its storage."
    )
    source: str = Field("", description="The volume source, e.g. csi:ebs.csi.aws.com or hostPath.", max_length=316)


StoreState = Literal["Pending", "Resolved", "Deleting", "Waiting", "Paused", "Done", "NoKeys", "NotPurged"]
KEY_SAMPLE = 8
"""Keys shown in a purge's status when there are more than fit: the rest are counted and digested."""


class KeySet(Model):
    """Resolved keys too many to list in status: counted, sampled, and kept whole outside it, checked by digest."""

    count: int = Field(ge=0, description="How many keys, of every kind.")
    sample: tuple[Annotated[str, StringConstraints(max_length=256)], ...] = Field(
        (), max_length=KEY_SAMPLE, description="The first few, by kind and value."
    )
    digest: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 of the whole set (JSON, kinds and values sorted): a record that does not match it is "
        "never used.",
    )
    parts: int = Field(
        ge=1,
        le=64,
        description="ConfigMaps tenure-keys-<tenant uid>-<digest, 16 characters>-<part> in the operator's namespace "
        "holding the whole set (gzip-compressed JSON), owned by the Tenant.",
    )


class StorePurge(Model):
    """The purge of the tenant's rows in one DataStore."""

    name: str = Field(description="The DataStore's name.", max_length=63)
    state: StoreState = Field(
        "Pending",
        description="Pending, Resolved (keys recorded), Deleting, Waiting (retrying; see message), Paused (legal "
        "hold), Done (a count proved zero rows remain), NoKeys (spec.dataKeys lists no key for this store: nothing "
        "there is the tenant's) or NotPurged (the DataStore was deleted first: the tenant's rows there were NOT "
        "purged).",
    )
    requested: tuple[str, ...] = Field(
        (),
        description="The tenant's keys for this store (spec.dataKeys, or its name; the first 16 when there are "
        "more); they follow the spec until resolved, then stay as resolved.",
    )
    requested_count: int | None = Field(
        None, ge=0, description="How many keys were asked for, when there are more than requested lists."
    )
    keys: dict[str, tuple[str, ...]] | None = Field(
        None, description="Those keys resolved, by kind, recorded before anything was deleted (when few)."
    )
    key_set: KeySet | None = Field(
        None, description="Those keys resolved, when too many to list here: recorded before anything was deleted."
    )
    rows_deleted: int = Field(0, ge=0, description="Rows deleted so far.")
    rows_remaining: int | None = Field(None, ge=0, description="Rows counted after the last pass; 0 when Done.")
    message: str = Field("", description="What the purge of this store waits for, or why it retries.", max_length=1024)
    residual: tuple[str, ...] = Field(
        (), description="Tables that may still hold copies of the tenant's data no column attributes to it."
    )
    rows_shared: dict[str, int] = Field(
        default_factory=dict,
        description="Per table, rows carrying the tenant's key that stay because they also carry a key another "
        "tenant (not yet purged) claims; that tenant's purge deletes them.",
        json_schema_extra={"maxProperties": 256},
    )


class PurgeStatus(Model):
    """What the purge deletes, recorded before its first deletion so a restart resumes the same work."""

    namespaces: tuple[PurgedNamespace, ...] = Field(
        (), description="Namespaces labeled for this tenant when the purge began; only these are deleted."
    )
    volumes: tuple[PurgedVolume, ...] = Field(
        (),
        description="PersistentVolumes whose claim (by uid) Tenure saw in those namespaces when the purge began.",
    )
    kept_volumes: tuple[str, ...] = Field(
        (),
        description="PersistentVolumes naming those namespaces whose claim Tenure never saw there: never modified "
        "or deleted.",
    )
    stores: tuple[StorePurge, ...] = Field((), description="The purge of the tenant's rows, per DataStore.")
    remaining_namespaces: int | None = Field(None, ge=0, description="Recorded namespaces not yet confirmed gone.")
    remaining_volumes: int | None = Field(None, ge=0, description="Recorded volumes not yet confirmed gone.")


class HoldPeriod(Model):
    """A LegalHold that named the tenant after it expired, recorded for its PurgeReceipt."""

    name: str = Field(description="The LegalHold's name.", max_length=253)
    since: Timestamp = Field(description="When Tenure first saw it name the expired tenant.")
    until: Timestamp | None = Field(None, description="When Tenure saw it released.")


class TenantStatus(Model):
    """Where the tenant is in its lifecycle, with the deadlines fixed on phase entry."""

    phase: Phase | None = Field(
        None,
        description="Active, Suspended, Expired, Purging or Purged. Expired and later phases are one-way.",
    )
    closure_reason: ClosureReason | None = Field(
        None, description="Why the account was closed: Voluntary, SuspensionGraceElapsed or TenantDeleted."
    )
    suspended_at: Timestamp | None = Field(None, description="When the current suspension began.")
    suspension_reason: SuspensionReason | None = Field(
        None, description="Why the current (or last, once expired) suspension began, recorded for the PurgeReceipt."
    )
    grace_ends_at: Timestamp | None = Field(
        None, description="When a suspended account stops being reopenable and its data expires."
    )
    expired_at: Timestamp | None = Field(None, description="When the account was closed and its data expired.")
    purge_after: Timestamp | None = Field(
        None, description="The earliest moment the tenant's data may be permanently deleted."
    )
    access_closed_at: Timestamp | None = Field(
        None,
        description="When the account last became inaccessible (suspended, or closed while open); kept after "
        "reopening. At the LiteLLM gateway Tenure restores only what it blocked since then.",
    )
    purge_started_at: Timestamp | None = Field(None, description="When permanent deletion began.")
    purged_at: Timestamp | None = Field(None, description="When permanent deletion was confirmed complete.")
    next_deadline: Timestamp | None = Field(
        None, description="graceEndsAt while Suspended, purgeAfter while Expired; empty otherwise."
    )
    windows: AppliedWindows | None = Field(
        None,
        description="Policy windows in force when the current phase was entered; later policy edits do not move them.",
    )
    purge: PurgeStatus | None = Field(None, description="The purge's recorded scope and progress.")
    holds: tuple[HoldPeriod, ...] | None = Field(
        None,
        max_length=256,
        description="LegalHolds that named the tenant while Expired or Purging, with when they were seen and released.",
    )
    created_namespaces: tuple[CreatedNamespace, ...] | None = Field(
        None, description="Namespaces Tenure created for this tenant because they did not exist, with their uids."
    )
    observed_generation: int | None = Field(None, ge=0, description="The metadata.generation last acted on.")
    conditions: tuple[Condition, ...] = conditions_field(
        "PolicyResolved, NamespacesOwned, Accessible, LegalHold, StatusTrusted and Purged."
    )
    seal: str | None = Field(
        None,
        description="Tenure's HMAC over this tenant's name, uid and the status fields it acts on. A status whose "
        "seal does not verify is not acted on: it is rebuilt from spec (see condition StatusTrusted).",
        max_length=128,
    )
