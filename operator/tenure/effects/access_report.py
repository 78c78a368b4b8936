"""What one pass of closing or reopening changed in a namespace (:class:`Report`), and the small API helpers the
access effects share (:mod:`tenure.effects.access`, :mod:`tenure.effects.removal`, :mod:`tenure.effects.workloads`)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from tenure.lifecycle.conditions import listing

from .errors import Conflict, Gone, checked

Body = dict[str, Any]


@dataclass
class Report:
    """What one pass changed in a namespace, for the Events people read."""

    namespace: str
    changed: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)
    """Records that did not verify, and what was done instead (never what they said)."""
    tampered: list[str] = field(default_factory=list)
    """Tenure's quota or NetworkPolicy found changed (or made by someone else) and put back."""
    failed: list[str] = field(default_factory=list)
    """Steps the API server refused (the others ran), or objects not confirmed gone: tried again on the next pass."""

    def add(self, what: str) -> None:
        self.changed.append(what)

    def merge(self, other: Report) -> None:
        """Add what another step did in the same namespace."""
        self.changed += other.changed
        self.forged += other.forged
        self.tampered += other.tampered
        self.failed += other.failed

    def message(self) -> str:
        text = f"Namespace {self.namespace}: {listing(self.changed, '; ')}." if self.changed else ""
        if self.forged:
            text += f" Records that do not carry Tenure's seal, not acted on: {listing(self.forged, '; ')}."
        if self.tampered:
            text += f" Changed by someone else and put back: {listing(self.tampered, '; ')}."
        return text.strip()


def _items(listed: Body) -> list[Body]:
    items: list[Body] = listed.get("items") or []
    return items


def _controlled(body: Body) -> bool:
    return any(ref.get("controller") for ref in body["metadata"].get("ownerReferences") or [])


async def _create(call: Awaitable[Any]) -> bool:
    """Create; False when it exists already."""
    try:
        await checked(call)
    except Conflict as error:
        if error.already_exists:
            return False
        raise
    return True


async def _delete(call: Awaitable[Any]) -> bool:
    """Delete; False when it was gone already."""
    try:
        await checked(call)
    except Gone:
        return False
    return True
