"""PurgeReceipts in the cluster: the signing key, its published public half, and one chain of receipts.

The Ed25519 signing key is kept in Secret ``tenure-receipt-key`` of the
operator's namespace, created on first start if absent (a concurrent creation
wins). Every public key Tenure ever signed with is published in ConfigMap
``tenure-receipt-keys`` under its key id, so receipts signed before a key
rotation still verify (docs/records.md: rotation).

Receipts are created by the one acting replica (the leader), one at a time
(:class:`Receipts` holds a lock). The chain's head is the signed receipt with
the highest sequence, listed from the API server once, then remembered and
checked before each new receipt by listing the label of the next sequence. A receipt's name is
fixed by its Tenant's uid, so a crash between creating it and removing the
finalizer finds it on the next pass and creates no second one; a receipt under
that name Tenure did not sign for that tenant is a :class:`Collision`, never
"already issued".
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from kubernetes_asyncio.client import V1ConfigMap, V1ObjectMeta, V1Secret

from tenure.api import API_GROUP, API_VERSION, PURGE_RECEIPT
from tenure.lifecycle.receipts import for_tenant, key_id, link, signed

from .errors import ApiError, Conflict, Gone, Invalid, checked, typed
from .kube import AS_MERGE_PATCH, Kube

SECRET = "tenure-receipt-key"
FIELD = "privateKey"
CONFIG_MAP = "tenure-receipt-keys"
LABELS = {"app.kubernetes.io/name": "tenure"}
SEQUENCE_LABEL = f"{API_GROUP}/sequence"
logger = logging.getLogger(__name__)


async def load_signer(kube: Kube, namespace: str) -> Ed25519PrivateKey:
    """The signing key, created if absent, with its public key published."""
    key = await _read_or_create(kube, namespace)
    await _publish(kube, namespace, key.public_key())
    return key


async def _read_or_create(kube: Kube, namespace: str) -> Ed25519PrivateKey:
    try:
        return await _read(kube, namespace)
    except Gone:
        pass
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    body = V1Secret(
        metadata=V1ObjectMeta(name=SECRET, namespace=namespace, labels=LABELS),
        type="Opaque",
        data={FIELD: base64.b64encode(pem).decode()},
    )
    try:
        await checked(kube.core.create_namespaced_secret(namespace, body, _preload_content=False))
        logger.info("created the receipt signing key, Secret %s/%s", namespace, SECRET)
    except Conflict as error:
        if not error.already_exists:
            raise
    return await _read(kube, namespace)


async def _read(kube: Kube, namespace: str) -> Ed25519PrivateKey:
    secret = await checked(kube.core.read_namespaced_secret(SECRET, namespace, _preload_content=False))
    encoded = (secret.get("data") or {}).get(FIELD)
    if not encoded:
        raise ValueError(f"Secret {namespace}/{SECRET} has no {FIELD!r}; delete it to have a new key created")
    key = load_pem_private_key(base64.b64decode(encoded), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"Secret {namespace}/{SECRET}: {FIELD} is not an Ed25519 key")
    return key


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


async def _publish(kube: Kube, namespace: str, public: Ed25519PublicKey) -> None:
    """Add the public key to the ConfigMap (never remove one: old receipts verify with old keys)."""
    data = {key_id(public): public_pem(public)}
    try:
        existing = await checked(kube.core.read_namespaced_config_map(CONFIG_MAP, namespace, _preload_content=False))
    except Gone:
        body = V1ConfigMap(metadata=V1ObjectMeta(name=CONFIG_MAP, namespace=namespace, labels=LABELS), data=data)
        try:
            await checked(kube.core.create_namespaced_config_map(namespace, body, _preload_content=False))
            return
        except Conflict as error:
            if not error.already_exists:
                raise
        existing = {}
    if (existing.get("data") or {}).get(key_id(public)) != data[key_id(public)]:
        await typed(kube.core.patch_namespaced_config_map(CONFIG_MAP, namespace, {"data": data}, **AS_MERGE_PATCH))
        logger.info("published receipt key %s in ConfigMap %s/%s", key_id(public), namespace, CONFIG_MAP)


def parse_keys(config_map: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The published public keys by key id, from the ConfigMap's body."""
    keys: dict[str, Ed25519PublicKey] = {}
    for kid, pem in (config_map.get("data") or {}).items():
        public = load_pem_public_key(pem.encode())
        if isinstance(public, Ed25519PublicKey) and key_id(public) == kid:
            keys[kid] = public
    return keys


async def published_keys(kube: Kube, namespace: str) -> dict[str, Ed25519PublicKey]:
    return parse_keys(
        await checked(kube.core.read_namespaced_config_map(CONFIG_MAP, namespace, _preload_content=False))
    )


class Collision(ApiError):
    """A PurgeReceipt has the tenant's receipt name but Tenure did not sign it for this tenant.

    Someone created it first (``<tenant>.<uid>`` is predictable); taking it as issued would let the Tenant go with
    no proof of its purge. The finalizer stays until a person removes the impostor.
    """


class Refused(Invalid):
    """The API server refused the receipt's content (422): the finalizer stays until it is accepted."""


class Receipts:
    """Issues receipts one at a time, each linked to the chain's head as the API server has it.

    Only receipts Tenure signed count (:func:`~tenure.lifecycle.receipts.signed`, with the key ids published in
    ConfigMap ``tenure-receipt-keys`` of ``namespace`` and the signer's own): the head is the signed receipt with
    the highest sequence, so a receipt planted with sequence 10^9 is never linked to, and a receipt found under a
    tenant's name counts as issued only when Tenure signed it for that very tenant.

    The head is remembered between receipts; before each new one a list by the label of the next sequence
    (normally empty) proves no other replica extended the chain meanwhile, else every receipt is listed again.
    """

    def __init__(self, kube: Kube, key: Ed25519PrivateKey, namespace: str | None = None) -> None:
        self.kube = kube
        self.key = key
        self.namespace = namespace
        self._lock = asyncio.Lock()
        self._issued: set[str] = set()
        """Names of receipts Tenure signed, each for the tenant its name is for (checked when issuing)."""
        self._found: dict[str, Mapping[str, Any]] = {}
        """Every receipt listed, by name: its spec."""
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._head: Mapping[str, Any] | None = None
        self._listed = False

    async def issue(self, name: str, body: Mapping[str, Any]) -> None:
        """Create receipt ``name`` with ``body`` (its content) unless Tenure already did; idempotent.

        Raises :class:`Collision` when another receipt holds the name, :class:`Refused` when the API server refuses
        the receipt (both :class:`~tenure.effects.errors.ApiError`: the finalizer stays, a Warning says why).
        """
        if name in self._issued and self._listed:
            return
        async with self._lock:
            if not await self._current():
                await self._relist()
            if name in self._found and await self._taken(name, body):
                return
            spec = link(body, self._head, self.key)
            receipt = {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": PURGE_RECEIPT.kind,
                "metadata": {"name": name, "labels": {**LABELS, SEQUENCE_LABEL: str(spec["sequence"])}},
                "spec": spec,
            }
            try:
                await self.kube.create_custom(PURGE_RECEIPT.plural, receipt)
            except Conflict as error:
                if not error.already_exists:
                    raise
                self._listed = False  # created meanwhile (another replica, or someone else): list again
                found = await self.kube.get_custom(PURGE_RECEIPT.plural, name)
                self._check(name, found.get("spec") or {}, body)
                return
            except Invalid as error:
                causes = f" ({'; '.join(error.causes)})" if error.causes else ""
                raise Refused(
                    error.status,
                    error.reason,
                    f"the API server refused PurgeReceipt {name} (sequence {spec['sequence']}): {error.message}"
                    f"{causes}. Tenure keeps the Tenant's finalizer until a receipt is accepted: fix what is named "
                    "(e.g. apply the CRDs of this Tenure version, crds/), and the next pass issues it",
                    error.causes,
                ) from error
            logger.info("issued PurgeReceipt %s (sequence %d, %s)", name, spec["sequence"], spec["digest"])
            self._issued.add(name)
            self._found[name] = spec
            self._head = spec

    async def _taken(self, name: str, body: Mapping[str, Any]) -> bool:
        """The listed receipt ``name`` is Tenure's for this tenant (True), gone since (False), or :class:`Collision`.

        An impostor is read again each time: once a person deletes it, the real receipt is issued.
        """
        if name not in self._issued:
            try:
                self._found[name] = (await self.kube.get_custom(PURGE_RECEIPT.plural, name)).get("spec") or {}
            except Gone:
                del self._found[name]
                return False
        self._check(name, self._found[name], body)
        return True

    def _check(self, name: str, spec: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        """A receipt found under ``name`` is the one Tenure issued for this tenant, or :class:`Collision`."""
        keys = {**self._keys, key_id(self.key.public_key()): self.key.public_key()}
        if for_tenant(spec, body["tenant"], keys):
            self._issued.add(name)
            return
        tenant = body["tenant"]
        why = (
            f"it is signed by Tenure for tenant {spec.get('tenant')}"
            if signed(spec, keys)
            else f"it is not signed by Tenure (key {spec.get('keyId')!r}, or content that does not match its digest)"
        )
        raise Collision(
            409,
            "ReceiptNameTaken",
            f"PurgeReceipt {name} exists, but Tenure did not issue it for tenant {tenant['name']} "
            f"(uid {tenant['uid']}): {why}. Someone created it before Tenure could; it proves nothing. Keep a copy "
            f"as evidence (kubectl get purgereceipt {name} -o yaml), find its creator in the audit log, then delete "
            f"it with the break-glass group (kubectl delete purgereceipt {name} --as=$USER "
            "--as-group=<breakGlassGroup>): Tenure then issues the real receipt and lets the Tenant go",
        )

    async def _current(self) -> bool:
        """The remembered head is still the chain's head: no receipt has the next sequence."""
        if not self._listed:
            return False
        following = (self._head["sequence"] if self._head else 0) + 1
        return not await self.kube.list_custom(PURGE_RECEIPT.plural, f"{SEQUENCE_LABEL}={following}")

    async def _relist(self) -> None:
        receipts = await self.kube.list_custom(PURGE_RECEIPT.plural)
        self._keys = await self._published()
        keys = {**self._keys, key_id(self.key.public_key()): self.key.public_key()}
        self._found = {receipt["metadata"]["name"]: receipt.get("spec") or {} for receipt in receipts}
        verified = [spec for spec in self._found.values() if signed(spec, keys)]
        ignored = len(self._found) - len(verified)
        if ignored:
            logger.warning("%d PurgeReceipt(s) are not signed by Tenure: never taken as issued or as the head", ignored)
        self._head = max(verified, key=lambda spec: int(spec["sequence"]), default=None)
        self._issued &= set(self._found)
        self._listed = True

    async def _published(self) -> dict[str, Ed25519PublicKey]:
        """The published public keys (receipts signed before a rotation count), or none without a namespace."""
        if self.namespace is None:
            return {}
        try:
            return await published_keys(self.kube, self.namespace)
        except Gone:
            return {}
