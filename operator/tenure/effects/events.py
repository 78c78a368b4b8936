"""Kubernetes Events on Tenure's objects, for `kubectl describe` and audit.

Events of cluster-scoped objects live in the ``default`` namespace, where
`kubectl describe` and `kubectl events` look for them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubernetes_asyncio.client import CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference

from tenure.api import API_GROUP, API_VERSION

from .kube import Kube

COMPONENT = "tenure"
logger = logging.getLogger(__name__)


async def post(kube: Kube, kind: str, name: str, uid: str, reason: str, message: str, warning: bool) -> None:
    """Post one Event; a failure is logged, never raised: events are informative."""
    now = datetime.now(UTC)
    event = CoreV1Event(
        metadata=V1ObjectMeta(generate_name=f"{name}.", namespace="default"),
        involved_object=V1ObjectReference(api_version=f"{API_GROUP}/{API_VERSION}", kind=kind, name=name, uid=uid),
        reason=reason,
        message=message[:1024],
        type="Warning" if warning else "Normal",
        source=V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=COMPONENT,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )
    try:
        await kube.core.create_namespaced_event("default", event, _preload_content=False)
    except Exception as error:
        logger.warning("could not post event %s on %s %s: %s", reason, kind, name, error)
