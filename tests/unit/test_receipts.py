"""PurgeReceipts, pure: what a purged tenant's receipt says, and what breaks the chain's verification."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.api import PURGE_RECEIPT, PurgeReceiptSpec
from tenure.effects.receipts import Receipts
from tenure.lifecycle.receipts import canonical, content, digest, key_id, link, verify

from ..support.fake_kube import FakeKube
from .lifecycle_support import T0, FakeCluster

KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(KEY.public_key()): KEY.public_key()}


def purged_under_holds() -> FakeCluster:
    """Suspended, closed, held past purgeAfter (case-1, then case-2 too), released, purged."""
    cluster = FakeCluster(rows=5)
    cluster.settle()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.settle()
    cluster.now = T0 + timedelta(hours=1)
    cluster.edit(state="Closed", suspension_reason=None)
    cluster.settle()
    cluster.holds = ("case-1",)
    cluster.now = T0 + timedelta(days=40)
    cluster.settle()
    cluster.holds = ("case-1", "case-2")
    cluster.now = T0 + timedelta(days=41)
    cluster.settle()
    cluster.holds = ()
    cluster.now = T0 + timedelta(days=50)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    return cluster


def test_a_receipt_records_the_timeline_reasons_holds_and_counts_from_status() -> None:
    cluster = purged_under_holds()
    body = content(cluster.name, cluster.uid, cluster.spec, cluster.status, "0.1.0")
    at = "2026-11-27T12:00:00Z"
    assert body["timeline"] == [
        {"phase": "Suspended", "at": at, "reason": "NonPayment"},
        {"phase": "Expired", "at": "2026-11-27T13:00:00Z", "reason": "Voluntary"},
        {"phase": "Purging", "at": "2027-01-16T12:00:00Z"},
        {"phase": "Purged", "at": "2027-01-16T12:00:00Z"},
    ]
    assert body["holds"] == [
        {"name": "case-1", "since": "2027-01-06T12:00:00Z", "until": "2027-01-16T12:00:00Z"},
        {"name": "case-2", "since": "2027-01-07T12:00:00Z", "until": "2027-01-16T12:00:00Z"},
    ]
    assert body["tenant"] == {"name": "acme", "uid": "tenant-uid"}
    assert body["policy"] == {"name": "p", "suspensionGracePeriod": "14d", "expiredDataRetention": "30d"}
    assert [store["rowsDeleted"] for store in body["stores"]] == [5]
    assert [store["rowsRemaining"] for store in body["stores"]] == [0]
    assert [n["name"] for n in body["namespaces"]] == ["acme-a"]
    PurgeReceiptSpec.model_validate(link(body, None, KEY))  # what is created passes the schema


def chain(length: int) -> list[dict[str, Any]]:
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))
    receipts: list[dict[str, Any]] = []
    for n in range(length):
        spec = link(
            {**copy.deepcopy(body), "tenant": {"name": f"t{n}", "uid": f"u{n}"}},
            receipts[-1]["spec"] if receipts else None,
            KEY,
        )
        receipts.append({"metadata": {"name": f"r{n}"}, "spec": spec})
    return receipts


def test_an_intact_chain_verifies_in_any_listing_order() -> None:
    receipts = chain(4)
    assert [r["spec"]["sequence"] for r in receipts] == [1, 2, 3, 4]
    assert receipts[0]["spec"]["previousDigest"] == ""
    assert verify(list(reversed(receipts)), KEYS) == []


def test_canonical_json_is_sorted_compact_and_leaves_out_digest_and_signature() -> None:
    spec = {"b": 1, "a": "é", "digest": "x", "signature": "y"}
    assert canonical(spec) == '{"a":"é","b":1}'.encode()
    assert digest(spec) == digest({"a": "é", "b": 1})


def edited(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    receipts[1]["spec"]["stores"][0]["rowsDeleted"] += 1
    return receipts


def removed(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return receipts[:1] + receipts[2:]


def reordered(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipts 2 and 3 swap sequences (as someone renumbering them would): their digests break too."""
    receipts[1]["spec"]["sequence"], receipts[2]["spec"]["sequence"] = 3, 2
    return receipts


def foreign(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipt 2 re-signed by another key, its content changed and its digest recomputed."""
    spec = receipts[1]["spec"]
    body = {k: v for k, v in spec.items() if k not in ("sequence", "previousDigest", "keyId", "digest", "signature")}
    receipts[1]["spec"] = link({**body, "stores": []}, receipts[0]["spec"], Ed25519PrivateKey.generate())
    return receipts


def impersonated(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipt 2 re-signed by another key that claims Tenure's key id."""
    receipts = foreign(receipts)
    receipts[1]["spec"]["keyId"] = key_id(KEY.public_key())
    receipts[1]["spec"]["digest"] = digest(receipts[1]["spec"])
    return receipts


@pytest.mark.parametrize(
    ("tamper", "first", "what"),
    [
        (edited, "r1", "was edited"),
        (removed, "r2", "has sequence 3, expected 2: a receipt after r0 was removed"),
        (reordered, "r2", "was edited"),
        (foreign, "r1", "which Tenure never published"),
        (impersonated, "r1", "has a signature that key"),
    ],
)
def test_tampering_is_found_and_the_first_broken_receipt_named(tamper: Any, first: str, what: str) -> None:
    problems = verify(tamper(copy.deepcopy(chain(4))), KEYS)
    assert problems, "tampering went unnoticed"
    assert problems[0].receipt == first
    assert any(what in problem.what and problem.receipt == first for problem in problems), problems


def test_issuing_is_idempotent_across_restarts_and_concurrent_purges_get_consecutive_links() -> None:
    kube = FakeKube()
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))

    async def scenario() -> None:
        first = Receipts(kube, KEY)  # type: ignore[arg-type]
        await asyncio.gather(
            *(first.issue(f"t{n}.u{n}", {**body, "tenant": {"name": f"t{n}", "uid": f"u{n}"}}) for n in range(5))
        )
        # A crash after creating t0's receipt, before its finalizer went: the next replica issues it again.
        await Receipts(kube, KEY).issue("t0.u0", body)  # type: ignore[arg-type]
        # Two replicas racing on the same receipt (a lost AlreadyExists): no error, no second receipt.
        await Receipts(kube, KEY).issue("t1.u1", body)  # type: ignore[arg-type]
        # Another replica extended the chain since `first` last issued: `first` links after it, not beside it.
        await Receipts(kube, KEY).issue("t5.u5", {**body, "tenant": {"name": "t5", "uid": "u5"}})  # type: ignore[arg-type]
        await first.issue("t6.u6", {**body, "tenant": {"name": "t6", "uid": "u6"}})

    asyncio.run(scenario())
    stored = kube.objects[PURGE_RECEIPT.plural]
    assert sorted(r["spec"]["sequence"] for r in stored.values()) == [1, 2, 3, 4, 5, 6, 7]
    assert stored["t6.u6"]["spec"]["sequence"] == 7
    assert kube.writes == 7
    assert verify(stored.values(), KEYS) == []
