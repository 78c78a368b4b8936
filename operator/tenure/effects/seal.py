"""The key that seals tenant statuses, kept in a Secret in the operator's namespace.

Created on first start (32 random bytes) if absent. Back it up with the
Tenant objects: a new key makes every sealed status fail to verify, and each
non-Active tenant is then rebuilt from spec with its windows started afresh
(deletion is only ever delayed, never brought forward).
"""

from __future__ import annotations

import base64
import logging
import secrets

from kubernetes_asyncio.client import V1ObjectMeta, V1Secret

from .errors import Conflict, Gone, checked
from .kube import Kube

SECRET = "tenure-status-seal"
FIELD = "key"
logger = logging.getLogger(__name__)


async def load_key(kube: Kube, namespace: str) -> bytes:
    """The sealing key, creating its Secret if it does not exist yet (a concurrent creation wins)."""
    try:
        return await _read(kube, namespace)
    except Gone:
        pass
    body = V1Secret(
        metadata=V1ObjectMeta(name=SECRET, namespace=namespace, labels={"app.kubernetes.io/name": "tenure"}),
        type="Opaque",
        data={FIELD: base64.b64encode(secrets.token_bytes(32)).decode()},
    )
    try:
        await checked(kube.core.create_namespaced_secret(namespace, body, _preload_content=False))
        logger.info("created the status seal key, Secret %s/%s", namespace, SECRET)
    except Conflict as error:
        if not error.already_exists:
            raise
    except Gone as error:
        raise RuntimeError(
            f"namespace {namespace} does not exist: apply manifests/deploy/ (make install), or set --namespace"
        ) from error
    return await _read(kube, namespace)


async def _read(kube: Kube, namespace: str) -> bytes:
    secret = await checked(kube.core.read_namespaced_secret(SECRET, namespace, _preload_content=False))
    encoded = (secret.get("data") or {}).get(FIELD)
    if not encoded:
        raise ValueError(f"Secret {namespace}/{SECRET} has no {FIELD!r}; delete it to have a new key created")
    return base64.b64decode(encoded)
