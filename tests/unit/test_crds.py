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
