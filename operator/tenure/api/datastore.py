"""DataStore: a database holding tenants' records, and how to find a tenant's rows in it.

The operator reads the connection URI from a Secret and never writes it to
status, events or logs. With ``preset: litellm`` the tables and tenant keys
of the LiteLLM proxy schema are built in; otherwise each table is mapped
explicitly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from .duration import PATTERN, Duration, format_duration
from .meta import Condition, Model, Timestamp, conditions_field
from .tenant import DNS_LABEL, NO_CONTROL

StoredClass = Literal["prompts", "responses", "logs", "usage", "account"]
ContentClass = Literal["prompts", "responses", "logs", "usage"]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=NO_CONTROL)]


class SecretKeyRef(Model):
    """A key of a Secret holding a libpq connection URI (postgresql://user:password@host:port/db)."""

    namespace: str = Field(
        description="The Secret's namespace (the operator must be allowed to read it).", pattern=DNS_LABEL
    )
    name: str = Field(description="The Secret's name.", min_length=1, max_length=253)
    key: str = Field("uri", description="The key holding the URI.", min_length=1, max_length=253)


class RedactColumns(Model):
    """Columns holding content of a finer class, cleared (set to NULL) when that class's retention elapses."""

    prompts: tuple[Identifier, ...] = Field((), max_length=16, description="Columns holding prompts, e.g. [messages].")
    responses: tuple[Identifier, ...] = Field(
        (), max_length=16, description="Columns holding generated content, e.g. [response]."
    )
    logs: tuple[Identifier, ...] = Field((), max_length=16, description="Columns holding log text.")
    usage: tuple[Identifier, ...] = Field((), max_length=16, description="Columns holding usage metrics.")


_CLASSES = ("prompts", "responses", "logs", "usage")


class TableMapping(Model):
    """One table holding tenants' rows."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.redactColumns) || !("
                    + " || ".join(
                        f"(has(self.redactColumns.{c}) && self.tenantColumn in self.redactColumns.{c})"
                        for c in _CLASSES
                    )
                    + ")",
                    "message": "redactColumns must not name tenantColumn: cleared keys would hide rows from a purge",
                    "fieldPath": ".redactColumns",
                }
            ]
        }
    )

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

    @model_validator(mode="after")
    def _keys_are_never_cleared(self) -> TableMapping:
        if self.redact_columns is not None:
            for data_class in _CLASSES:
                if self.tenant_column in getattr(self.redact_columns, data_class):
                    raise ValueError(
                        f"redactColumns.{data_class} names the tenantColumn {self.tenant_column!r}: "
                        "cleared keys would hide rows from a purge"
                    )
        return self


class SessionLimits(Model):
    """Limits every Tenure session on this database sets (PostgreSQL settings of the same names)."""

    statement_timeout: Duration = Field(
        timedelta(seconds=60),
        description="Longest statement, e.g. 60s. A batch that hits it is retried with half the rows.",
    )
    lock_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Longest wait for a row or table lock, e.g. 5s; the attempt then stops and is retried later.",
    )
    idle_in_transaction_session_timeout: Duration = Field(
        timedelta(seconds=60), description="A session idle inside a transaction this long is ended by the server."
    )


class Pacing(Model):
    """How fast purges and sweeps may change rows, so a gateway serving live traffic keeps its write latency."""

    rows_per_second: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="At most this many rows deleted or cleared per second, on average (unset: as fast as the "
        "database allows).",
    )
    pause_milliseconds: int = Field(
        0, ge=0, le=60_000, description="A pause after every statement (batch), in milliseconds, e.g. 100."
    )


class PostgresSpec(Model):
    """A PostgreSQL database."""

    connection_secret_ref: SecretKeyRef = Field(description="Where the connection URI is.")
    preset: Literal["litellm"] | None = Field(
        None,
        description="litellm: the tables and tenant keys of the LiteLLM proxy schema are built in.",
        json_schema_extra={"enum": ["litellm"]},
    )
    tables: tuple[TableMapping, ...] = Field((), max_length=200, description="Tables mapped explicitly.")
    batch_size: int = Field(
        5000, ge=1, le=100_000, description="Rows per delete batch; each batch is one short transaction."
    )
    pacing: Pacing | None = Field(
        None,
        description="Slow purges and sweeps down for live traffic: rowsPerSecond and/or pauseMilliseconds.",
    )
    session: SessionLimits = Field(
        default_factory=SessionLimits,
        description="Timeouts of Tenure's sessions (defaults: statementTimeout 60s, lockTimeout 5s, "
        "idleInTransactionSessionTimeout 60s).",
    )


MIN_SWEEP_INTERVAL = timedelta(minutes=1)
"""A sweep reads every mapped table: more often than this only loads the database."""


def _at_least_a_minute(value: timedelta) -> timedelta:
    if value < MIN_SWEEP_INTERVAL:
        raise ValueError(f"sweepInterval must be at least {format_duration(MIN_SWEEP_INTERVAL)}")
    return value


def _sweep_interval_rules() -> list[JsonValue]:
    """The duration syntax, and the minimum: below it only a few short spellings of seconds and minutes exist."""
    syntax = f"self.matches('{PATTERN}')"
    short = "^(0+d)?(0+h)?(0+m)?[0-9]+s$"
    return [
        {
            "rule": syntax,
            "message": "must be a duration such as 30d, 36h, 1d12h or 90s (units d, h, m, s in that order)",
        },
        {
            "rule": f"!self.matches('{short}') || int(self.find('[0-9]+s').replace('s', '')) >= "
            f"{int(MIN_SWEEP_INTERVAL.total_seconds())}",
            "message": f"must be at least {format_duration(MIN_SWEEP_INTERVAL)}",
        },
        {
            "rule": "!self.matches('^(0+d)?(0+h)?(0+m)?(0+s)?$')",
            "message": f"must be at least {format_duration(MIN_SWEEP_INTERVAL)}",
        },
    ]


def _sweep_interval_schema(schema: dict[str, JsonValue]) -> None:
    """Its rules, and no default in the CRD: the API server must tell an interval someone set from none, to refuse
    one set beside sweepSchedule (the operator still uses 1h when neither is set)."""
    schema.pop("default", None)
    schema["x-kubernetes-validations"] = _sweep_interval_rules()


class DataStoreSpec(Model):
    """A database holding tenants' records."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.sweepInterval) && has(self.sweepSchedule))",
                    "message": "set spec.sweepSchedule or spec.sweepInterval, not both (with a schedule the interval "
                    "would be ignored)",
                    "fieldPath": ".sweepSchedule",
                }
            ]
        }
    )

    postgres: PostgresSpec = Field(description="The PostgreSQL database.")
    sweep_interval: Annotated[Duration, AfterValidator(_at_least_a_minute)] = Field(
        timedelta(hours=1),
        description=f"How often active-data retention runs, e.g. 1h (at least {format_duration(MIN_SWEEP_INTERVAL)}; "
        "default 1h; not together with sweepSchedule). A store never swept is swept soon after it is created; after "
        "an operator restart, once the interval since the last sweep has passed.",
        json_schema_extra=_sweep_interval_schema,
    )
    sweep_schedule: str | None = Field(
        None,
        max_length=128,
        description="When active-data retention runs instead, as a cron expression in UTC (minute hour day-of-month "
        "month day-of-week), e.g. '0 2 * * *' for 02:00 every day, off-peak. A time missed while the operator was "
        "down is swept as soon as it is back.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.matches('^ *[^ ]+( +[^ ]+){4} *$') && self.matches('^[0-9A-Za-z*,/#? -]+$')",
                    "message": "must be a cron expression of five fields separated by spaces: minute hour "
                    "day-of-month month day-of-week, e.g. '0 2 * * *'",
                }
            ]
        },
    )
    dry_run: bool = Field(
        False,
        description="Watch this store before it acts: sweeps and tenants' purges of its rows are only reported "
        "(status, Events), nothing is deleted or redacted in it. Keys are still resolved and recorded.",
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
    batches_halved: int | None = Field(
        None, ge=0, description="Times a statement hit statementTimeout or lockTimeout and batches were halved."
    )
    error: str | None = Field(None, description="Why the sweep stopped early, if it did.")
    dry_run: bool | None = Field(
        None,
        description="True when the sweep was due but only reported (spec.dryRun, or the operator's --dry-run): "
        "nothing was deleted or redacted.",
    )


class DataStoreStatus(Model):
    """What the operator observed about this database."""

    observed_generation: int | None = Field(None, ge=0, description="The metadata.generation last acted on.")
    conditions: tuple[Condition, ...] = conditions_field(
        "Ready: connected and every mapped table and column exists (a missing one is named). SweepScheduled: when "
        "sweeps run. GatewayBlocked (litellm preset): whether inaccessible tenants are kept out at the gateway."
    )
    last_sweep: SweepStatus | None = Field(None, description="The last active-data retention sweep.")
    next_sweep_at: Timestamp | None = Field(None, description="When the next sweep is due.")
    residual: tuple[str, ...] = Field(
        (),
        description="Tables that can hold tenant data no column attributes to a tenant; a purge does not clear them.",
    )
    partitioned: tuple[str, ...] = Field(
        (), description="Mapped tables that are natively partitioned: purges and sweeps walk their leaf partitions."
    )
