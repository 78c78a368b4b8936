"""PurgeReceipts as pure functions: their content, their chain, and its verification.

Canonical JSON (what a digest covers): the receipt's ``spec`` as the API
server stores it, without ``digest`` and ``signature``, serialised with keys
sorted, no whitespace (separators ``,`` and ``:``), UTF-8 and non-ASCII kept
as is. Values are only strings, integers, booleans, lists and objects (no
floats), so this is the JSON Canonicalization Scheme (RFC 8785) for them and
any language reproduces it.

Chain: receipts are ordered by ``sequence`` (1, 2, 3, ... with no gap); each
names the digest of the one before (``previousDigest``, empty for the first).
The digest is ``sha256:`` and the hex SHA-256 of the canonical JSON; the
signature is Ed25519 over the digest's 32 raw bytes, base64, by the key
``keyId`` names. Editing a receipt breaks its digest; removing one leaves a
gap; reordering breaks a ``previousDigest``; a foreign signer fails the
signature or names a key that is not published.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tenure.api import PurgeReceiptSpec, TenantSpec, TenantStatus
from tenure.api.receipt import (
    KeptVolume,
    PhaseEntry,
    ReceiptObject,
    ReceiptPolicy,
    ReceiptStore,
    ReceiptTenant,
    ReceiptVolume,
)
from tenure.api.tenant import PurgeStatus

UNSIGNED = ("digest", "signature")
KEPT_WHY = "its claim was never seen in the tenant's namespaces: never modified or deleted"


def receipt_name(tenant: str, uid: str) -> str:
    """One receipt per Tenant object: a crash between creating it and letting the Tenant go creates no second."""
    return f"{tenant}.{uid}"


def content(name: str, uid: str, spec: TenantSpec, status: TenantStatus, version: str) -> dict[str, Any]:
    """What a Purged tenant's receipt says, from its status: identifiers and counts, no customer data."""
    assert status.phase == "Purged" and status.purged_at is not None
    purge = status.purge or PurgeStatus()
    windows = status.windows
    timeline = [
        PhaseEntry(phase="Suspended", at=status.suspended_at, reason=status.suspension_reason)
        if status.suspended_at
        else None,
        PhaseEntry(phase="Expired", at=status.expired_at, reason=status.closure_reason) if status.expired_at else None,
        PhaseEntry(phase="Purging", at=status.purge_started_at) if status.purge_started_at else None,
        PhaseEntry(phase="Purged", at=status.purged_at),
    ]
    body = {
        "tenant": ReceiptTenant(name=name, uid=uid),
        "policy": ReceiptPolicy(
            name=spec.retention_policy,
            suspension_grace_period=windows.suspension_grace_period if windows else None,
            expired_data_retention=windows.expired_data_retention if windows else None,
        ),
        "timeline": [entry for entry in timeline if entry is not None],
        "holds": status.holds or (),
        "namespaces": [ReceiptObject(name=n.name, uid=n.uid) for n in purge.namespaces],
        "volumes": [ReceiptVolume(name=v.name, uid=v.uid, static=v.static, source=v.source) for v in purge.volumes],
        "kept_volumes": [KeptVolume(name=volume, why=KEPT_WHY) for volume in purge.kept_volumes],
        "stores": [
            ReceiptStore(
                name=store.name,
                rows_deleted=store.rows_deleted,
                rows_remaining=store.rows_remaining or 0,
                rows_shared=store.rows_shared,
                residual=store.residual,
            )
            for store in purge.stores
        ],
        "tenure_version": version,
    }
    return _wire(body)


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the API server stores it (camelCase, unset fields left out), checked against the schema."""
    placeholder = {"sequence": 1, "previous_digest": "", "digest": "sha256:" + "0" * 64, "key_id": "-", "signature": ""}
    wire = PurgeReceiptSpec.model_validate({**placeholder, **body}).to_api()
    return {key: value for key, value in wire.items() if key not in ("sequence", "previousDigest", "keyId", *UNSIGNED)}


def canonical(spec: Mapping[str, Any]) -> bytes:
    unsigned = {key: value for key, value in spec.items() if key not in UNSIGNED}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(spec: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(spec)).hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


def link(body: Mapping[str, Any], previous: Mapping[str, Any] | None, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The receipt spec following ``previous`` (the last receipt's spec, None for the first), digested and signed."""
    spec = {
        **body,
        "sequence": previous["sequence"] + 1 if previous else 1,
        "previousDigest": previous["digest"] if previous else "",
        "keyId": key_id(key.public_key()),
    }
    spec["digest"] = digest(spec)
    spec["signature"] = base64.b64encode(key.sign(_digest_bytes(spec["digest"]))).decode()
    return spec


def _digest_bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("sha256:"))


@dataclass(frozen=True)
class Problem:
    receipt: str
    what: str

    def __str__(self) -> str:
        return f"{self.receipt}: {self.what}"


def verify(receipts: Iterable[Mapping[str, Any]], keys: Mapping[str, Ed25519PublicKey]) -> list[Problem]:
    """Every problem in the chain, the first one first; empty when every digest, signature and link holds.

    ``receipts`` are PurgeReceipt objects (``metadata.name`` and ``spec``) in any order: the chain orders them.
    """
    ordered = sorted(receipts, key=lambda r: (int(r.get("spec", {}).get("sequence", 0)), r["metadata"]["name"]))
    problems: list[Problem] = []
    previous: Mapping[str, Any] | None = None
    for receipt in ordered:
        name, spec = receipt["metadata"]["name"], receipt.get("spec") or {}
        expected = previous["spec"]["sequence"] + 1 if previous else 1
        if spec.get("sequence") != expected:
            before = f"after {previous['metadata']['name']} " if previous else ""
            problems.append(
                Problem(
                    name,
                    f"has sequence {spec.get('sequence')}, expected {expected}: a receipt {before}was "
                    "removed, or this one was renumbered",
                )
            )
        elif spec.get("previousDigest") != (previous["spec"]["digest"] if previous else ""):
            problems.append(Problem(name, "does not link to the receipt before it: the chain was reordered or edited"))
        if spec.get("digest") != digest(spec):
            problems.append(Problem(name, "was edited: its content does not match its digest"))
        problems.extend(signature_problems(name, spec, keys))
        previous = receipt
    return problems


def signed(spec: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> bool:
    """Tenure made this receipt: its content matches its digest, and a published key signed that digest.

    Anyone who could create a PurgeReceipt could give it any name, sequence or content; only a receipt that is
    signed is taken as issued or as the chain's head.
    """
    return spec.get("digest") == digest(spec) and not signature_problems("", spec, keys)


def for_tenant(spec: Mapping[str, Any], tenant: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> bool:
    """The receipt is one Tenure signed for this very tenant (name and uid): a signed receipt of another tenant
    copied under this one's name is not."""
    return signed(spec, keys) and spec.get("tenant") == dict(tenant)


def signature_problems(name: str, spec: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> list[Problem]:
    """The receipt's signature is not one a published key made over its digest (empty when it is)."""
    public = keys.get(str(spec.get("keyId")))
    if public is None:
        return [Problem(name, f"is signed with key {spec.get('keyId')!r}, which Tenure never published")]
    try:
        public.verify(base64.b64decode(str(spec.get("signature", ""))), _digest_bytes(str(spec.get("digest", ""))))
    except (InvalidSignature, ValueError):
        return [Problem(name, f"has a signature that key {spec.get('keyId')} did not make")]
    return []
