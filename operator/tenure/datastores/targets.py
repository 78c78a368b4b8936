"""Tables as the deletion engine sees them: which columns hold which kind of tenant key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tenure.api.datastore import ContentClass, StoredClass, TableMapping

KEY = "key"
"""The key kind of an explicitly mapped table: the values listed in Tenant spec.dataKeys."""

Keys = Mapping[str, tuple[str, ...]]
"""A tenant's keys in one store, by kind (``key``; or ``organization``, ``team``, ``token`` for LiteLLM)."""


@dataclass(frozen=True)
class Target:
    schema: str
    table: str
    key_columns: tuple[tuple[str, str], ...]
    """(column, key kind) pairs; a row is the tenant's when any of these columns holds one of its keys."""
    data_class: StoredClass
    timestamp: str | None = None
    redact: Mapping[ContentClass, tuple[str, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @classmethod
    def from_mapping(cls, mapping: TableMapping) -> Target:
        redact: dict[ContentClass, tuple[str, ...]] = {}
        if mapping.redact_columns is not None:
            for data_class in ("prompts", "responses", "logs", "usage"):
                columns = getattr(mapping.redact_columns, data_class)
                if columns:
                    redact[data_class] = tuple(columns)
        return cls(
            schema=mapping.schema_,
            table=mapping.table,
            key_columns=((mapping.tenant_column, KEY),),
            data_class=mapping.data_class,
            timestamp=mapping.timestamp_column,
            redact=redact,
        )

    def columns(self) -> set[str]:
        named = {column for column, _ in self.key_columns}
        named.update(column for columns in self.redact.values() for column in columns)
        if self.timestamp:
            named.add(self.timestamp)
        return named
