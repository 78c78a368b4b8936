"""Closure records: what Tenure removed from a closed namespace, one record per removed object (decided purely).

Each RoleBinding or NetworkPolicy Tenure removes is recorded whole, before
it is deleted, in objects of its own in the operator's namespace (which a
tenant cannot write): ControllerRevisions, the Kubernetes kind for immutable
snapshots of an object's state. Nothing is shared between records, so no size
or count a tenant controls can make one record stop another: a record is
gzip-compressed JSON split in parts of at most :data:`PART` bytes, each part
its own object, so even an object as large as the API server accepts is
recorded (and restored) whole.

A record is sealed (HMAC with Tenure's seal key) over its content's digest
and what it is bound to, the *closing*: the tenant's name and uid, the
namespace's name and uid, and the uid of Tenure's quota in it (each closing
makes a new quota). So a record copied from another namespace or tenant, one
from an earlier suspension, one planted by someone who could write the
operator's namespace, or a namespace relabeled to another tenant, never
verifies for the closing being reopened, and is never acted on.

A record says whether its object existed when the namespace was closed or was
made while it was closed (``apart``): only the first kind is recreated on
reopening. "Made while closed" is read from facts the API server wrote, not
the tenant: the object's ``creationTimestamp`` is later than the quota's.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tenure.api.meta import API_GROUP

from .access import mac

PART = 512 * 1024
"""Compressed bytes per record object (base64 adds a third; etcd refuses objects over 1.5 MiB)."""
NAMESPACE_LABEL = f"{API_GROUP}/closed-namespace-uid"
"""On each record object: the uid of the namespace whose closing it records (how records are listed)."""
RECORD_LABEL = f"{API_GROUP}/closure-record"
"""On each record object: which record its part belongs to."""
PREFIX = "tenure-access-"


@dataclass(frozen=True, slots=True)
class Closing:
    """One closing of one namespace for one tenant: what a record is bound to."""

    tenant: str
    tenant_uid: str
    namespace: str
    namespace_uid: str
    quota_uid: str
    """Tenure's quota in the namespace: made anew on each closing."""


@dataclass(frozen=True, slots=True)
class Record:
    """One removed object, whole, and how it was found."""

    kind: str
    name: str
    object: dict[str, Any]
    """What recreates it: name, labels, annotations and the kind's fields (:func:`.access.object_record`)."""
    finalizers: list[str] = field(default_factory=list)
    """Its finalizers, removed by Tenure to end it and put back when it is recreated."""
    apart: bool = False
    """Made while the namespace was closed: removed, never recreated, named for a person."""
    terminating: bool = False
    """Already being deleted (by someone else) when Tenure found it: not recreated."""
    controller: str | None = None
    """Its controller ownerReference (``Kind name``), as it claims: it may make the object again."""

    @property
    def restorable(self) -> bool:
        return not (self.apart or self.terminating)


def record_id(closing: Closing, kind: str, name: str, apart: bool) -> str:
    """The name stem of a record's objects: one record per object, per closing, per ``apart``."""
    parts = [closing.namespace_uid, closing.quota_uid, kind, name, apart]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _seal(key: bytes, closing: Closing, kind: str, name: str, apart: bool, digest: str) -> str:
    facts = (closing.tenant, closing.tenant_uid, closing.namespace, closing.namespace_uid, closing.quota_uid)
    return mac(key, "closure-record", *facts, kind, name, str(apart), digest)


def encode(key: bytes, closing: Closing, record: Record) -> list[dict[str, Any]]:
    """The ``data`` of each part of the record, in order."""
    payload = gzip.compress(json.dumps(asdict(record), sort_keys=True, separators=(",", ":")).encode(), mtime=0)
    digest = hashlib.sha256(payload).hexdigest()
    seal = _seal(key, closing, record.kind, record.name, record.apart, digest)
    chunks = [payload[start : start + PART] for start in range(0, len(payload), PART)] or [b""]
    return [
        {
            "closing": asdict(closing),
            "part": index,
            "parts": len(chunks),
            "digest": digest,
            "seal": seal,
            "payload": base64.b64encode(chunk).decode(),
        }
        for index, chunk in enumerate(chunks)
    ]


def decode(key: bytes, parts: Sequence[Mapping[str, Any]]) -> tuple[Closing, Record] | None:
    """The record these parts hold and the closing it was sealed for, if every part is there and the seal verifies
    (the caller compares the closing with the one it reopens); None otherwise."""
    try:
        first = parts[0]
        closing = Closing(**{name: str(value) for name, value in dict(first["closing"]).items()})
        count, digest, seal = int(first["parts"]), str(first["digest"]), str(first["seal"])
        ordered = sorted(parts, key=lambda part: int(part["part"]))
        if [int(part["part"]) for part in ordered] != list(range(count)):
            return None
        if any((part["parts"], part["digest"], part["seal"], part["closing"]) != (
            first["parts"], digest, seal, first["closing"]) for part in ordered):  # fmt: skip
            return None
        payload = b"".join(base64.b64decode(str(part["payload"]), validate=True) for part in ordered)
        if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), digest):
            return None
        fields = json.loads(_inflate(payload))
        record = Record(**fields)
        if not hmac.compare_digest(seal, _seal(key, closing, record.kind, record.name, record.apart, digest)):
            return None
    except (ValueError, KeyError, TypeError, IndexError, OSError, EOFError, zlib.error):
        return None
    return closing, record


INFLATED_LIMIT = 16 * 1024 * 1024
"""The most a record may hold once decompressed: far above any object the API server accepts (about 1.5 MiB), far
below what would exhaust the operator's memory (a planted record of a few kilobytes could otherwise inflate to
gigabytes before its seal is checked)."""


def _inflate(payload: bytes) -> bytes:
    """The gzip ``payload`` decompressed, refusing (ValueError) one that inflates past INFLATED_LIMIT or is cut."""
    inflater = zlib.decompressobj(wbits=31)
    data = inflater.decompress(payload, INFLATED_LIMIT)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("a closure record that inflates past the limit, or is cut short")
    return data


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def made_while_closed(body: Mapping[str, Any], closed_at: Any) -> bool:
    """Whether the API server created this object after Tenure's quota (both ``creationTimestamp``, whole seconds:
    one made in the same second as the quota counts as there at closing, as one made a moment earlier would)."""
    created = _timestamp((body.get("metadata") or {}).get("creationTimestamp"))
    closing = _timestamp(closed_at)
    if closing is None:
        return True  # the closing time is unknown: nothing is taken for there at closing
    return created is None or created > closing


def controller(body: Mapping[str, Any]) -> str | None:
    """The controller an object's ownerReferences name (the tenant can write them: only ever reported)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind', '?')} {ref.get('name', '?')}"
    return None
