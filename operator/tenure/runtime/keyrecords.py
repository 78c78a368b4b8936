"""A purge's resolved keys when they are too many for the Tenant's status: recorded whole in ConfigMaps.

Status holds their count, a sample and their SHA-256 (sealed with the rest
of the status); the ConfigMaps in the operator's namespace hold the whole set,
gzip-compressed JSON split in parts, owned by the Tenant (the garbage collector
removes them with it). They are written before status records the set, so
before anything is deleted, and read back only when they match the recorded
digest: a ConfigMap someone altered or removed stops the purge with the
reason, it never widens or narrows what is deleted.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping

from kubernetes_asyncio.client import V1ConfigMap, V1ObjectMeta, V1OwnerReference

from tenure.api import API_GROUP, API_VERSION, TENANT
from tenure.api.tenant import KeySet
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle import purge

from .connections import Unavailable

PART = 700_000
"""Compressed bytes per ConfigMap (a ConfigMap holds at most 1 MiB, base64 adds a third)."""
MAX_PARTS = 64
DATA = "keys.json.gz"
LABEL = f"{API_GROUP}/keys-of"


def names(uid: str, key_set: KeySet) -> list[str]:
    return [f"tenure-keys-{uid}-{key_set.digest[:16]}-{part}" for part in range(key_set.parts)]


async def save(kube: Kube, namespace: str, tenant: str, uid: str, keys: Mapping[str, tuple[str, ...]]) -> KeySet:
    """Write the whole set (idempotent: the names carry its digest) and say what status records of it."""
    canonical = {kind: sorted(values) for kind, values in sorted(keys.items())}
    blob = gzip.compress(json.dumps(canonical, separators=(",", ":")).encode(), mtime=0)
    parts = [blob[start : start + PART] for start in range(0, len(blob), PART)]
    if len(parts) > MAX_PARTS:
        raise Unavailable(f"{purge.key_set(keys, 1).count} keys are more than Tenure can record; nothing deleted")
    recorded = purge.key_set(keys, len(parts))
    owner = V1OwnerReference(api_version=f"{API_GROUP}/{API_VERSION}", kind=TENANT.kind, name=tenant, uid=uid)
    for name, part in zip(names(uid, recorded), parts, strict=True):
        body = V1ConfigMap(
            metadata=V1ObjectMeta(name=name, namespace=namespace, labels={LABEL: tenant}, owner_references=[owner]),
            binary_data={DATA: base64.b64encode(part).decode()},
        )
        try:
            await kube.core.create_namespaced_config_map(namespace, body)
        except Exception as error:
            if status_of(error) == 409:
                continue  # written by an earlier attempt; read back only if it matches the digest
            raise Unavailable(
                f"cannot record the tenant's {recorded.count} resolved keys in ConfigMap {namespace}/{name} "
                f"({status_of(error) or type(error).__name__}); nothing deleted"
            ) from error
    return recorded


async def load(kube: Kube, namespace: str, uid: str, key_set: KeySet) -> dict[str, tuple[str, ...]]:
    """The whole set, only if it matches the digest status recorded."""
    blob = b""
    for name in names(uid, key_set):
        try:
            found = await kube.core.read_namespaced_config_map(name, namespace)
        except Exception as error:
            raise Unavailable(
                f"the record of the tenant's resolved keys, ConfigMap {namespace}/{name}, cannot be read "
                f"({status_of(error) or type(error).__name__}); nothing deleted"
            ) from error
        blob += base64.b64decode((found.binary_data or {}).get(DATA, ""))
    try:
        keys = {kind: tuple(values) for kind, values in json.loads(gzip.decompress(blob)).items()}
    except (OSError, ValueError, AttributeError):
        keys = {}
    if purge.digest(keys) != key_set.digest:
        raise Unavailable(
            f"the record of the tenant's resolved keys in ConfigMaps {namespace}/{names(uid, key_set)[0]}… does not "
            f"match the SHA-256 in status ({key_set.digest}); nothing deleted"
        )
    return keys
