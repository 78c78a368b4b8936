"""What a compliance officer runs: ``tenure receipts verify`` and ``tenure receipts show`` (docs/records.md).

Reads PurgeReceipts and the published public keys from the API server, or
from files written by ``kubectl get purgereceipts -o json`` and ``kubectl get
configmap tenure-receipt-keys -o json``; it never writes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.table import Table

from tenure.api import PURGE_RECEIPT
from tenure.effects import receipts
from tenure.effects.kube import Kube, connect
from tenure.lifecycle.receipts import Problem, digest, signature_problems, verify


async def _receipts() -> list[dict[str, Any]]:
    kube = Kube(await connect(pool_size=1))
    try:
        return await kube.list_custom(PURGE_RECEIPT.plural)
    finally:
        await kube.close()


async def _keys(namespace: str) -> dict[str, Ed25519PublicKey]:
    kube = Kube(await connect(pool_size=1))
    try:
        return await receipts.published_keys(kube, namespace)
    finally:
        await kube.close()


def load_receipts(file: Path | None) -> list[dict[str, Any]]:
    """From the file (a List), or from the API server."""
    if file is None:
        return asyncio.run(_receipts())
    items: list[dict[str, Any]] = json.loads(file.read_text()).get("items", [])
    return items


def load_keys(file: Path | None, namespace: str) -> dict[str, Ed25519PublicKey]:
    """From the file (the ConfigMap), or from the API server."""
    return receipts.parse_keys(json.loads(file.read_text())) if file else asyncio.run(_keys(namespace))


def check(console: Console, items: list[dict[str, Any]], keys: dict[str, Ed25519PublicKey]) -> list[Problem]:
    problems = verify(items, keys)
    if problems:
        console.print(f"[red]FAILED[/red]: the first receipt edited, removed or reordered is {problems[0].receipt}")
        for problem in problems:
            console.print(f"  {problem}")
    else:
        head = max((item["spec"]["sequence"] for item in items), default=0)
        console.print(f"OK: {len(items)} receipts, sequence 1..{head}, every digest, signature and link verified")
    return problems


def of_tenant(items: list[dict[str, Any]], tenant: str) -> list[dict[str, Any]]:
    return [item for item in items if item.get("spec", {}).get("tenant", {}).get("name") == tenant]


def unverified(receipt: dict[str, Any], keys: dict[str, Ed25519PublicKey] | None) -> str | None:
    """Why the receipt is not proof (not signed by Tenure, or edited), or None when its digest and signature hold.

    Anyone who could create a PurgeReceipt could write any content in it: only a verified one says what Tenure did.
    """
    if keys is None:
        return "cannot be verified: no public keys (give --keys, or read them from the cluster)"
    spec = receipt.get("spec") or {}
    if spec.get("digest") != digest(spec):
        return "was edited: its content does not match its digest"
    problems = signature_problems(receipt["metadata"]["name"], spec, keys)
    return problems[0].what if problems else None


def show(console: Console, receipt: dict[str, Any], problem: str | None = None) -> None:
    """One receipt for people; ``problem`` (from :func:`unverified`) marks it as not proof of anything."""
    spec = receipt["spec"]
    head = Table(show_header=False, title=f"PurgeReceipt {receipt['metadata']['name']}", title_justify="left")
    head.add_column()
    head.add_column(overflow="fold")
    policy = spec["policy"]
    windows = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "name")
    for label, value in (
        ("Tenant", f"{spec['tenant']['name']} (uid {spec['tenant']['uid']})"),
        ("Policy", f"{policy['name']}" + (f" ({windows})" if windows else "")),
        ("Sequence", str(spec["sequence"])),
        ("Digest", spec["digest"]),
        ("Previous", spec["previousDigest"] or "(first receipt)"),
        ("Key", spec["keyId"]),
        ("Tenure", spec["tenureVersion"]),
        (
            "Verified",
            f"[red]NO[/red]: this receipt {problem}; it is not proof that Tenure purged anything"
            if problem
            else "yes: its digest matches its content and Tenure's published key signed it",
        ),
    ):
        head.add_row(label, value)
    console.print(head)
    timeline = Table("Phase", "At", "Why", title="Timeline", title_justify="left")
    for entry in spec["timeline"]:
        timeline.add_row(entry["phase"], entry["at"], entry.get("reason", ""))
    console.print(timeline)
    deleted = Table("Kind", "Name", "Uid / why", title="Deleted", title_justify="left")
    for namespace in spec.get("namespaces", []):
        deleted.add_row("Namespace", namespace["name"], namespace["uid"])
    for volume in spec.get("volumes", []):
        static = " (static: storage not wiped)" if volume.get("static") else ""
        deleted.add_row("PersistentVolume", volume["name"], volume["uid"] + static)
    for kept in spec.get("keptVolumes", []):
        deleted.add_row("PersistentVolume kept", kept["name"], kept["why"])
    for hold in spec.get("holds", []):
        deleted.add_row("LegalHold", hold["name"], f"{hold['since']} to {hold.get('until', '(not released)')}")
    console.print(deleted)
    stores = Table(
        "DataStore",
        "Rows deleted",
        "Rows left",
        "Kept as shared",
        "Residual copies",
        title="Rows",
        title_justify="left",
    )
    for store in spec.get("stores", []):
        shared = ", ".join(f"{table}: {rows}" for table, rows in sorted(store.get("rowsShared", {}).items()))
        residual = ", ".join(table.split(":")[0] for table in store.get("residual", []))  # the why: -o json
        stores.add_row(store["name"], str(store["rowsDeleted"]), str(store["rowsRemaining"]), shared, residual)
    console.print(stores)
