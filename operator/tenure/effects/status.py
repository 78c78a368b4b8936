"""Writing a Tenant's status and finalizers — never its spec.

Status is written as a JSON merge patch carrying the resourceVersion the
decision was computed from: if the object changed meanwhile the API server
answers 409 and the tenant is decided again from the fresh object, so a
stale view can never overwrite newer status.
"""

from __future__ import annotations

from typing import Any

from tenure.lifecycle.conditions import cap

from .kube import Kube


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (keys to remove become null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


SHORT = 1024
"""The longest string a status written with :func:`shortened` carries: every computed text's maxLength allows it."""


def shortened(value: Any, key: str = "") -> Any:
    """``value`` with every ``message`` longer than ``SHORT`` cut, saying how much: a status the schema will take.

    Only messages are cut: names, keys and scopes are what a purge acts on, and a cut key would match nothing.
    """
    if isinstance(value, dict):
        return {name: shortened(item, name) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [shortened(item, key) for item in value]
    return cap(value, SHORT) if isinstance(value, str) and key == "message" else value


async def write_status(
    kube: Kube, plural: str, name: str, resource_version: str, old: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any] | None:
    """Patch status from ``old`` to ``new``; returns the updated object, or None when nothing changed."""
    changes = merge_patch(old, new)
    if not changes:
        return None
    body = {"metadata": {"resourceVersion": resource_version}, "status": changes}
    return await kube.patch_custom(plural, name, body, status=True)


async def set_finalizers(
    kube: Kube, plural: str, name: str, resource_version: str, finalizers: list[str]
) -> dict[str, Any]:
    """Replace metadata.finalizers, guarded by resourceVersion so no concurrent change is lost."""
    body = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
    return await kube.patch_custom(plural, name, body, status=False)
