"""What the API server did with one write, as the effects report it."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    DONE = "done"
    """The API server accepted the write."""
    GONE = "gone"
    """The object did not exist (any more): nothing was done, and nothing is left to do."""
    CHANGED = "changed"
    """A precondition no longer held (uid, resourceVersion) or the object already existed: nothing was done;
    the next pass decides again from the object as it is now."""
