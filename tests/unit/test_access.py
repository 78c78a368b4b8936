"""Inaccessibility decided purely: which namespaces, what stops, what is recorded and what comes back."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.lifecycle import CloseAccess, NamespaceFact, OpenAccess, access
from tenure.lifecycle.access import kept
from tenure.lifecycle.conditions import find

from .lifecycle_support import T0, FakeCluster

KEY = b"k" * 32
PHASES = (None, "Active", "Suspended", "Expired", "Purging", "Purged")


def fact(name: str, owner: str | None = "acme", protected: bool = False) -> NamespaceFact:
    return NamespaceFact(name, f"uid-{name}", "1", owner=owner, protected=protected)


@given(
    phase=st.sampled_from(PHASES),
    state=st.sampled_from(["Active", "Suspended", "Closed"]),
    held=st.booleans(),
    namespaces=st.dictionaries(
        st.sampled_from(["a", "b", "c", "kube-x", "default"]),
        st.tuples(st.sampled_from(["acme", "other", None]), st.booleans()),
        max_size=5,
    ),
    closed=st.frozensets(st.sampled_from(["a", "b", "c", "kube-x", "default"])),
)
def test_access_actions_touch_only_owned_namespaces_and_follow_the_phase(
    phase: str | None,
    state: str,
    held: bool,
    namespaces: dict[str, tuple[str | None, bool]],
    closed: frozenset[str],
) -> None:
    cluster = FakeCluster()
    cluster.edit(
        state=state, suspension_reason="NonPayment" if state == "Suspended" else None, namespaces=tuple(namespaces)
    )
    cluster.namespaces = {name: fact(name, owner, protected) for name, (owner, protected) in namespaces.items()}
    cluster.holds = ("case",) if held else ()
    closed = closed & set(namespaces)  # the reconciler asks about namespaces that exist
    cluster.closed = set(closed)
    decision = cluster.reconcile()
    phase = decision.status.phase
    actions = [a for a in decision.actions if isinstance(a, CloseAccess | OpenAccess)]
    owned = {
        name
        for name, (owner, protected) in namespaces.items()
        if owner == "acme" and not protected and not name.startswith("kube-") and name != "default"
    }
    if phase in ("Suspended", "Expired", "Purging"):  # a legal hold changes nothing about access
        assert actions == [CloseAccess(name, f"uid-{name}") for name in sorted(owned, key=list(namespaces).index)]
    elif phase == "Active":
        assert {a.namespace for a in actions} == owned & closed
        assert all(isinstance(a, OpenAccess) for a in actions)
    else:
        assert actions == []
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None
    assert (accessible.status == "True") == (phase == "Active" and not closed)
    if phase == "Active" and closed - owned:  # closed, but no longer provably the tenant's: left closed
        assert accessible.reason == "LeftClosed"


def test_suspend_closes_and_reopen_opens_until_the_quota_is_gone() -> None:
    cluster = FakeCluster()
    cluster.settle()
    uid = cluster.namespaces["acme-a"].uid
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    decision = cluster.reconcile()
    assert decision.status.phase == "Suspended"
    assert decision.actions[0] == CloseAccess("acme-a", uid)
    assert cluster.closed == {"acme-a"}
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("False", "NonPayment")
    assert "tenure-inaccessible" in accessible.message

    cluster.now = T0 + timedelta(days=1)
    cluster.edit(state="Active", suspension_reason=None)
    decision = cluster.decide()  # before the effect ran: reopening, not yet accessible
    assert decision.actions == (OpenAccess("acme-a", uid),)
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("False", "Reopening")
    cluster.reconcile()
    decision = cluster.reconcile()  # the quota is gone: accessible again, nothing more to do
    assert decision.actions == ()
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("True", "Active")


def test_a_closed_namespace_that_lost_its_owner_is_left_closed_and_said_so() -> None:
    """Someone removed the owner label while the tenant was suspended: Tenure may not touch the namespace any more
    (it cannot prove whose it is), so it stays closed; the condition and a Warning say why and what to do."""
    cluster = FakeCluster()
    cluster.settle()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.reconcile()
    assert cluster.closed == {"acme-a"}
    cluster.namespaces["acme-a"] = replace(cluster.namespaces["acme-a"], owner=None)
    cluster.now = T0 + timedelta(days=1)
    cluster.edit(state="Active", suspension_reason=None)
    decision = cluster.reconcile()
    assert not any(isinstance(action, OpenAccess) for action in decision.actions)
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("False", "LeftClosed")
    assert "acme-a" in accessible.message and "retention.tenure.dev/tenant=acme" in accessible.message
    assert [event.reason for event in decision.events if event.warning].count("AccessLeftClosed") == 1
    assert "AccessLeftClosed" not in [event.reason for event in cluster.reconcile().events]  # once, not per pass

    cluster.namespaces["acme-a"] = replace(cluster.namespaces["acme-a"], owner="acme")  # labeled again
    assert cluster.reconcile().actions == (OpenAccess("acme-a", cluster.namespaces["acme-a"].uid),)
    accessible = find(cluster.reconcile().status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("True", "Active")


def test_grace_elapsed_stays_inaccessible() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.reconcile()
    cluster.now = T0 + timedelta(days=15)
    decision = cluster.reconcile()
    assert decision.status.phase == "Expired"
    assert decision.actions == (CloseAccess("acme-a", cluster.namespaces["acme-a"].uid),)
    accessible = find(decision.status.conditions, "Accessible")
    assert accessible is not None and accessible.status == "False" and "tenure-inaccessible" in accessible.message


def binding(name: str, *subjects: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": list(subjects),
    }


def test_which_bindings_stay() -> None:
    user = {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
    tenant_sa = {"kind": "ServiceAccount", "name": "ci", "namespace": "acme-a"}
    system_sa = {"kind": "ServiceAccount", "name": "ctrl", "namespace": "kube-system"}
    tenure_sa = {"kind": "ServiceAccount", "name": "tenure", "namespace": "tenure-system"}
    nodes = {"kind": "Group", "name": "system:nodes", "apiGroup": "rbac.authorization.k8s.io"}
    all_sas = {"kind": "Group", "name": "system:serviceaccounts:acme-a", "apiGroup": "rbac.authorization.k8s.io"}
    authenticated = {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}
    assert not kept(binding("people", user), "tenure-system")
    assert not kept(binding("ci", tenant_sa), "tenure-system")
    assert not kept(binding("mixed", system_sa, user), "tenure-system")
    assert not kept(binding("sas", all_sas), "tenure-system")
    assert not kept(binding("everyone", authenticated), "tenure-system")
    assert not kept(binding("empty"), "tenure-system")
    for anyone in ("system:unauthenticated", "system:anonymous", "system:serviceaccounts", "system:bootstrappers"):
        subject = {"kind": "Group", "name": anyone, "apiGroup": "rbac.authorization.k8s.io"}
        assert not kept(binding("anyone", subject), "tenure-system"), anyone  # would let anyone in
    controllers = {"kind": "User", "name": "system:kube-controller-manager", "apiGroup": "rbac.authorization.k8s.io"}
    kube_sas = {"kind": "Group", "name": "system:serviceaccounts:kube-system", "apiGroup": "rbac.authorization.k8s.io"}
    assert kept(binding("controllers", controllers, kube_sas), "tenure-system")
    assert kept(binding("system", system_sa, nodes), "tenure-system")
    assert kept(binding("tenure", tenure_sa), "tenure-system")
    assert kept(binding("ops", user, labels={access.KEEP_ACCESS_LABEL: "true"}), "tenure-system")
    assert not kept(binding("ops", user, labels={access.KEEP_ACCESS_LABEL: "false"}), "tenure-system")
    assert not kept(binding("ops", user, labels=dict([access.MANAGED_BY])), "tenure-system")  # only keep-access


def test_a_record_verifies_only_for_its_namespace_its_quota_its_kind_and_content() -> None:
    from tenure.lifecycle import closure_records as records

    body = binding("people", {"kind": "User", "name": "alice"})
    record = records.Record("RoleBinding", "people", access.object_record(access.BINDINGS, body))
    closing = records.Closing("acme", "tenant-uid", "acme-a", "uid-a", "quota-1")
    parts = records.encode(KEY, closing, record)

    def recorded(key: bytes, parts: list[dict[str, Any]], closing: records.Closing = closing) -> object:
        decoded = records.decode(key, parts)
        return decoded[1] if decoded is not None and decoded[0] == closing else None

    def moved(**facts: str) -> list[dict[str, Any]]:  # the record, claiming to be for another closing
        return [{**part, "closing": {**part["closing"], **facts}} for part in parts]

    assert recorded(KEY, parts) == record
    assert recorded(b"x" * 32, parts) is None  # written under another seal key
    assert recorded(KEY, parts, replace(closing, namespace_uid="uid-other")) is None  # a recreated namespace
    assert recorded(KEY, moved(namespace_uid="uid-other")) is None
    assert recorded(KEY, moved(namespace="acme-b")) is None
    # A record copied from an earlier closure's quota onto the next one: it would grant again what an admin revoked
    # after the first reopening.
    assert recorded(KEY, moved(quota_uid="quota-2")) is None
    # The namespace relabeled to another tenant: the first tenant's bindings are not replayed on its reopening.
    assert recorded(KEY, moved(tenant="globex", tenant_uid="globex-uid")) is None
    escalated = records.Record("RoleBinding", "people", {**record.object, "roleRef": {"name": "cluster-admin"}})
    forged = [{**part, "payload": records.encode(KEY, closing, escalated)[0]["payload"]} for part in parts]
    assert forged != parts and recorded(KEY, forged) is None
    assert recorded(KEY, [{**parts[0], "payload": "not base64!"}]) is None
    assert recorded(KEY, []) is None
    # A record of one kind, said to be of another, would recreate bindings as policies: refused.
    as_policy = records.Record("NetworkPolicy", "people", record.object)
    relabeled = [{**part, "payload": records.encode(KEY, closing, as_policy)[0]["payload"]} for part in parts]
    assert recorded(KEY, relabeled) is None


def test_a_record_larger_than_one_object_is_split_and_needs_every_part() -> None:
    """No size a tenant controls may stop a removal: a record of any size is split in parts, each its own object."""
    import os

    from tenure.lifecycle import closure_records as records

    body = binding("huge", *({"kind": "User", "name": os.urandom(48).hex()} for _ in range(12_000)))
    body["metadata"]["annotations"] = {"big": os.urandom(190_000).hex()}  # random: gzip cannot shrink it
    record = records.Record("RoleBinding", "huge", access.object_record(access.BINDINGS, body), finalizers=["x/y"])
    closing = records.Closing("acme", "tenant-uid", "acme-a", "uid-a", "quota-1")
    parts = records.encode(KEY, closing, record)
    assert len(parts) >= 2 and all(len(part["payload"]) <= records.PART * 4 // 3 + 4 for part in parts)
    assert records.decode(KEY, list(reversed(parts))) == (closing, record)
    assert records.decode(KEY, parts[:-1]) is None  # a part missing
    assert records.decode(KEY, [parts[0], parts[0], *parts[2:]]) is None  # a part repeated in place of another


def test_an_object_made_after_the_quota_was_made_while_closed() -> None:
    from tenure.lifecycle import closure_records as records

    def made(at: str | None) -> dict[str, Any]:
        return {"metadata": {"name": "x", **({"creationTimestamp": at} if at else {})}}

    closed_at = "2026-12-08T03:00:00Z"
    assert not records.made_while_closed(made("2026-12-08T02:59:59Z"), closed_at)
    assert not records.made_while_closed(made("2026-12-08T03:00:00Z"), closed_at)  # the same second
    assert records.made_while_closed(made("2026-12-08T03:00:01Z"), closed_at)
    assert records.made_while_closed(made(None), closed_at)  # unknown: not taken for there at closing
    assert records.made_while_closed(made("2026-12-08T02:00:00Z"), None)


def test_the_tenants_own_network_policies_are_removed_and_recorded_whole_tenures_is_not() -> None:
    allow = {
        "metadata": {"name": "allow-web", "labels": {"app": "web"}, "uid": "u", "resourceVersion": "7"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}], "policyTypes": ["Ingress"]},
    }
    assert access.removed(access.POLICIES, allow, "tenure-system")
    assert not access.removed(access.POLICIES, {"metadata": {"name": access.MANAGED}}, "tenure-system")
    owned = {**allow, "metadata": {**allow["metadata"], "ownerReferences": [{"controller": True, "kind": "App"}]}}
    assert access.removed(access.POLICIES, owned, "tenure-system")  # whoever its ownerReferences claim owns it
    assert access.object_record(access.POLICIES, allow) == {
        "name": "allow-web",
        "labels": {"app": "web"},
        "annotations": {},
        "spec": allow["spec"],
    }


def test_an_unverified_record_is_kept_aside_once_and_never_dropped() -> None:
    first = access.kept_aside({}, "forged-1")
    assert json.loads(first) == ["forged-1"]
    again = access.kept_aside({access.UNVERIFIED_ANNOTATION: first}, "forged-1")
    assert json.loads(again) == ["forged-1"]
    assert json.loads(access.kept_aside({access.UNVERIFIED_ANNOTATION: again}, "forged-2")) == ["forged-1", "forged-2"]
    assert json.loads(access.kept_aside({access.UNVERIFIED_ANNOTATION: "garbled"}, "forged-3")) == [
        "garbled",
        "forged-3",
    ]


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge(result.get(name), value)
    return result


JSON = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.text(max_size=3)) | st.lists(st.integers(), max_size=2),
    lambda inner: st.dictionaries(st.sampled_from(["hard", "pods", "scopes", "podSelector", "ingress"]), inner),
    max_leaves=8,
)


@given(current=st.dictionaries(st.sampled_from(["hard", "scopes", "scopeSelector", "podSelector"]), JSON), wanted=JSON)
def test_exactly_makes_any_spec_exactly_tenures(current: dict[str, Any], wanted: Any) -> None:
    wanted = wanted if isinstance(wanted, dict) else {"hard": wanted}
    patch = access.exactly(current, wanted)
    assert merge(current, patch) == wanted if patch is not None else current == wanted


def test_a_quota_scoped_or_roomy_and_a_policy_that_lets_traffic_in_are_put_back() -> None:
    roomy = {"hard": {"pods": "100", "cpu": "1"}, "scopes": ["BestEffort"]}
    assert access.exactly(roomy, access.QUOTA_SPEC) == {"hard": {"pods": "0", "cpu": None}, "scopes": None}
    open_policy = {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [{}], "policyTypes": ["Ingress"]}
    assert access.exactly(open_policy, access.POLICY_SPEC) == {
        "podSelector": {"matchLabels": None},
        "ingress": None,
        "policyTypes": ["Ingress", "Egress"],
    }
    assert access.exactly(access.POLICY_SPEC, access.POLICY_SPEC) is None


def test_access_closed_at_marks_the_last_closing_and_outlives_reopening() -> None:
    """The gateway restores only what it blocked since the last closing (a record saved from an earlier suspension
    is refused): the time must be sealed in status, survive reopening, move on each new closing, not on expiry."""
    cluster = FakeCluster()
    cluster.settle()
    assert cluster.status.access_closed_at is None
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    first = cluster.reconcile().status.access_closed_at
    assert first == T0
    cluster.now = T0 + timedelta(days=1)
    cluster.edit(state="Active", suspension_reason=None)
    assert cluster.reconcile().status.access_closed_at == first  # reopened: kept
    cluster.now = T0 + timedelta(days=2)
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    assert cluster.reconcile().status.access_closed_at == T0 + timedelta(days=2)
    cluster.now = T0 + timedelta(days=20)  # grace elapsed: Expired, still the same closing
    decision = cluster.reconcile()
    assert (decision.status.phase, decision.status.access_closed_at) == ("Expired", T0 + timedelta(days=2))

    closing = FakeCluster()
    closing.settle()
    closing.now = T0 + timedelta(hours=3)
    closing.edit(state="Closed")
    assert closing.reconcile().status.access_closed_at == T0 + timedelta(hours=3)


def test_the_reconciler_never_reports_a_namespace_labeled_for_another_tenant_as_left_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tenant acme lists globex's namespace while globex is suspended (its quota is there): acme must not be told
    about it (globex's state is not acme's business), nor be advised to take it over."""
    from tenure.api import TENANT
    from tenure.runtime import reconciler as module
    from tenure.runtime.datastores import DataStores
    from tenure.runtime.store import Stores

    from ..support.fake_kube import FakeKube
    from .test_status_writes import Events

    asked: list[tuple[list[str], bool]] = []

    async def closed(kube: object, namespaces: list[str], unsure: bool = True) -> frozenset[str]:
        asked.append((list(namespaces), unsure))
        return frozenset(namespaces if not unsure else ())  # the quota is left only where acme cannot reopen

    monkeypatch.setattr(module.access, "closed", closed)
    kube, stores, events = FakeKube(), Stores(), Events()
    label = "retention.tenure.dev/tenant"
    for name, owner in (("globex-ns", "globex"), ("acme-ns", "acme"), ("loose-ns", None)):
        labels = {label: owner} if owner else {}
        stores.namespaces.put({"metadata": {"name": name, "uid": f"uid-{name}", "labels": labels}})
    spec = {"retentionPolicy": "none", "namespaces": ["globex-ns", "acme-ns", "loose-ns"]}
    stores.tenants.put(kube.create(TENANT.plural, {"metadata": {"name": "acme"}, "spec": spec}))
    datastores = DataStores(kube, stores)  # type: ignore[arg-type]
    reconciler = module.Reconciler(kube, stores, datastores, events, frozenset(), b"k", None, clock=lambda: T0)  # type: ignore[arg-type]

    asyncio.run(reconciler("acme"))

    assert asked == [(["acme-ns"], True), (["loose-ns"], False)]  # owned: unsure counts as closed; loose: as open
    conditions = asyncio.run(kube.get_custom(TENANT.plural, "acme"))["status"]["conditions"]
    accessible = next(c for c in conditions if c["type"] == "Accessible")
    assert accessible["reason"] == "LeftClosed"
    assert "loose-ns" in accessible["message"] and "globex-ns" not in accessible["message"]


def test_a_quota_made_anew_keeps_aside_every_record_it_carried() -> None:
    from tenure.effects.access import _aside

    annotations = {
        access.BINDINGS.annotation: "bindings-record",
        access.POLICIES.annotation: "policies-record",
        access.UNVERIFIED_ANNOTATION: json.dumps(["older"]),
    }
    assert json.loads(_aside(annotations) or "") == ["older", "bindings-record", "policies-record"]
    assert _aside({}) is None


class _Answer:
    """A raw (``_preload_content=False``) answer of the API server."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.reason, self._body = status, "", json.dumps(body).encode()

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self._body


def test_a_deleted_binding_counts_as_removed_only_once_the_api_server_says_it_is_gone() -> None:
    """Item 1: DELETE answers 2xx while a finalizer keeps the binding (and what RBAC grants with it). Tenure removes
    the finalizers and reads back; one that stays (something puts a finalizer back) is a failure with the reason."""
    from tenure.effects import removal
    from tenure.effects.access_report import Report

    body = {"metadata": {"name": "held", "namespace": "acme-a", "uid": "u1", "resourceVersion": "1",
                         "finalizers": ["example.com/keep"]}}  # fmt: skip

    def kind(stubborn: bool) -> tuple[removal.Removable, list[str]]:
        stored: dict[str, Any] = {"body": json.loads(json.dumps(body)), "deleting": False}
        calls: list[str] = []

        async def delete(name: str, namespace: str, **_: Any) -> _Answer:
            calls.append("delete")
            stored["deleting"] = True
            return _Answer(200, {})

        async def read(name: str, namespace: str, **_: Any) -> _Answer:
            calls.append("read")
            if stored["deleting"] and not stored["body"]["metadata"].get("finalizers"):
                return _Answer(404, {"reason": "NotFound"})
            return _Answer(200, stored["body"])

        async def unfinalize(now: dict[str, Any]) -> _Answer:
            calls.append("unfinalize")
            if not stubborn:
                stored["body"]["metadata"]["finalizers"] = []
            return _Answer(200, stored["body"])

        async def unused(*_: Any, **__: Any) -> _Answer:
            raise AssertionError("not called")

        return removal.Removable(access.BINDINGS, "rbac.authorization.k8s.io/v1", unused, unused, read, delete,
                                 unfinalize), calls  # fmt: skip

    report = Report("acme-a")
    removable, calls = kind(stubborn=False)
    assert asyncio.run(removal._end(removable, body, report)) == ["example.com/keep"]
    assert calls == ["delete", "read", "unfinalize", "read"] and report.failed == []

    report = Report("acme-a")
    removable, calls = kind(stubborn=True)
    assert asyncio.run(removal._end(removable, body, report)) is None
    assert calls[0] == "delete" and "read" in calls[-1]
    assert report.failed == [
        "RoleBinding held was deleted but is still there (finalizers: example.com/keep); it may still grant access, "
        "so the namespace is not closed yet"
    ]


def test_a_planted_record_that_is_not_gzip_or_inflates_to_gigabytes_is_refused_without_inflating_it() -> None:
    """A record is decompressed before its seal can be checked: one whose digest matches a corrupt deflate stream
    raised zlib.error (stopping the tenant's whole pass on every sweep), and a few kilobytes that inflate to
    gigabytes would exhaust the operator's memory. Both are records that do not verify."""
    import base64
    import gzip
    import hashlib
    import time

    from tenure.lifecycle import closure_records as records

    closing = records.Closing("acme", "tenant-uid", "acme-a", "uid-a", "quota-1")
    genuine = records.encode(KEY, closing, records.Record("RoleBinding", "x", {"name": "x"}))[0]

    def planted(payload: bytes) -> list[dict[str, Any]]:
        digest = hashlib.sha256(payload).hexdigest()
        return [{**genuine, "digest": digest, "payload": base64.b64encode(payload).decode()}]

    corrupt = b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 64  # a gzip header, then no valid deflate stream
    assert records.decode(KEY, planted(corrupt)) is None
    bomb = gzip.compress(b"\x00" * (1 << 28), compresslevel=9)  # 256 MiB of zeros in a quarter megabyte
    started = time.perf_counter()
    assert records.decode(KEY, planted(bomb)) is None
    assert time.perf_counter() - started < 5  # stopped at the limit, not inflated whole


def test_an_inaccessible_tenant_whose_gateway_blocking_is_unverified_is_not_reported_inaccessible() -> None:
    """Issue 24: a tenant whose keys the gateway check could not resolve may keep working keys; its own status must
    say so (Accessible Unknown, naming the store), not that it is kept out. Once verified, Accessible is False
    again; an Active tenant is not concerned."""
    cluster = FakeCluster()
    cluster.settle()
    cluster.gateway_unverified = {"litellm": "resolving its keys failed: DataError"}
    active = find(cluster.reconcile().status.conditions, "Accessible")
    assert active is not None and (active.status, active.reason) == ("True", "Active")
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    accessible = find(cluster.reconcile().status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("Unknown", "GatewayUnverified")
    assert "litellm: resolving its keys failed: DataError" in accessible.message
    cluster.gateway_unverified = {}
    accessible = find(cluster.reconcile().status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("False", "NonPayment")
