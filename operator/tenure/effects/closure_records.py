"""Closure records in the operator's namespace: written, listed and removed (what they hold and how they are sealed:
:mod:`tenure.lifecycle.closure_records`).

Each record is one or more ControllerRevisions ``tenure-access-<id>-<part>``
in the operator's namespace, labeled with the closed namespace's uid (how
they are listed) and the record's id, and owned by the Tenant (the garbage
collector removes whatever is left with it). A ControllerRevision's data is
immutable: a record is changed by deleting its parts and writing them anew,
which happens only while the object it records still exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tenure.api import API_GROUP, API_VERSION, TENANT
from tenure.lifecycle import closure_records as records
from tenure.lifecycle.access import MANAGED_BY
from tenure.lifecycle.closure_records import Closing, Record

from .access_report import Body, _delete, _items
from .errors import checked
from .kube import Kube

logger = logging.getLogger(__name__)


@dataclass
class Found:
    """The records listed for one namespace, sorted by what Tenure may do with them."""

    current: dict[tuple[str, str, bool], Record] = field(default_factory=dict)
    """Verified for this very closing, by (kind, name, apart)."""
    parts: dict[str, list[Body]] = field(default_factory=dict)
    """Every record's objects, by record id."""
    ids: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    """The record id of each current record."""
    other: list[str] = field(default_factory=list)
    """Record ids Tenure sealed for another closing (an earlier suspension, another tenant): never acted on."""
    untrusted: list[str] = field(default_factory=list)
    """Record ids that do not verify at all (incomplete, changed, or not Tenure's): never acted on."""

    def restorable(self) -> list[Record]:
        return [record for record in self.current.values() if record.restorable]


async def find(kube: Kube, operator_namespace: str, closing: Closing, key: bytes) -> Found:
    """Every record of the closed namespace, verified."""
    listed = await checked(
        kube.apps.list_namespaced_controller_revision(
            operator_namespace,
            label_selector=f"{records.NAMESPACE_LABEL}={closing.namespace_uid}",
            _preload_content=False,
        )
    )
    grouped: dict[str, list[Body]] = defaultdict(list)
    for item in _items(listed):
        grouped[(item["metadata"].get("labels") or {}).get(records.RECORD_LABEL, "")].append(item)
    found = Found(parts=dict(grouped))
    for record_id, parts in grouped.items():
        decoded = records.decode(key, [part.get("data") or {} for part in parts])
        if decoded is None:
            found.untrusted.append(record_id)
        elif decoded[0] != closing or record_id != records.record_id(
            closing, decoded[1].kind, decoded[1].name, decoded[1].apart
        ):
            found.other.append(record_id)
        else:
            record = decoded[1]
            found.current[(record.kind, record.name, record.apart)] = record
            found.ids[(record.kind, record.name, record.apart)] = record_id
    return found


async def write(
    kube: Kube, operator_namespace: str, closing: Closing, key: bytes, record: Record, found: Found
) -> None:
    """Write the record (replacing an earlier one of the same object, which is then gone from ``found``); the object
    it records is removed only after this returned."""
    record_id = records.record_id(closing, record.kind, record.name, record.apart)
    slot = (record.kind, record.name, record.apart)
    if found.current.get(slot) == record:
        return
    await remove(kube, operator_namespace, found.parts.pop(record_id, ()))
    found.untrusted = [other for other in found.untrusted if other != record_id]  # an interrupted write of it
    owner = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": TENANT.kind,
        "name": closing.tenant,
        "uid": closing.tenant_uid,
        "controller": True,
    }
    written = []
    for index, data in enumerate(records.encode(key, closing, record)):
        body: Any = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": f"{records.PREFIX}{record_id}-{index}",
                "namespace": operator_namespace,
                "labels": {
                    records.NAMESPACE_LABEL: closing.namespace_uid,
                    records.RECORD_LABEL: record_id,
                    MANAGED_BY[0]: MANAGED_BY[1],
                },
                "ownerReferences": [owner],
            },
            "revision": index,
            "data": data,
        }
        # A part left by an interrupted write was listed and removed above; one made meanwhile is a 409: next pass.
        await checked(kube.apps.create_namespaced_controller_revision(operator_namespace, body, _preload_content=False))
        written.append(body)
    found.parts[record_id] = written
    found.current[slot] = record
    found.ids[slot] = record_id


async def remove(kube: Kube, operator_namespace: str, parts: Iterable[Body]) -> None:
    for part in parts:
        meta = part["metadata"]
        await _delete(
            kube.apps.delete_namespaced_controller_revision(meta["name"], operator_namespace, _preload_content=False)
        )


async def remove_all(kube: Kube, operator_namespace: str, found: Found, ids: Iterable[str]) -> None:
    limit = asyncio.Semaphore(8)

    async def one(record_id: str) -> None:
        async with limit:
            await remove(kube, operator_namespace, found.parts.get(record_id, ()))

    await asyncio.gather(*(one(record_id) for record_id in ids))
