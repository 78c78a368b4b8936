"""The lifecycle decision: one pure function of (tenant, policy, world, now).

Transitions are evaluated in order, so an operator that was down across
several deadlines catches up in one pass (Suspended → Expired at
graceEndsAt → Purging), each step timed by its own deadline rather than by
when the operator noticed it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tenure.api import Condition, RetentionPolicySpec, TenantStatus
from tenure.api.meta import ConditionStatus

from . import access, accessibility, purge
from .conditions import condition, find, listing
from .model import Action, AddFinalizer, CloseAccess, Decision, Event, OpenAccess, RemoveFinalizer, TenantView, World
from .ownership import describe, ownership, tenant_namespaces
from .timeline import Draft, expire, extend_grace, extend_retention, record_holds, reopen, stamp, suspend
from .trust import agrees

Make = Callable[[str, ConditionStatus, str, str], Condition]

ONE_WAY = ("Expired", "Purging", "Purged")
OPEN = ("Active", "Suspended")
_DELETED_WHILE_OPEN = (
    "The Tenant was deleted while {}: the account is closed (TenantDeleted) and its data will be deleted after the "
    "retention window, as if spec.state were Closed. The admission policy tenure-explicit-closing, which refuses "
    "this, is not installed (or the break-glass group was used); see docs/gitops.md."
)

PURGE_POLL = timedelta(seconds=5)
"""While purging, look again at least this often even without a watch event."""


def decide(
    tenant: TenantView, policy: RetentionPolicySpec | None, world: World, now: datetime, trusted: bool = True
) -> Decision:
    """``trusted`` False: tenant.status was rebuilt from spec because the recorded one did not verify (see trust)."""
    old = tenant.status
    spec = tenant.spec
    draft = _draft(old)
    if not trusted:  # each time: every forgery is news, even one that reads like the last
        draft.events.append(Event("StatusUntrusted", _untrusted_message(tenant, draft.phase), True))
    spec_changed = old.observed_generation != tenant.generation

    if draft.phase == "Active":
        if tenant.deleting:
            expire(draft, spec, policy, "TenantDeleted", stamp(now))
        elif spec.state == "Closed":
            expire(draft, spec, policy, "Voluntary", stamp(now))
        elif spec.state == "Suspended":
            suspend(draft, spec, policy, now)

    if draft.phase == "Suspended":
        extend_grace(draft, spec, policy)
        if draft.grace_ends_at is not None and now >= draft.grace_ends_at:
            expire(draft, spec, policy, "SuspensionGraceElapsed", draft.grace_ends_at)
        elif tenant.deleting:
            expire(draft, spec, policy, "TenantDeleted", stamp(now))
        elif spec.state == "Closed":
            expire(draft, spec, policy, "Voluntary", stamp(now))
        elif spec.state == "Active":
            reopen(draft)

    if draft.closure_reason == "TenantDeleted" and draft.phase == "Expired" and old.phase in (None, *OPEN):
        draft.events.append(Event("DeletedWhileOpen", _DELETED_WHILE_OPEN.format(old.phase or "Active"), True))

    held = bool(world.holds)
    if draft.phase == "Expired":
        extend_retention(draft, spec, policy)
        if (
            draft.purge_after is not None
            and now >= draft.purge_after
            and not held
            and agrees(tenant, draft.closure_reason)
        ):
            draft.phase = "Purging"
            draft.purge_started_at = stamp(now)
            draft.purge = purge.scope(tenant, world)
            draft.events.append(Event("PurgeStarted", _scope_message(draft)))

    record_holds(draft, world.holds, now)  # before the purge may complete: a hold seen now is on its receipt

    if spec_changed and spec.state != "Closed" and not tenant.deleting and draft.phase in ONE_WAY:
        draft.events.append(
            Event("ReopenRefused", f"An expired account cannot be reopened; spec.state {spec.state} is ignored.", True)
        )

    actions: list[Action] = []
    progress = None
    if draft.phase == "Purging" and draft.purge is not None:
        progress = purge.step(tenant, draft.purge, world)
        if progress.done:
            draft.phase = "Purged"
            draft.purged_at = stamp(now)
            draft.events.append(Event("Purged", _purged_message(draft)))
        else:  # held, or a spec that does not ask for the end: only undo what arms a deletion
            proceed = not held and agrees(tenant, draft.closure_reason)
            actions.extend(progress.actions if proceed else progress.restores)
        draft.purge = draft.purge.model_copy(
            update={
                "remaining_namespaces": len(progress.remaining_namespaces),
                "remaining_volumes": len(progress.remaining_volumes),
                "stores": progress.stores,
            }
        )

    owns = ownership(tenant, world, create=draft.phase == "Active" and not tenant.deleting)
    if draft.phase == "Active":
        actions.extend(owns.actions)
    scope = tenant_namespaces(tenant, world)  # what is closed is what the purge deletes
    access_actions = access.plan(draft.phase, scope, world.closed)
    actions[:0] = access_actions
    if not tenant.finalized and not tenant.deleting and draft.phase != "Purged":
        actions.insert(0, AddFinalizer())
    if tenant.finalized and draft.phase == "Purged":
        actions.append(RemoveFinalizer())

    conditions = _conditions(
        tenant,
        policy,
        draft,
        world,
        owns_condition=describe(owns),
        progress=progress,
        now=now,
        trusted=trusted,
        access_actions=access_actions,
        stranded=sorted(world.closed - {fact.name for fact in scope}) if draft.phase == "Active" else [],
    )
    events = draft.events + _condition_events(old.conditions, conditions)
    status = TenantStatus(
        phase=draft.phase,
        closure_reason=draft.closure_reason,
        suspended_at=draft.suspended_at,
        suspension_reason=draft.suspension_reason,
        grace_ends_at=draft.grace_ends_at,
        expired_at=draft.expired_at,
        purge_after=draft.purge_after,
        access_closed_at=draft.access_closed_at,
        purge_started_at=draft.purge_started_at,
        purged_at=draft.purged_at,
        next_deadline=draft.next_deadline,
        windows=draft.windows,
        purge=draft.purge,
        holds=draft.holds or None,
        created_namespaces=owns.created or None,
        observed_generation=tenant.generation,
        conditions=conditions,
    )
    waits = held or not agrees(tenant, draft.closure_reason)
    return Decision(status=status, actions=tuple(actions), events=tuple(events), wake_at=_wake(draft, waits, now))


def _draft(status: TenantStatus) -> Draft:
    windows = status.windows
    return Draft(
        phase=status.phase or "Active",
        closure_reason=status.closure_reason,
        suspended_at=status.suspended_at,
        suspension_reason=status.suspension_reason,
        grace_ends_at=status.grace_ends_at,
        expired_at=status.expired_at,
        purge_after=status.purge_after,
        access_closed_at=status.access_closed_at,
        purge_started_at=status.purge_started_at,
        purged_at=status.purged_at,
        grace_window=windows.suspension_grace_period if windows else None,
        retention_window=windows.expired_data_retention if windows else None,
        purge=status.purge,
        holds=status.holds or (),
    )


def _wake(draft: Draft, waits: bool, now: datetime) -> datetime | None:
    """``waits``: a hold, or a spec that does not ask for the end; a change of either wakes the tenant anyway."""
    if draft.phase == "Suspended":
        return draft.grace_ends_at
    if draft.phase == "Expired" and draft.purge_after is not None and (not waits or now < draft.purge_after):
        return draft.purge_after  # while waiting, only to report the purge as overdue
    if draft.phase == "Purging" and not waits:
        return now + PURGE_POLL
    return None


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "(unknown)"


def _scope_message(draft: Draft) -> str:
    assert draft.purge is not None
    namespaces = listing(n.name for n in draft.purge.namespaces) or "none"
    volumes = listing(v.name for v in draft.purge.volumes) or "none"
    return f"Permanent deletion started. Namespaces: {namespaces}. Volumes: {volumes}.{_kept_message(draft)}"


def _kept_message(draft: Draft) -> str:
    assert draft.purge is not None
    if not draft.purge.kept_volumes:
        return ""
    return (
        " Not deleted and never modified, as their claim was never seen in the tenant's namespaces: volumes "
        f"{listing(draft.purge.kept_volumes)}."
    )


def _purged_message(draft: Draft) -> str:
    assert draft.purge is not None
    message = (
        f"Namespaces ({listing(n.name for n in draft.purge.namespaces) or 'none'}) and volumes "
        f"({listing(v.name for v in draft.purge.volumes) or 'none'}) are gone.{_kept_message(draft)}"
    )
    for store in draft.purge.stores:
        if store.state != "Done":  # NoKeys or NotPurged: the store's own message says which, naming the keys
            message += f" DataStore {store.name}: {store.message}."
            continue
        message += f" DataStore {store.name}: {store.rows_deleted} rows deleted, a count found none left."
        if store.rows_shared:
            shared = (f"{rows} in {table}" for table, rows in sorted(store.rows_shared.items()))
            message += f" Left because other tenants' keys are on them too: {listing(shared)}."
        if store.residual:
            message += f" Not cleared (no column attributes them to a tenant): {listing(store.residual, '; ')}."
    static = [f"{v.name} ({v.source or 'unknown source'})" for v in draft.purge.volumes if v.static]
    if static:
        message += (
            " Statically provisioned volumes were deleted as objects, but Kubernetes cannot wipe their backing "
            f"storage; wipe it by hand: {listing(static)}."
        )
    return message


def _conditions(
    tenant: TenantView,
    policy: RetentionPolicySpec | None,
    draft: Draft,
    world: World,
    owns_condition: tuple[ConditionStatus, str, str],
    progress: purge.Progress | None,
    now: datetime,
    trusted: bool,
    access_actions: tuple[CloseAccess | OpenAccess, ...],
    stranded: list[str],
) -> tuple[Condition, ...]:
    previous = tenant.status.conditions

    def make(type_: str, status: ConditionStatus, reason: str, message: str) -> Condition:
        return condition(previous, type_, status, reason, message, now, tenant.generation)

    name = tenant.spec.retention_policy
    result = [
        make("PolicyResolved", "True", "PolicyFound", f"Windows come from RetentionPolicy {name!r}.")
        if policy is not None
        else make(
            "PolicyResolved",
            "False",
            "PolicyNotFound",
            f"RetentionPolicy {name!r} does not exist; no deadline that needs it is computed and nothing is "
            "deleted until it does.",
        )
    ]
    if draft.phase in ("Active", "Suspended", "Expired"):
        result.append(make("NamespacesOwned", *owns_condition))
    elif (kept := find(previous, "NamespacesOwned")) is not None:
        result.append(kept)
    accessible = accessibility.accessible(tenant, draft, make, access_actions, stranded, world)
    result.append(accessible)
    if world.holds:
        holds = listing(sorted(world.holds))
        overdue = draft.phase == "Expired" and draft.purge_after is not None and now >= draft.purge_after
        effect = {
            "Purging": "the purge is paused and resumes when the last hold is released",
            "Purged": "the data was already purged before the hold",
        }.get(draft.phase, "nothing of this tenant is deleted while it is held")
        if overdue:
            effect = f"the purge due at {_iso(draft.purge_after)} waits for the last hold to be released"
        result.append(make("LegalHold", "True", "Held", f"Held by {holds}: {effect}."))
    else:
        result.append(make("LegalHold", "False", "NotHeld", "No LegalHold names this tenant."))
    result.append(_trusted(tenant, draft, trusted, make))
    disagrees = not agrees(tenant, draft.closure_reason)
    if draft.phase == "Purged":
        result.append(make("Purged", "True", "Purged", _purged_message(draft)))
    elif draft.phase == "Purging" and progress is not None:
        reason = "PausedByLegalHold" if world.holds else "WaitingForSpec" if disagrees else "InProgress"
        waiting = f"Waiting for {progress.waiting}." if progress.waiting else ""
        if disagrees and not world.holds:
            waiting = _spec_disagrees(tenant, "the purge is paused")
        result.append(make("Purged", "False", reason, (waiting + _kept_message(draft)).strip()))
    elif draft.phase == "Expired" and disagrees and draft.purge_after is not None and now >= draft.purge_after:
        due = f"the purge due at {_iso(draft.purge_after)} waits"
        result.append(make("Purged", "False", "WaitingForSpec", _spec_disagrees(tenant, due)))
    return tuple(result)


def _spec_disagrees(tenant: TenantView, effect: str) -> str:
    return (
        f"spec.state is {tenant.spec.state}: {effect}; nothing is deleted until spec.state is Closed "
        "(or the Tenant is deleted)."
    )


def _untrusted_message(tenant: TenantView, phase: str | None) -> str:
    return (
        "The recorded status does not carry Tenure's seal (forged, restored from a backup, or written by an older "
        f"Tenure); nothing is done on it. Rebuilt from spec.state {tenant.spec.state}: phase {phase}, deadlines "
        "restart from now and are never earlier than recorded ones."
    )


def _trusted(tenant: TenantView, draft: Draft, trusted: bool, make: Make) -> Condition:
    """False from a rebuild until the next phase change, so people see that the recorded status was not Tenure's."""
    if not trusted:
        return make("StatusTrusted", "False", "SealMismatch", _untrusted_message(tenant, tenant.status.phase))
    previous = find(tenant.status.conditions, "StatusTrusted")
    if previous is not None and previous.status == "False" and tenant.status.phase == draft.phase:
        return previous
    return make("StatusTrusted", "True", "Sealed", "The status carries Tenure's seal.")


_ANNOUNCED = {
    ("LegalHold", "True"): ("LegalHoldApplied", False),
    ("LegalHold", "False"): ("LegalHoldReleased", False),
    ("NamespacesOwned", "False"): ("NamespacesRefused", True),
    ("PolicyResolved", "False"): ("PolicyNotFound", True),
}
_ANNOUNCED_REASONS = {("Accessible", "LeftClosed"): ("AccessLeftClosed", True)}


def _condition_events(before: tuple[Condition, ...], after: tuple[Condition, ...]) -> list[Event]:
    """Events for condition changes people must hear about (holds, refusals, missing policies)."""
    events = []
    for new in after:
        old = find(before, new.type)
        announced = _ANNOUNCED.get((new.type, new.status)) or _ANNOUNCED_REASONS.get((new.type, new.reason))
        if announced is None or (old is not None and (old.status, old.message) == (new.status, new.message)):
            continue
        if old is None and new.status == "False" and new.type == "LegalHold":
            continue  # a new tenant without holds is not news
        events.append(Event(announced[0], new.message, announced[1]))
    return events
