"""The stores: one put/drop path for every kind; a put names the tenants concerned only when their facts changed."""

from __future__ import annotations

from typing import Any

from tenure.runtime.store import Changes, Stores


def body(name: str, version: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, **meta}, "spec": spec or {}, "status": {}}


def tenant(name: str, version: str, policy: str = "default", namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    return body(name, version, {"retentionPolicy": policy, "namespaces": list(namespaces)})


def stores_with_tenants() -> Stores:
    stores = Stores()
    stores.tenants.put(tenant("acme", "1", namespaces=("acme-a",)))
    stores.tenants.put(tenant("globex", "2", namespaces=("globex-a",)))
    return stores


def test_a_relist_of_unchanged_objects_concerns_no_tenant() -> None:
    stores = stores_with_tenants()
    listings = {
        "retentionpolicies": [body("default", "10", {"suspensionGracePeriod": "30d"})],
        "legalholds": [body("case-1", "11", {"tenants": ["acme"]})],
        "namespaces": [body("acme-a", "12", labels={"retention.tenure.dev/tenant": "acme"})],
        "persistentvolumes": [body("pv-1", "13", {"claimRef": {"namespace": "globex-a"}, "hostPath": {}})],
        "datastores": [],
    }
    first = {kind: stores.kinds[kind].replace(items).tenants for kind, items in listings.items()}
    assert first == {
        "retentionpolicies": {"acme", "globex"},
        "legalholds": {"acme"},
        "namespaces": {"acme"},
        "persistentvolumes": {"globex"},
        "datastores": set(),
    }
    again = {kind: stores.kinds[kind].replace(items).tenants for kind, items in listings.items()}
    assert again == {kind: set() for kind in listings}


def test_a_new_version_with_the_same_facts_concerns_no_tenant() -> None:
    stores = stores_with_tenants()
    assert stores.policies.put(body("default", "10", {"suspensionGracePeriod": "30d"})) == {"acme", "globex"}
    assert stores.policies.put(body("default", "11", {"suspensionGracePeriod": "30d"})) == set()
    assert stores.policies.put(body("default", "12", {"suspensionGracePeriod": "31d"})) == {"acme", "globex"}
    assert stores.holds.put(body("case-1", "20", {"tenants": ["acme"]})) == {"acme"}
    assert stores.holds.put(body("case-1", "21", {"tenants": ["acme"]}, labels={"x": "y"})) == set()


def test_a_change_concerns_the_tenants_of_the_old_and_the_new_version() -> None:
    stores = stores_with_tenants()
    stores.holds.put(body("case-1", "20", {"tenants": ["acme"]}))
    assert stores.holds.put(body("case-1", "21", {"tenants": ["globex"]})) == {"acme", "globex"}
    assert stores.holds_of("acme") == set()
    assert stores.holds_of("globex") == {"case-1"}
    stores.volumes.put(body("pv-1", "30", {"claimRef": {"namespace": "acme-a"}, "hostPath": {}}))
    assert stores.volumes.put(body("pv-1", "31", {"claimRef": {"namespace": "globex-a"}, "hostPath": {}})) == {
        "acme",
        "globex",
    }
    assert stores.volumes.indexes["by_namespace"]["acme-a"] == set()
    assert stores.volumes.drop("pv-1") == {"globex"}
    assert stores.volumes.indexes["by_namespace"]["globex-a"] == set()


def test_an_older_or_known_version_is_never_stored() -> None:
    stores = stores_with_tenants()
    stores.namespaces.put(body("acme-a", "40", labels={"retention.tenure.dev/tenant": "acme"}))
    assert stores.namespaces.put(body("acme-a", "39")) is None
    assert stores.namespaces.put(body("acme-a", "40")) is None
    assert stores.namespaces["acme-a"].owner == "acme"
    assert stores.tenants.put(tenant("acme", "1")) is None
    assert stores.tenants.put(tenant("acme", "3", policy="strict")) == {"acme"}
    assert stores.tenants.indexes["by_policy"]["strict"] == {"acme"}
    assert stores.tenants.indexes["by_policy"]["default"] == {"globex"}


def test_a_relist_drops_what_is_gone_and_names_its_tenants() -> None:
    stores = stores_with_tenants()
    stores.namespaces.replace([body("acme-a", "40", labels={"retention.tenure.dev/tenant": "acme"})])
    assert stores.namespaces.replace([]) == Changes(names={"acme-a"}, tenants={"acme"})
    assert "acme-a" not in stores.namespaces
    assert stores.namespaces.indexes["by_owner"]["acme"] == set()
