"""Standard Kubernetes conditions, computed without I/O.

A condition's ``lastTransitionTime`` moves only when its status flips, and
messages never mention "now", so recomputing an unchanged tenant yields an
identical status and the operator writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tenure.api import Condition
from tenure.api.meta import ConditionStatus


def condition(
    previous: Iterable[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> Condition:
    """The condition as it should read now, keeping its transition time if status did not change."""
    old = find(previous, type_)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=cap(message),
        last_transition_time=since,
        observed_generation=generation,
    )


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


LISTED = 20
"""Names shown in one message; the rest are counted, so a message stays within the API's limits."""


def listing(names: Iterable[str], separator: str = ", ") -> str:
    """Names for a message: the first ``LISTED``, then how many more."""
    items = list(names)
    shown = separator.join(items[:LISTED])
    return shown + (f"{separator}… and {len(items) - LISTED} more" if len(items) > LISTED else "")


MESSAGE_LIMIT = 32768
"""The CRD's maxLength of a condition's message."""


def cap(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message cut to ``limit`` characters, saying how much was cut: the last guard of a status write."""
    if len(message) <= limit:
        return message
    suffix = f"… ({len(message) - limit} more characters)"
    return message[: limit - len(suffix)] + suffix
