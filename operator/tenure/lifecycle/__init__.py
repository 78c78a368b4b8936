"""The tenant lifecycle as a pure function.

Given a tenant, its policy and the current time, :func:`decide` returns the
status the tenant should have, the Events to post and when to look again.
There is no I/O here and the clock is a parameter, so every rule is tested on
a fake clock.
"""

from .decide import decide
from .model import Decision, Event, TenantView

__all__ = ["Decision", "Event", "TenantView", "decide"]
