"""PurgeReceipts end to end: a real purge of a real PostgreSQL, receipts the API server keeps, `tenure receipts`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.lifecycle.receipts import link
from tests.conftest import BREAK_GLASS, OPERATOR_IDENTITY, Objects
from tests.e2e.test_access import events
from tests.e2e.test_datastores import claiming, purging_store, secret
from tests.e2e.test_lifecycle import owned, phase_of
from tests.support.kube import Kubectl, eventually
from tests.support.litellm import create_account, spend_log

pytestmark = pytest.mark.usefixtures("operator")
__all__ = ["secret"]  # the fixture, used by name
OPERATOR = OPERATOR_IDENTITY


def total_rows(uri: str) -> int:
    with psycopg.connect(uri) as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return sum(int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]) for table in tables)  # type: ignore[index]


def tenure(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "tenure", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def purged(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Two tenants purged at once (their receipts are chained one after the other), and the rows the first lost."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        accounts = [create_account(conn, name) for name in ("acme", "globex", "initech")]
        for account in accounts:
            for day in range(5):
                spend_log(conn, account, datetime.now(UTC) - timedelta(days=day))
    store = purging_store(kubectl, objects, secret, unique)
    tenants = [f"a-{unique}", f"b-{unique}"]
    for tenant, account in zip(tenants, accounts, strict=False):
        claiming(objects, tenant, unique, store, account.organization)
        kubectl.patch("tenant", tenant, {"spec": {"namespaces": [f"ns-{tenant}"]}})
        owned(kubectl, tenant)
    before = total_rows(litellm_db)
    for tenant in tenants:
        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    for tenant in tenants:
        phase_of(kubectl, tenant, "Purged", timeout=90)
    # The receipt exists before the finalizer goes.
    bodies = [eventually(lambda t=tenant: _unfinalized(kubectl, t), what=f"{tenant} finalized") for tenant in tenants]
    lost = before - total_rows(litellm_db)
    yield bodies, lost


def _unfinalized(kubectl: Kubectl, tenant: str) -> dict[str, Any] | None:
    body = kubectl.get("tenant", tenant)
    return body if body and not body["metadata"].get("finalizers") else None


def receipt_of(kubectl: Kubectl, tenant: dict[str, Any]) -> dict[str, Any]:
    found = kubectl.get("purgereceipt", f"{tenant['metadata']['name']}.{tenant['metadata']['uid']}")
    assert found is not None, "no receipt"
    return found


def test_a_purge_leaves_a_signed_receipt_whose_counts_match_what_the_database_lost(
    kubectl: Kubectl, kubeconfig: Path, purged: tuple[list[dict[str, Any]], int], tmp_path: Path
) -> None:
    (first, second), lost = purged
    receipts = [receipt_of(kubectl, first), receipt_of(kubectl, second)]
    spec = receipts[0]["spec"]
    assert spec["tenant"] == {"name": first["metadata"]["name"], "uid": first["metadata"]["uid"]}
    status = first["status"]
    assert [(e["phase"], e.get("reason")) for e in spec["timeline"]] == [
        ("Expired", "Voluntary"),
        ("Purging", None),
        ("Purged", None),
    ]
    assert spec["timeline"][-1]["at"] == status["purgedAt"]
    assert spec["policy"] == {"name": first["spec"]["retentionPolicy"], "expiredDataRetention": "2s"}
    assert spec["namespaces"] == [{"name": n["name"], "uid": n["uid"]} for n in status["purge"]["namespaces"]]
    assert [n["name"] for n in spec["namespaces"]] == [f"ns-{first['metadata']['name']}"]
    (store,) = spec["stores"]
    (second_store,) = receipts[1]["spec"]["stores"]
    # Both purges ran: what the database lost is what the two receipts say was deleted, and none is left.
    assert store["rowsDeleted"] + second_store["rowsDeleted"] == lost
    assert store["rowsDeleted"] > 10 and store["rowsRemaining"] == 0
    # One chain: consecutive sequences, each linked to the one before.
    ordered = sorted(receipts, key=lambda r: r["spec"]["sequence"])
    assert ordered[1]["spec"]["sequence"] == ordered[0]["spec"]["sequence"] + 1
    assert ordered[1]["spec"]["previousDigest"] == ordered[0]["spec"]["digest"]

    # The Tenant goes; its receipt stays, and `tenure receipts` reads it.
    kubectl.run("delete", "tenant", first["metadata"]["name"])
    assert tenure(kubeconfig, "receipts", "verify").returncode == 0
    table = tenure(kubeconfig, "receipts", "show", first["metadata"]["name"])
    assert (
        table.returncode == 0 and first["metadata"]["uid"] in table.stdout and str(store["rowsDeleted"]) in table.stdout
    )
    shown = json.loads(tenure(kubeconfig, "receipts", "show", first["metadata"]["name"], "-o", "json").stdout)
    assert shown["spec"] == spec


def test_receipts_cannot_be_edited_or_deleted_and_verify_finds_tampering(
    kubectl: Kubectl, kubeconfig: Path, purged: tuple[list[dict[str, Any]], int], tmp_path: Path
) -> None:
    tenants, _ = purged
    ours = sorted((receipt_of(kubectl, tenant) for tenant in tenants), key=lambda r: r["spec"]["sequence"])
    name = ours[0]["metadata"]["name"]  # the earlier of the two: another receipt follows it
    for flags in ((), BREAK_GLASS):
        edited = kubectl.run(
            "patch", "purgereceipt", name, "--type=merge", "-p", '{"spec":{"stores":[]}}', *flags, check=False
        )
        assert edited.returncode != 0 and "a PurgeReceipt is immutable" in edited.stderr
    deleted = kubectl.run("delete", "purgereceipt", name, check=False)
    assert deleted.returncode != 0
    assert f"PurgeReceipt {name} is the proof that a tenant was deleted" in deleted.stderr
    assert kubectl.get("purgereceipt", name) is not None
    assert kubectl.run("delete", "purgereceipt", name, "--dry-run=server", *BREAK_GLASS, check=False).returncode == 0

    export = json.loads(kubectl.run("get", "purgereceipts", "-o", "json").stdout)
    keys = tmp_path / "keys.json"
    keys.write_text(kubectl.run("get", "configmap", "tenure-receipt-keys", "-n", "tenure-system", "-o", "json").stdout)
    items = sorted(export["items"], key=lambda r: r["spec"]["sequence"])
    index = next(i for i, r in enumerate(items) if r["metadata"]["name"] == name)
    later = items[index + 1]["metadata"]["name"]

    def verify(changed: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "receipts.json"
        path.write_text(json.dumps({**export, "items": changed}))
        return tenure(kubeconfig, "receipts", "verify", "-f", str(path), "--keys", str(keys))

    assert verify(items).returncode == 0
    edited_items = copy.deepcopy(items)
    edited_items[index]["spec"]["stores"][0]["rowsDeleted"] -= 1
    result = verify(edited_items)
    assert result.returncode == 1
    assert f"the first receipt edited, removed or reordered is {name}" in result.stdout
    assert "was edited" in result.stdout

    result = verify(items[:index] + items[index + 1 :])
    assert result.returncode == 1
    assert f"the first receipt edited, removed or reordered is {later}" in result.stdout

    # Signed by someone else with a key of their own: named as a key Tenure never published.
    forged = copy.deepcopy(items)
    previous = items[index - 1]["spec"] if index else None
    content = {k: v for k, v in items[index]["spec"].items() if k not in ("sequence", "previousDigest", "keyId")}
    forged[index]["spec"] = link(content, previous, Ed25519PrivateKey.generate())
    result = verify(forged)
    assert result.returncode == 1
    assert f"the first receipt edited, removed or reordered is {name}" in result.stdout
    assert "which Tenure never published" in result.stdout


def planted(name: str, tenant: str, uid: str, sequence: int) -> dict[str, Any]:
    """A receipt that passes the CRD's schema, linked to nothing Tenure made, signed by a key of its own."""
    body = {
        "tenant": {"name": tenant, "uid": uid},
        "policy": {"name": "default"},
        "timeline": [{"phase": "Purged", "at": "2026-01-01T00:00:00Z"}],
        "tenureVersion": "0.1.0",
    }
    spec = link(body, {"sequence": sequence - 1, "digest": "sha256:" + "1" * 64}, Ed25519PrivateKey.generate())
    return {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "PurgeReceipt",
        "metadata": {"name": name, "labels": {"retention.tenure.dev/sequence": str(sequence)}},
        "spec": spec,
    }


def test_only_tenure_creates_receipts_and_a_planted_one_is_never_taken_as_issued_or_as_the_head(
    kubectl: Kubectl, kubeconfig: Path, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        account = create_account(conn, "acme")
        spend_log(conn, account, datetime.now(UTC))
    store = purging_store(kubectl, objects, secret, unique)
    tenant = f"pr-{unique}"
    claiming(objects, tenant, unique, store, account.organization)
    phase_of(kubectl, tenant, "Active")
    uid = kubectl.get("tenant", tenant)["metadata"]["uid"]  # type: ignore[index]
    name = f"{tenant}.{uid}"
    premade = planted(name, tenant, uid, 1)
    huge = planted(f"huge-{unique}", f"huge-{unique}", "u", 10**9)

    # Nobody but Tenure creates a receipt: not a cluster admin, not the break-glass group.
    for flags in ((), BREAK_GLASS):
        refused = kubectl.create(premade, *flags, check=False)
        assert refused.returncode != 0
        assert f"only Tenure ({OPERATOR}) creates PurgeReceipts" in refused.stderr
    # Past the policy (Tenure's own identity, as a stolen token or a missing policy would allow): both planted.
    for receipt in (premade, huge):
        kubectl.create(receipt, f"--as={OPERATOR}")
    try:
        shown = tenure(kubeconfig, "receipts", "show", tenant)
        assert shown.returncode == 1
        assert f"NOT VERIFIED: PurgeReceipt {name} is signed with key" in shown.stdout

        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
        phase_of(kubectl, tenant, "Purged", timeout=90)
        warned = eventually(
            lambda: [m for m in events(kubectl, tenant, "ReceiptFailed") if "did not issue it" in m] or None,
            timeout=60,
            what="ReceiptFailed",
        )
        assert f"PurgeReceipt {name} exists, but Tenure did not issue it for tenant {tenant}" in warned[0]
        assert "delete it with the break-glass group" in warned[0]
        assert kubectl.get("tenant", tenant)["metadata"]["finalizers"]  # type: ignore[index]

        # A person removes the impostor as the Warning says: Tenure issues the real receipt and lets the Tenant go.
        kubectl.run("delete", "purgereceipt", name, *BREAK_GLASS)
        # (the next pass comes after the reconciler's backoff, at most 60 s)
        eventually(lambda: _unfinalized(kubectl, tenant), timeout=120, what="tenant finalized")
        real = kubectl.get("purgereceipt", name)
        assert real is not None and real["spec"]["signature"] != premade["spec"]["signature"]
        signed = [
            r
            for r in json.loads(kubectl.run("get", "purgereceipts", "-o", "json").stdout)["items"]
            if r["metadata"]["name"] != huge["metadata"]["name"]
        ]
        # Linked after the last receipt Tenure signed, not after the forged 10^9.
        assert real["spec"]["sequence"] == max(r["spec"]["sequence"] for r in signed) < 10**9
        earlier = [r for r in signed if r["spec"]["sequence"] < real["spec"]["sequence"]]
        head = max(earlier, key=lambda r: r["spec"]["sequence"])["spec"]["digest"] if earlier else ""
        assert real["spec"]["previousDigest"] == head
        verified = tenure(kubeconfig, "receipts", "verify")
        assert verified.returncode == 1 and f"huge-{unique}" in verified.stdout
        assert "which Tenure never published" in verified.stdout
        assert tenure(kubeconfig, "receipts", "show", tenant).returncode == 0
    finally:
        kubectl.run("delete", "purgereceipt", huge["metadata"]["name"], "--ignore-not-found", *BREAK_GLASS)
    # With the planted one gone the chain verifies whole: the forgery did not break it for good.
    assert tenure(kubeconfig, "receipts", "verify").returncode == 0
