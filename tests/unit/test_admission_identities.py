"""The admission policy tenure-closed-namespaces names Tenure's identity and the break-glass group itself (its one
parameter is the closed namespace's quota): they must be those of the ConfigMap tenure-admission, which every other
policy reads."""

from __future__ import annotations

from pathlib import Path

import yaml

POLICIES = Path(__file__).resolve().parents[2] / "manifests/deploy/validating-admission-policies.yaml"


def test_the_closed_namespaces_policy_names_the_identities_of_the_admission_configmap() -> None:
    documents = [doc for doc in yaml.safe_load_all(POLICIES.read_text()) if doc]
    (config,) = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tenure-admission"]
    (fence,) = [
        d
        for d in documents
        if d["kind"] == "ValidatingAdmissionPolicy" and d["metadata"]["name"] == "tenure-closed-namespaces"
    ]
    variables = {variable["name"]: variable["expression"] for variable in fence["spec"]["variables"]}
    assert variables["operator"] == repr(config["data"]["operator"])
    assert variables["breakGlassGroup"] == repr(config["data"]["breakGlassGroup"])
    (binding,) = [
        d
        for d in documents
        if d["kind"] == "ValidatingAdmissionPolicyBinding" and d["spec"]["policyName"] == "tenure-closed-namespaces"
    ]
    assert binding["spec"]["paramRef"] == {"name": "tenure-inaccessible", "parameterNotFoundAction": "Allow"}
    assert fence["spec"]["paramKind"] == {"apiVersion": "v1", "kind": "ResourceQuota"}
