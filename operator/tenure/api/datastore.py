"""DataStore: a database holding tenants' records, and how to find a tenant's rows in it.

The operator reads the connection URI from a Secret and never writes it to
status, events or logs. With ``preset: litellm`` the tables and tenant keys
of the LiteLLM proxy schema are built in; otherwise each table is mapped
explicitly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .duration import Duration
from .meta import Condition, Model, Timestamp, conditions_field
from .tenant import DNS_LABEL

StoredClass = Literal["prompts", "responses", "logs", "usage", "account"]
ContentClass = Literal["prompts", "responses", "logs", "usage"]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class SecretKeyRef(Model):
    """A key of a Secret holding a libpq connection URI (postgresql://user:password@host:port/db)."""

    namespace: str = Field(
        description="The Secret's namespace (the operator must be allowed to read it).", pattern=DNS_LABEL
    )
    name: str = Field(description="The Secret's name.", min_length=1, max_length=253)
    key: str = Field("uri", description="The key holding the URI.", min_length=1, max_length=253)


class RedactColumns(Model):
    """Columns holding content of a finer class, cleared (set to NULL) when that class's retention elapses."""

    prompts: tuple[Identifier, ...] = Field((), description="Columns holding prompts, e.g. [messages].")
    responses: tuple[Identifier, ...] = Field((), description="Columns holding generated content, e.g. [response].")
    logs: tuple[Identifier, ...] = Field((), description="Columns holding log text.")
    usage: tuple[Identifier, ...] = Field((), description="Columns holding usage metrics.")


class TableMapping(Model):
    """One table holding tenants' rows."""

    schema_: Identifier = Field("public", alias="schema", description="The table's schema.")
    table: Identifier = Field(description="The table's name.")
    tenant_column: Identifier = Field(description="The column holding a tenant key (see Tenant spec.dataKeys).")
    timestamp_column: Identifier | None = Field(
        None, description="The column dating each row; needed for active-data retention."
    )
    data_class: StoredClass = Field(
        description="What the rows are: prompts, responses, logs, usage, or account (kept until the purge)."
    )
    redact_columns: RedactColumns | None = Field(
        None, description="Columns of a finer class cleared earlier inside rows that are kept longer."
    )


class PostgresSpec(Model):
    """A PostgreSQL database."""

    connection_secret_ref: SecretKeyRef = Field(description="Where the connection URI is.")
    preset: Literal["litellm"] | None = Field(
        None, description="litellm: the tables and tenant keys of the LiteLLM proxy schema are built in."
    )
    tables: tuple[TableMapping, ...] = Field((), max_length=200, description="Tables mapped explicitly.")
    batch_size: int = Field(
        5000, ge=1, le=100_000, description="Rows per delete batch; each batch is one short transaction."
    )


class DataStoreSpec(Model):
    """A database holding tenants' records."""

    postgres: PostgresSpec = Field(description="The PostgreSQL database.")
    sweep_interval: Duration = Field(
        timedelta(hours=1),
        description="How often active-data retention runs, e.g. 1h. The first sweep runs soon after start.",
    )


class SweepStatus(Model):
    """The last active-data retention sweep."""

    started_at: Timestamp | None = Field(None, description="When the sweep started.")
    finished_at: Timestamp | None = Field(None, description="When it finished.")
    tenants: int | None = Field(None, ge=0, description="Tenants whose windows applied.")
    rows_deleted: int | None = Field(None, ge=0, description="Rows deleted.")
    rows_redacted: int | None = Field(
        None, ge=0, description="Rows whose finer-class columns were cleared, counted once per data class."
    )
    error: str | None = Field(None, description="Why the sweep stopped early, if it did.")


class DataStoreStatus(Model):
    """What the operator observed about this database."""

    observed_generation: int | None = Field(None, ge=0, description="The metadata.generation last acted on.")
    conditions: tuple[Condition, ...] = conditions_field(
        "Ready: connected and every mapped table and column exists (a missing one is named)."
    )
    last_sweep: SweepStatus | None = Field(None, description="The last active-data retention sweep.")
    residual: tuple[str, ...] = Field(
        (),
        description="Tables that can hold tenant data no column attributes to a tenant; a purge does not clear them.",
    )
