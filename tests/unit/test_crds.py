"""The committed crds/ must be exactly what the models render."""

from pathlib import Path

import yaml

from tenure.api import RESOURCES, TENANT
from tenure.api.crd import filename, render, render_text

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_match_the_models() -> None:
    for resource in RESOURCES:
        committed = (CRDS / filename(resource)).read_text()
        assert committed == render_text(resource), f"crds/{filename(resource)} drifted: run `make crds`"


def test_no_stray_files_in_crds() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(filename(r) for r in RESOURCES)


def _walk(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_schemas_are_structural() -> None:
    for resource in RESOURCES:
        schema = render(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for node in _walk(schema["properties"]["spec"]) + _walk(schema["properties"].get("status")):
            if "properties" in node or "items" in node:
                assert "type" in node, node
            assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "uniqueItems"} & node.keys(), node


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    for resource in RESOURCES:
        schema = render(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for node in _walk(schema["properties"].get(part)):
                for name, field in (node.get("properties") or {}).items():  # type: ignore[attr-defined]
                    assert field.get("description"), f"{resource.kind}.{part}: {name} has no description"


def test_tenant_crd_is_cluster_scoped_with_short_name_and_category() -> None:
    crd = yaml.safe_load(render_text(TENANT))
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["tn"]
    assert crd["spec"]["names"]["categories"] == ["tenure"]
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_every_key_and_name_that_reaches_sql_refuses_control_characters_and_stored_ones_stay_readable() -> None:
    """Issue 24: the API server refuses a NUL (or any control character) in a data key or a mapped table's names;
    a Tenant stored before that stays readable (the runtime leaves the key out and reports it)."""
    import re

    from tenure.api import DATA_STORE, TenantSpec
    from tenure.api.tenant import NO_CONTROL

    tenant = render(TENANT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    keys = tenant["properties"]["dataKeys"]["additionalProperties"]["items"]
    assert keys["pattern"] == NO_CONTROL
    store = render(DATA_STORE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    table = store["properties"]["postgres"]["properties"]["tables"]["items"]["properties"]
    for name in ("schema", "table", "tenantColumn", "timestampColumn"):
        assert table[name]["pattern"] == NO_CONTROL, name
    assert re.fullmatch(NO_CONTROL, "org-\x00x") is None and re.fullmatch(NO_CONTROL, "org-7f3c") is not None
    assert TenantSpec.model_validate({"dataKeys": {"litellm": ["org-\x00x"]}}).data_keys == {"litellm": ("org-\x00x",)}


def test_sweep_schedule_and_sweep_interval_are_refused_together_naming_both() -> None:
    from tenure.api import DATA_STORE

    store = render(DATA_STORE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = store["x-kubernetes-validations"]
    assert rule["rule"] == "!(has(self.sweepInterval) && has(self.sweepSchedule))"
    assert "spec.sweepSchedule or spec.sweepInterval, not both" in rule["message"]
    assert "default" not in store["properties"]["sweepInterval"]  # else the API server would always set it
