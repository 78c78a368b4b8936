"""What the API server did with one write, as the effects report it."""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable
from typing import Any

from .errors import Conflict, Gone, checked

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DONE = "done"
    """The API server accepted the write."""
    GONE = "gone"
    """The object did not exist (any more): nothing was done, and nothing is left to do."""
    CHANGED = "changed"
    """A precondition no longer held (uid, resourceVersion) or the object already existed: nothing was done;
    the next pass decides again from the object as it is now."""


async def guarded(write: Awaitable[Any], what: str, done: str) -> Outcome:
    """Send one write made with uid/resourceVersion preconditions and say what the API server did with it.

    ``what`` names the object and ``done`` the change for the log ("namespace acme-a", "deleted"): gone is
    GONE, a failed precondition is CHANGED (the next pass decides again from the object as it is then), any
    other error is raised typed.
    """
    try:
        await checked(write)
    except Gone:
        logger.info("%s was already gone", what)
        return Outcome.GONE
    except Conflict:
        logger.info("%s changed since it was read; decided again on the next pass", what)
        return Outcome.CHANGED
    logger.info("%s: %s", what, done)
    return Outcome.DONE
