"""The Kubernetes API client shared by all effects.

kubernetes_asyncio keeps the event loop free while requests are in flight.
The client is configured the way kubectl is: in-cluster service account when
running in a Pod, otherwise the current KUBECONFIG context.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from kubernetes_asyncio import client, config

from tenure.api import API_GROUP, API_VERSION

from .errors import Gone, checked, from_answer, status_of, typed

__all__ = ["AS_MERGE_PATCH", "Kube", "connect", "status_of", "unless_gone"]

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"
AS_MERGE_PATCH: dict[str, Any] = {"_content_type": MERGE_PATCH}
"""Keyword arguments that make a kubernetes_asyncio patch call send a JSON merge patch."""


async def connect(pool_size: int = 64, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In a Pod its ServiceAccount; otherwise ``kubeconfig`` (default: $KUBECONFIG or ~/.kube/config) and its
    ``context`` (default: the current one), as kubectl's --kubeconfig and --context."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and kubeconfig is None and context is None:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


async def unless_gone(call: Awaitable[T]) -> T | None:
    """The call's result, or None when the object does not exist (HTTP 404)."""
    try:
        return await typed(call)
    except Gone:
        return None


class Kube:
    """Typed entry points to the API groups Tenure uses."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    async def patch_custom(self, plural: str, name: str, body: dict[str, Any], *, status: bool) -> dict[str, Any]:
        patch = self.custom.patch_cluster_custom_object_status if status else self.custom.patch_cluster_custom_object
        result: dict[str, Any] = await typed(patch(API_GROUP, API_VERSION, plural, name, body, **AS_MERGE_PATCH))
        return result

    async def create_custom(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await typed(
            self.custom.create_cluster_custom_object(API_GROUP, API_VERSION, plural, body)
        )
        return result

    async def get_custom(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await typed(
            self.custom.get_cluster_custom_object(API_GROUP, API_VERSION, plural, name)
        )
        return result

    async def list_custom(self, plural: str, label_selector: str = "") -> list[dict[str, Any]]:
        result = await typed(
            self.custom.list_cluster_custom_object(API_GROUP, API_VERSION, plural, label_selector=label_selector)
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def _lister(self, plural: str) -> Callable[..., Awaitable[Any]]:
        """The list call of a kind across the cluster: core/v1 namespaces, persistentvolumes and persistentvolumeclaims
        (of every namespace), or Tenure's own."""
        core: dict[str, Callable[..., Awaitable[Any]]] = {
            "namespaces": self.core.list_namespace,
            "persistentvolumes": self.core.list_persistent_volume,
            "persistentvolumeclaims": self.core.list_persistent_volume_claim_for_all_namespaces,
        }
        return core.get(plural) or functools.partial(
            self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, plural
        )

    async def listing(self, plural: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of a cluster-scoped kind as plain dicts, and the listing's resourceVersion."""
        listed = await checked(self._lister(plural)(_preload_content=False))
        return listed.get("items") or [], listed["metadata"]["resourceVersion"]

    async def watch(self, plural: str, version: str, seconds: float) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events after resourceVersion ``version`` (type, object), until the API server ends the watch.

        Raises :class:`~tenure.effects.errors.Expired` when ``version`` is too old to continue from.
        """
        response = await self._lister(plural)(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(seconds),
            _request_timeout=seconds + 30,
            _preload_content=False,
        )
        async with response:
            if not 200 <= response.status <= 299:
                raise from_answer(response.status, str(response.reason or ""), await response.read())
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise from_answer(int(status.get("code") or 500), "", json.dumps(status))
                yield event["type"], event["object"]

    async def close(self) -> None:
        await self.api.close()
