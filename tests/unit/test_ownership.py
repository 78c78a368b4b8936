"""Ownership, rule by rule: which namespaces and volumes a tenant's purge may touch (pure core, fake clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.api import TenantSpec, TenantStatus
from tenure.lifecycle import (
    ClaimFact,
    CloseAccess,
    CreateNamespace,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    OpenAccess,
    ReclaimOnDelete,
    RestoreReclaim,
    TenantView,
    VolumeFact,
    World,
    access,
    purge,
)
from tenure.lifecycle.conditions import find
from tenure.lifecycle.ownership import protected, tenant_namespaces
from tenure.runtime.config import Config, namespace_list
from tenure.runtime.store import Stores

from .lifecycle_support import T0, FakeCluster, uid

DAY = timedelta(days=1)


def message(cluster: FakeCluster, type_: str) -> tuple[str, str]:
    found = find(cluster.status.conditions, type_)
    assert found is not None, f"no {type_} condition"
    return found.status, found.message


def touched(cluster: FakeCluster) -> set[str]:
    """Every object any decision so far acted on."""
    kinds = (CreateNamespace, DeleteNamespace, DeleteVolume, ReclaimOnDelete, RestoreReclaim)
    return {a.name for d in cluster.decisions for a in d.actions if isinstance(a, kinds)}


def test_an_existing_unlabeled_namespace_is_never_labeled_and_survives_the_purge() -> None:
    cluster = FakeCluster()
    cluster.namespaces["monitoring"] = NamespaceFact("monitoring", "u-mon", "1", owner=None)
    cluster.edit(namespaces=("acme-a", "monitoring"))
    cluster.settle()
    status, text = message(cluster, "NamespacesOwned")
    assert status == "False"
    assert "monitoring exists without this tenant's label" in text
    assert "kubectl label namespace monitoring retention.tenure.dev/tenant=acme" in text
    assert any(e.reason == "NamespacesRefused" and e.warning for d in cluster.decisions for e in d.events)
    cluster.close_until(T0 + 31 * DAY)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert cluster.namespaces["monitoring"] == NamespaceFact("monitoring", "u-mon", "1", owner=None)
    assert "monitoring" not in touched(cluster)
    assert [n.name for n in cluster.status.purge.namespaces] == ["acme-a"] if cluster.status.purge else False


def test_a_namespace_an_administrator_labels_for_the_tenant_is_owned_then_purged() -> None:
    cluster = FakeCluster()
    cluster.namespaces["legacy"] = NamespaceFact("legacy", "u-legacy", "1", owner=None)
    cluster.edit(namespaces=("legacy",))
    cluster.settle()
    assert message(cluster, "NamespacesOwned")[0] == "False"
    cluster.namespaces["legacy"] = replace(cluster.namespaces["legacy"], owner="acme", resource_version="2")
    cluster.settle()
    assert message(cluster, "NamespacesOwned") == ("True", "Labeled for this tenant: legacy.")
    assert cluster.status.created_namespaces is None  # handed over, not created by Tenure
    cluster.close_until(T0 + 31 * DAY)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert "legacy" not in cluster.namespaces
    assert "legacy" in {a.name for d in cluster.decisions for a in d.actions if isinstance(a, DeleteNamespace)}


@pytest.mark.parametrize(
    ("name", "fact"),
    [
        ("kube-anything", None),  # every kube-* namespace, existing or not
        ("default", NamespaceFact("default", "u-d", "1", owner="acme")),
        ("infra", NamespaceFact("infra", "u-i", "1", owner="acme")),  # configured, even labeled for the tenant
        ("ops", NamespaceFact("ops", "u-o", "1", owner="acme", protected=True)),  # labeled protected
    ],
)
def test_protected_namespaces_are_never_created_owned_or_deleted(name: str, fact: NamespaceFact | None) -> None:
    cluster = FakeCluster()
    cluster.protected = frozenset({"default", "infra"})
    if fact is not None:
        cluster.namespaces[name] = fact
    cluster.edit(namespaces=(name,))
    cluster.settle()
    assert message(cluster, "NamespacesOwned") == ("False", f"Not owned and never touched: {name} is protected.")
    cluster.close_until(T0 + 31 * DAY)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert name not in touched(cluster)
    assert (cluster.namespaces.get(name), cluster.status.purge.namespaces if cluster.status.purge else None) == (
        fact,
        (),
    )


def test_the_uid_of_a_created_namespace_is_recorded_and_follows_a_recreation() -> None:
    cluster = FakeCluster()
    cluster.settle()
    first = cluster.namespaces["acme-a"].uid
    assert [(c.name, c.uid) for c in cluster.status.created_namespaces or ()] == [("acme-a", first)]
    del cluster.namespaces["acme-a"]
    cluster.settle()  # created again
    second = cluster.namespaces["acme-a"].uid
    assert second != first
    assert [(c.name, c.uid) for c in cluster.status.created_namespaces or ()] == [("acme-a", second)]


def test_a_released_volume_of_a_claim_tenure_never_saw_is_kept_and_named() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.bound_volume("pv-mine", "acme-a")
    # Left by an earlier namespace of the same name: its claim's uid is none Tenure saw.
    cluster.volumes["pv-old"] = VolumeFact("pv-old", uid(), "acme-a", "Retain", "Released", None, claim_uid="old")
    cluster.close_until(T0 + 31 * DAY)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert cluster.status.purge is not None
    assert [v.name for v in cluster.status.purge.volumes] == ["pv-mine"]
    assert cluster.status.purge.kept_volumes == ("pv-old",)
    old = cluster.volumes["pv-old"]
    assert (set(cluster.volumes), old.reclaim_policy, old.claim_uid) == ({"pv-old"}, "Retain", "old")
    assert "pv-old" not in touched(cluster)
    status, text = message(cluster, "Purged")
    assert status == "True" and "Not deleted and never modified" in text and "pv-old" in text


def test_a_volume_of_a_claim_in_another_namespace_is_kept() -> None:
    cluster = FakeCluster()
    cluster.settle()
    other = ClaimFact("elsewhere", "data", "u-claim")
    cluster.claims[other.uid] = other  # a real claim, but not in the tenant's namespace the volume names
    cluster.volumes["pv-x"] = VolumeFact("pv-x", uid(), "acme-a", "Retain", "Bound", None, claim_uid=other.uid)
    cluster.close_until(T0 + 31 * DAY)
    cluster.reconcile()
    assert cluster.status.purge is not None and cluster.status.purge.kept_volumes == ("pv-x",)


def test_a_volume_rebound_to_another_claim_after_the_scope_is_left_untouched() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.bound_volume("pv-1", "acme-a")
    cluster.close_until(T0 + 31 * DAY)
    cluster.reconcile()  # Purging: the scope is recorded and the reclaim policy switched
    assert cluster.status.phase == "Purging" and cluster.volumes["pv-1"].reclaim_policy == "Delete"
    cluster.volumes["pv-1"] = replace(cluster.volumes["pv-1"], claim_uid="someone-else")
    before = len(cluster.decisions)
    cluster.settle()
    assert "pv-1" not in {a.name for d in cluster.decisions[before:] for a in d.actions if hasattr(a, "name")}
    assert "pv-1" in cluster.volumes and cluster.status.phase == "Purging"
    status, text = message(cluster, "Purged")
    assert status == "False" and "no longer bound to the recorded claim" in text and "pv-1" in text


def test_protected_rule_and_configuration() -> None:
    assert protected("kube-flannel", labeled=False, configured=frozenset())
    assert protected("anything", labeled=True, configured=frozenset())
    assert not protected("kubernetes-dashboard", labeled=False, configured=frozenset())
    assert namespace_list("monitoring, ingress-nginx cert-manager,") == {"monitoring", "ingress-nginx", "cert-manager"}
    config = Config(namespace="tenure", protected_namespaces=namespace_list("monitoring"))
    assert config.protected == {"default", "tenure", "monitoring"}


def test_the_store_keeps_claims_per_namespace_and_gives_a_tenant_those_of_its_namespaces() -> None:
    stores = Stores()
    stores.tenants.put(
        {"metadata": {"name": "acme", "resourceVersion": "1"}, "spec": {"namespaces": ["acme-a"]}, "status": {}}
    )

    def claim(namespace: str, claim_uid: str, version: str) -> dict[str, object]:
        meta = {"name": "data", "namespace": namespace, "uid": claim_uid, "resourceVersion": version}
        return {"metadata": meta, "spec": {}, "status": {}}

    assert stores.claims.put(claim("acme-a", "u-1", "5")) == {"acme"}
    assert stores.claims.put(claim("other", "u-2", "6")) == set()  # same name, another namespace: another claim
    assert stores.claims.put(claim("acme-a", "u-1", "7")) == set()  # a status change: no fact changed
    stores.volumes.put(
        {
            "metadata": {"name": "pv-1", "resourceVersion": "8", "uid": "v-1"},
            "spec": {"claimRef": {"namespace": "acme-a", "name": "data", "uid": "u-1"}, "hostPath": {}},
        }
    )
    stores.namespaces.put(
        {
            "metadata": {
                "name": "acme-a",
                "uid": "n-1",
                "resourceVersion": "9",
                "labels": {"retention.tenure.dev/tenant": "acme"},
                "annotations": {"retention.tenure.dev/created-for": "acme"},
            }
        }
    )
    view = stores.tenants["acme"].view()
    world = stores.world(view, frozenset(), {})
    assert world.claims == {"u-1": ClaimFact("acme-a", "data", "u-1")}
    assert world.volumes["pv-1"].claim_uid == "u-1"
    assert world.namespaces["acme-a"].created_for == "acme"
    assert stores.claims.drop("acme-a/data") == {"acme"}
    assert set(stores.claims) == {"other/data"}


def test_a_namespace_handed_over_by_label_alone_is_closed_while_inaccessible_as_it_is_purged() -> None:
    """Issue 18, item 7: labeled for the tenant but not in spec.namespaces. The purge deletes it; closing must close
    it too (before, it stayed fully open while Suspended and Expired, then was deleted)."""
    cluster = FakeCluster()
    cluster.settle()
    cluster.namespaces["acme-extra"] = NamespaceFact("acme-extra", "u-extra", "1", owner="acme")
    cluster.reconcile()
    assert message(cluster, "NamespacesOwned") == (
        "True",
        "Labeled for this tenant: acme-a. Labeled for this tenant but not in spec.namespaces, closed while it is "
        "inaccessible and purged with the others: acme-extra.",
    )
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    decision = cluster.reconcile()
    closing = [a for a in decision.actions if isinstance(a, CloseAccess)]
    assert closing == [CloseAccess("acme-a", cluster.namespaces["acme-a"].uid), CloseAccess("acme-extra", "u-extra")]
    assert cluster.closed == {"acme-a", "acme-extra"}

    cluster.now = T0 + DAY  # reopened: both come back, and only then is the tenant accessible
    cluster.edit(state="Active", suspension_reason=None)
    decision = cluster.reconcile()
    assert {a.namespace for a in decision.actions if isinstance(a, OpenAccess)} == {"acme-a", "acme-extra"}
    accessible = find(cluster.reconcile().status.conditions, "Accessible")
    assert accessible is not None and (accessible.status, accessible.reason) == ("True", "Active")

    cluster.edit(state="Closed")  # Expired: still closed, then purged, the same namespaces
    decision = cluster.reconcile()
    assert decision.status.phase == "Expired"
    assert {a.namespace for a in decision.actions if isinstance(a, CloseAccess)} == {"acme-a", "acme-extra"}
    cluster.now = T0 + 40 * DAY
    decision = cluster.reconcile()
    assert decision.status.purge is not None
    assert [n.name for n in decision.status.purge.namespaces] == ["acme-a", "acme-extra"]


@given(
    listed=st.lists(st.sampled_from(["a", "b", "c", "kube-x", "default"]), unique=True, max_size=5),
    facts=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d", "kube-x", "default"]),
        st.tuples(st.sampled_from(["acme", "other", None]), st.booleans(), st.booleans()),
        max_size=6,
    ),
)
def test_what_is_closed_is_what_the_purge_deletes(
    listed: list[str], facts: dict[str, tuple[str | None, bool, bool]]
) -> None:
    world = World(
        namespaces={
            name: NamespaceFact(name, f"uid-{name}", "1", owner=owner, protected=protected, terminating=terminating)
            for name, (owner, protected, terminating) in facts.items()
        }
    )
    tenant = TenantView("acme", 1, TenantSpec(retention_policy="p", namespaces=tuple(listed)), TenantStatus())
    scope = tenant_namespaces(tenant, world)
    expected = {
        name
        for name, (owner, protected, _) in facts.items()
        if owner == "acme" and not protected and not name.startswith("kube-") and name != "default"
    }
    assert {fact.name for fact in scope} == expected
    assert [fact.name for fact in scope] == [n for n in listed if n in expected] + sorted(expected - set(listed))
    assert {n.name for n in purge.scope(tenant, world).namespaces} == expected
    closed = access.plan("Suspended", scope, frozenset())
    assert {a.namespace for a in closed} == {name for name in expected if not facts[name][2]}
