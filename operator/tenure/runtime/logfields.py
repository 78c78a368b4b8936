"""Structured log fields: the tenant, DataStore or LegalHold a log line is about, as fields of its JSON record.

Each scheduler pass binds the object it works on (``tenant=``, ``datastore=``,
``legalhold=``) in its task's context; tasks it starts (a DataStore purge)
inherit it. :class:`Fields` copies the bound fields onto every record, so
``tenure run --log-format=json`` prints ``"tenant": "acme"`` next to the
message rather than only inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType

FIELDS = {"tenants": "tenant", "datastores": "datastore", "legalholds": "legalhold"}
"""The field named for the objects of each scheduler queue."""

_BOUND: ContextVar[Mapping[str, str]] = ContextVar("tenure_log_fields", default=MappingProxyType({}))


def bind(**fields: str) -> None:
    """Add fields to every log record of the current task (and the tasks it starts from now on)."""
    _BOUND.set(MappingProxyType({**_BOUND.get(), **fields}))


class Fields(logging.Filter):
    """Copies the bound fields onto each record (never over an ``extra`` the call passed itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _BOUND.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
