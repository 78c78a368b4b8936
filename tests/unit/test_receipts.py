"""PurgeReceipts, pure: what a purged tenant's receipt says, and what breaks the chain's verification."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.api import PURGE_RECEIPT, PurgeReceiptSpec
from tenure.effects.errors import ApiError, Invalid
from tenure.effects.receipts import Collision, Receipts
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
        await Receipts(kube, KEY).issue("t0.u0", {**body, "tenant": {"name": "t0", "uid": "u0"}})  # type: ignore[arg-type]
        # Two replicas racing on the same receipt (a lost AlreadyExists): no error, no second receipt.
        await Receipts(kube, KEY).issue("t1.u1", {**body, "tenant": {"name": "t1", "uid": "u1"}})  # type: ignore[arg-type]
        # Another replica extended the chain since `first` last issued: `first` links after it, not beside it.
        await Receipts(kube, KEY).issue("t5.u5", {**body, "tenant": {"name": "t5", "uid": "u5"}})  # type: ignore[arg-type]
        await first.issue("t6.u6", {**body, "tenant": {"name": "t6", "uid": "u6"}})

    asyncio.run(scenario())
    stored = kube.objects[PURGE_RECEIPT.plural]
    assert sorted(r["spec"]["sequence"] for r in stored.values()) == [1, 2, 3, 4, 5, 6, 7]
    assert stored["t6.u6"]["spec"]["sequence"] == 7
    assert kube.writes == 7
    assert verify(stored.values(), KEYS) == []


def _receipt(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"retention.tenure.dev/sequence": str(spec["sequence"])}},
        "spec": spec,
    }


def test_a_forged_huge_sequence_is_never_the_head_and_the_chain_continues_from_the_last_signed_receipt() -> None:
    kube = FakeKube()
    real = chain(2)
    for receipt in real:
        kube.create(PURGE_RECEIPT.plural, receipt)
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))
    # Anyone with `create` on PurgeReceipts: sequence 10^9, linked to the head, signed by a key of their own.
    forged = link(
        {**body, "tenant": {"name": "x", "uid": "ux"}},
        {**real[-1]["spec"], "sequence": 10**9 - 1},
        Ed25519PrivateKey.generate(),
    )
    kube.create(PURGE_RECEIPT.plural, _receipt("x.ux", forged))

    asyncio.run(Receipts(kube, KEY).issue("t9.u9", {**body, "tenant": {"name": "t9", "uid": "u9"}}))  # type: ignore[arg-type]
    issued = kube.objects[PURGE_RECEIPT.plural]["t9.u9"]["spec"]
    assert issued["sequence"] == 3
    assert issued["previousDigest"] == real[-1]["spec"]["digest"]
    # Once the planted receipt is deleted (break-glass), the chain verifies whole.
    del kube.objects[PURGE_RECEIPT.plural]["x.ux"]
    assert verify(kube.objects[PURGE_RECEIPT.plural].values(), KEYS) == []


@pytest.mark.parametrize("planted", ["unsigned", "another tenant's signed receipt"])
def test_a_receipt_planted_under_the_tenants_name_is_a_collision_not_already_issued(planted: str) -> None:
    kube = FakeKube()
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))
    # Unsigned (another key), or a real receipt of tenant t0 with its spec copied under acme's name.
    spec = link(body, None, Ed25519PrivateKey.generate()) if planted == "unsigned" else chain(1)[0]["spec"]
    kube.create(PURGE_RECEIPT.plural, _receipt("acme.tenant-uid", spec))

    async def scenario() -> None:
        issuer = Receipts(kube, KEY)  # type: ignore[arg-type]
        with pytest.raises(ApiError) as raised:
            await issuer.issue("acme.tenant-uid", body)
        assert isinstance(raised.value, Collision)
        assert "PurgeReceipt acme.tenant-uid exists, but Tenure did not issue it for tenant acme" in str(raised.value)
        assert "delete it with the break-glass group" in str(raised.value)
        # Also when the name is taken between listing and creating (the create answers AlreadyExists).
        late = Receipts(kube, KEY)  # type: ignore[arg-type]
        late._listed, late._found = True, {}
        with pytest.raises(Collision):
            await late.issue("acme.tenant-uid", body)

    asyncio.run(scenario())
    assert kube.writes == 0


def test_a_refused_receipt_says_the_finalizer_stays_and_what_to_do() -> None:
    kube = FakeKube()
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))

    async def refuse(plural: str, receipt: dict[str, Any]) -> dict[str, Any]:
        raise Invalid(422, "Invalid", "PurgeReceipt.retention.tenure.dev is invalid", ("spec.sequence: too large",))

    kube.create_custom = refuse  # type: ignore[method-assign]
    with pytest.raises(Invalid) as raised:
        asyncio.run(Receipts(kube, KEY).issue("acme.tenant-uid", body))  # type: ignore[arg-type]
    assert "the API server refused PurgeReceipt acme.tenant-uid (sequence 1)" in str(raised.value)
    assert "spec.sequence: too large" in str(raised.value)
    assert "keeps the Tenant's finalizer until a receipt is accepted" in str(raised.value)


def test_once_the_impostor_is_deleted_the_same_issuer_issues_the_real_receipt() -> None:
    kube = FakeKube()
    body = content(*(lambda c: (c.name, c.uid, c.spec, c.status, "0.1.0"))(purged_under_holds()))
    kube.create(PURGE_RECEIPT.plural, _receipt("acme.tenant-uid", link(body, None, Ed25519PrivateKey.generate())))

    async def scenario() -> None:
        issuer = Receipts(kube, KEY)  # type: ignore[arg-type]
        with pytest.raises(Collision):
            await issuer.issue("acme.tenant-uid", body)
        del kube.objects[PURGE_RECEIPT.plural]["acme.tenant-uid"]  # break glass removes it
        await issuer.issue("acme.tenant-uid", body)

    asyncio.run(scenario())
    assert verify(kube.objects[PURGE_RECEIPT.plural].values(), KEYS) == []
