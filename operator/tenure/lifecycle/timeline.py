"""Phase transitions and their deadlines.

Rules (docs/lifecycle.md has the user-facing version):

* Deadlines are fixed on phase entry from the policy in force then, recorded
  in ``status.windows``; later policy edits do not move them.
* Extensions lengthen a running window at once; a deadline never moves
  earlier than already shown.
* Without a policy no deadline that needs it is computed, so nothing expires
  by grace and nothing is purged; once the policy appears, deadlines are
  computed from the recorded phase-entry time.
* Recorded times are whole seconds, rounded up, so a window is never shorter
  than declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tenure.api import RetentionPolicySpec, TenantSpec
from tenure.api.tenant import AppliedWindows, ClosureReason, HoldPeriod, Phase, PurgeStatus, SuspensionReason

from .model import Event


def stamp(now: datetime) -> datetime:
    """``now`` rounded up to a whole second."""
    whole = now.replace(microsecond=0)
    return whole if whole == now else whole + timedelta(seconds=1)


def later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """The later of two deadlines: a shown deadline never moves earlier."""
    if current is None or candidate is None:
        return current or candidate
    return max(current, candidate)


@dataclass
class Draft:
    """The mutable timeline part of a tenant's status while it is being decided."""

    phase: Phase
    closure_reason: ClosureReason | None = None
    suspended_at: datetime | None = None
    suspension_reason: SuspensionReason | None = None
    grace_ends_at: datetime | None = None
    expired_at: datetime | None = None
    purge_after: datetime | None = None
    access_closed_at: datetime | None = None
    purge_started_at: datetime | None = None
    purged_at: datetime | None = None
    grace_window: timedelta | None = None
    retention_window: timedelta | None = None
    purge: PurgeStatus | None = None
    holds: tuple[HoldPeriod, ...] = ()
    events: list[Event] = field(default_factory=list)

    @property
    def windows(self) -> AppliedWindows | None:
        if self.grace_window is None and self.retention_window is None:
            return None
        return AppliedWindows(suspension_grace_period=self.grace_window, expired_data_retention=self.retention_window)

    @property
    def next_deadline(self) -> datetime | None:
        return {"Suspended": self.grace_ends_at, "Expired": self.purge_after}.get(self.phase)


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "a deadline not yet known (no policy)"


def suspend(draft: Draft, spec: TenantSpec, policy: RetentionPolicySpec | None, now: datetime) -> None:
    draft.phase = "Suspended"
    draft.suspended_at = draft.access_closed_at = stamp(now)
    draft.suspension_reason = spec.suspension_reason
    draft.grace_window = policy.suspension_grace_period if policy else None
    draft.grace_ends_at = None
    extend_grace(draft, spec)
    draft.events.append(
        Event(
            "Suspended",
            f"Account suspended ({spec.suspension_reason}): inaccessible, "
            f"reopenable until {_iso(draft.grace_ends_at)}.",
        )
    )


def extend_grace(draft: Draft, spec: TenantSpec, policy: RetentionPolicySpec | None = None) -> None:
    """Compute graceEndsAt, filling a window missing at entry from a policy that appeared since."""
    if draft.grace_window is None and policy is not None:
        draft.grace_window = policy.suspension_grace_period
    extension = spec.extensions.suspension_grace_period if spec.extensions else None
    draft.grace_ends_at = _deadline(draft.grace_ends_at, draft.suspended_at, draft.grace_window, extension)


def reopen(draft: Draft) -> None:
    draft.phase = "Active"
    draft.suspended_at = draft.grace_ends_at = draft.grace_window = draft.suspension_reason = None
    draft.events.append(Event("Reopened", "Account reopened within its grace period; it is Active again."))


def expire(
    draft: Draft, spec: TenantSpec, policy: RetentionPolicySpec | None, reason: ClosureReason, at: datetime
) -> None:
    if draft.phase != "Suspended" or draft.access_closed_at is None:  # a suspension already closed it
        draft.access_closed_at = at
    draft.phase = "Expired"
    draft.closure_reason = reason
    draft.expired_at = at
    draft.retention_window = policy.expired_data_retention if policy else None
    draft.purge_after = None
    extend_retention(draft, spec)
    why = {
        "Voluntary": "Account closed",
        "SuspensionGraceElapsed": "Suspension grace period elapsed",
        "TenantDeleted": "Tenant object deleted",
    }[reason]
    draft.events.append(
        Event("Expired", f"{why}: data expired and will be permanently deleted after {_iso(draft.purge_after)}.")
    )


def extend_retention(draft: Draft, spec: TenantSpec, policy: RetentionPolicySpec | None = None) -> None:
    """Compute purgeAfter, filling a window missing at entry from a policy that appeared since."""
    if draft.retention_window is None and policy is not None:
        draft.retention_window = policy.expired_data_retention
    extension = spec.extensions.expired_data_retention if spec.extensions else None
    draft.purge_after = _deadline(draft.purge_after, draft.expired_at, draft.retention_window, extension)


def record_holds(draft: Draft, holds: tuple[str, ...], now: datetime) -> None:
    """Keep, for the PurgeReceipt, which LegalHolds named the tenant while its data waited or was being deleted."""
    if draft.phase not in ("Expired", "Purging"):
        return
    seen = {period.name for period in draft.holds if period.until is None}
    kept = tuple(
        period if period.until is not None or period.name in holds else period.model_copy(update={"until": stamp(now)})
        for period in draft.holds
    )
    draft.holds = kept + tuple(HoldPeriod(name=name, since=stamp(now)) for name in sorted(holds) if name not in seen)


def _deadline(
    shown: datetime | None, entered: datetime | None, window: timedelta | None, extension: timedelta | None
) -> datetime | None:
    """entered + window + extension, never earlier than the deadline already shown; unknown without a window."""
    if entered is None or window is None:
        return shown
    return later(shown, entered + window + (extension or timedelta(0)))
