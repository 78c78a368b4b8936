"""Inaccessibility: what a Suspended, Expired or Purging tenant's owned namespaces must look like, decided purely.

While a tenant is inaccessible, each namespace it owns (never a protected
one) carries a ResourceQuota ``tenure-inaccessible`` with ``pods: "0"`` and a
deny-all NetworkPolicy of the same name; its workloads are stopped and the
RoleBindings that give people access are removed. Reopening puts back what
was asked for and removes the quota and the policy.

Where the record lives, and why it survives a restart and a forgery:

* The quota is the first thing created when access is closed and the last
  thing deleted when it is restored: "this namespace is closed" is exactly
  "Tenure's quota exists in it", a fact read from the API server, not from
  operator memory or from the tenant's status.
* The replicas (or CronJob/Job ``suspend`` flag) a person asked for are
  recorded in an annotation on the stopped object itself, so a Deployment
  scaled up while inaccessible records its new ask as it is scaled back.
  The annotation carries an HMAC over the object's kind, namespace, name,
  uid and the recorded value, keyed by Tenure's seal key. Anyone who can
  edit the object can edit the annotation, but a changed value does not
  verify, and an unverified record is never restored: a forgery can leave an
  object stopped, never make Tenure scale it up beyond what was recorded from
  the object's own spec (a value a person with write access had set).
* Removed RoleBindings and NetworkPolicies (they add up: one that allows
  traffic would let it through Tenure's deny-all) are recorded whole, one
  record per object, in the operator's namespace
  (:mod:`tenure.lifecycle.closure_records`), sealed over the tenant's uid, the
  namespace's uid and the quota's own uid (a record copied from an earlier
  closure, another namespace or another tenant does not verify). Tenure
  recreates only objects whose record verifies and that existed at closing,
  so its ``bind`` permission cannot be used to grant a role nobody had
  granted in that namespace before it was closed. Records an earlier version
  kept on the quota's annotations are never acted on (logged on reopening;
  kept aside in another annotation when the quota is made anew).
* The name ``tenure-inaccessible`` is reserved: the admission policy
  ``tenure-reserved-names`` lets only Tenure (and the break-glass group, and
  the cluster's own controllers deleting a namespace) create, change or
  delete a ResourceQuota or NetworkPolicy of that name. One made before the
  policy existed, or by break glass, is made exactly Tenure's on every pass
  (:func:`exactly`), so a quota with room for pods or a policy that lets
  traffic through never stands in for Tenure's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tenure.api.meta import API_GROUP

from .model import CloseAccess, NamespaceFact, OpenAccess, TenantView

INACCESSIBLE_PHASES = ("Suspended", "Expired", "Purging")
MANAGED = "tenure-inaccessible"
"""The name of Tenure's ResourceQuota and NetworkPolicy in a closed namespace."""
MANAGED_BY = ("app.kubernetes.io/managed-by", "tenure")
UNVERIFIED_ANNOTATION = f"{API_GROUP}/unverified-records"
"""On Tenure's quota: records that did not verify, kept for a person (a JSON list of the raw records)."""
KEEP_ACCESS_LABEL = f"{API_GROUP}/keep-access"


def inaccessible(phase: str | None) -> bool:
    """Whether a tenant in this phase must have no access to its namespaces (a legal hold changes nothing)."""
    return phase in INACCESSIBLE_PHASES


def plan(
    phase: str | None, owned: Iterable[NamespaceFact], closed: frozenset[str]
) -> tuple[CloseAccess | OpenAccess, ...]:
    """The access actions for a tenant in ``phase``; ``owned`` are the namespaces it provably owns (never protected
    ones), ``closed`` those where Tenure's quota exists (known only for a tenant that may have been closed)."""
    if inaccessible(phase):
        return tuple(CloseAccess(fact.name, fact.uid) for fact in owned if not fact.terminating)
    if phase == "Active":
        return tuple(OpenAccess(fact.name, fact.uid) for fact in owned if fact.name in closed)
    return ()


# Seals


def mac(key: bytes, *parts: str) -> str:
    """The seal of a closure record over ``parts`` (every record Tenure writes in or about a closed namespace)."""
    message = json.dumps(parts, separators=(",", ":")).encode()
    return hmac.new(hashlib.sha256(b"tenure-access:" + key).digest(), message, hashlib.sha256).hexdigest()[:40]


Patch = dict[str, Any]


# RoleBindings


CLUSTER_IDENTITIES = ("system:masters", "system:nodes")
"""Users and groups of the cluster itself; besides these only ``system:node:<node>`` and ``system:kube-*``."""


def system_subject(subject: Mapping[str, Any], operator_namespace: str) -> bool:
    """A subject of the cluster itself, not of the tenant: a ServiceAccount of a ``kube-*`` namespace or of Tenure's,
    or one of an allow-list of the cluster's own users and groups (``system:masters``, ``system:nodes``,
    ``system:node:<node>``, ``system:kube-*``). Any other ``system:`` name is the tenant's business: above all
    ``system:anonymous``, ``system:unauthenticated``, ``system:authenticated`` and ``system:serviceaccounts``, which
    would let anyone in while the tenant is inaccessible."""
    name = str(subject.get("name", ""))
    if subject.get("kind") == "ServiceAccount":
        namespace = str(subject.get("namespace", ""))
        return namespace.startswith("kube-") or namespace == operator_namespace
    for prefix in ("system:serviceaccount:", "system:serviceaccounts:"):
        if name.startswith(prefix):
            namespace = name.removeprefix(prefix).split(":", 1)[0]
            return namespace.startswith("kube-") or namespace == operator_namespace
    return name in CLUSTER_IDENTITIES or name.startswith(("system:node:", "system:kube-"))


def kept(binding: Mapping[str, Any], operator_namespace: str) -> bool:
    """Whether a RoleBinding stays while the tenant is inaccessible: labeled keep-access, or binding only system
    identities (Tenure's own ServiceAccount among them; Tenure makes no RoleBinding in a tenant's namespace)."""
    labels = (binding.get("metadata") or {}).get("labels") or {}
    if labels.get(KEEP_ACCESS_LABEL) == "true":
        return True
    subjects = binding.get("subjects") or []
    return bool(subjects) and all(system_subject(subject, operator_namespace) for subject in subjects)


@dataclass(frozen=True, slots=True)
class Removed:
    """A kind Tenure removes from a closed namespace and recreates, exactly, on reopening."""

    kind: str
    annotation: str
    """The quota's annotation where an earlier version kept the record (only ever kept aside now)."""
    fields: tuple[str, ...]
    """What recreates the object besides its name, labels and annotations."""


BINDINGS = Removed("RoleBinding", f"{API_GROUP}/rolebindings", ("roleRef", "subjects"))
POLICIES = Removed("NetworkPolicy", f"{API_GROUP}/networkpolicies", ("spec",))
"""NetworkPolicies add up: one the tenant made that allows traffic would let it through Tenure's deny-all."""


def removed(kind: Removed, body: Mapping[str, Any], operator_namespace: str) -> bool:
    """Whether Tenure removes this object while the tenant is inaccessible. Every NetworkPolicy but Tenure's own is,
    whoever its ownerReferences claim owns it (the tenant writes those): one its controller makes again is removed
    again on the next pass."""
    if kind is BINDINGS:
        return not kept(body, operator_namespace)
    return (body.get("metadata") or {}).get("name") != MANAGED


def object_record(kind: Removed, body: Mapping[str, Any]) -> dict[str, Any]:
    """What recreates the object exactly: name, labels, annotations and the kind's fields."""
    meta = body.get("metadata") or {}
    record = {
        "name": meta["name"],
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }
    record.update({name: json.loads(json.dumps(body.get(name))) for name in kind.fields})
    return record


def kept_aside(annotations: Mapping[str, str], raw: str) -> str:
    """The UNVERIFIED_ANNOTATION value that also keeps ``raw`` (a record that did not verify), without repeats."""
    try:
        earlier = [str(item) for item in json.loads(annotations.get(UNVERIFIED_ANNOTATION) or "[]")]
    except (ValueError, TypeError):
        earlier = [annotations[UNVERIFIED_ANNOTATION]]
    return json.dumps(earlier if raw in earlier else [*earlier, raw])


# Tenure's quota and NetworkPolicy

QUOTA_SPEC: dict[str, Any] = {"hard": {"pods": "0"}}
"""No pod at all, whatever its scope: no ``scopes`` or ``scopeSelector`` that would let some pods through."""
POLICY_SPEC: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
"""Every pod of the namespace, no ingress and no egress rule: nothing in, nothing out."""


def exactly(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch (RFC 7386) that turns ``current`` into exactly ``wanted`` (keys only in ``current`` are
    removed), or None when they are equal already."""
    if current == wanted:
        return None
    patch: dict[str, Any] = {name: None for name in current if name not in wanted}
    for name, value in wanted.items():
        now = current.get(name)
        if isinstance(value, Mapping) and isinstance(now, Mapping):
            inner = exactly(now, value)
            if inner is not None:
                patch[name] = inner
        elif value != now:
            patch[name] = value
    return patch


# The gateway (LiteLLM)


def gateway_blocked(tenant: TenantView, trusted: bool) -> bool | None:
    """Whether the tenant's LiteLLM teams, keys and projects must be blocked (True) or unblocked where Tenure blocked
    them (False); None once Purged (its rows are gone). An untrusted status counts as what spec asks, as its rebuild
    does: only spec.state Active unblocks."""
    if not trusted:
        return not (tenant.spec.state == "Active" and not tenant.deleting)
    if tenant.status.phase == "Purged":
        return None
    return inaccessible(tenant.status.phase)
