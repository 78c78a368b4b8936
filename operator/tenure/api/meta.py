"""Types shared by every Tenure resource: timestamps and conditions.

Conditions follow the Kubernetes API conventions (``metav1.Condition``), so
``kubectl wait --for=condition=Purged`` and generic tooling understand them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

API_GROUP = "retention.tenure.dev"
API_VERSION = "v1alpha1"
TENANT_LABEL = f"{API_GROUP}/tenant"
PROTECTED_LABEL = f"{API_GROUP}/protected"
CREATED_ANNOTATION = f"{API_GROUP}/created-for"
"""Set by Tenure on a namespace it created for a tenant; only recorded in status, never a proof of ownership."""


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return value


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 UTC timestamp with whole seconds, as Kubernetes writes them."""


class Model(BaseModel):
    """Base for API models: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def to_api(self) -> dict[str, Any]:
        """The JSON-ready body, with unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """One aspect of the object's current state, in the standard Kubernetes shape."""

    type: str = Field(description="Condition type, e.g. PolicyResolved.", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="A CamelCase word a program can match on.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field("", description="What a person needs to know, in a sentence.", max_length=32768)
    last_transition_time: Timestamp = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation of the spec this condition was computed from."
    )


def conditions_field(description: str) -> Any:
    """A ``conditions`` list keyed by type, as the API conventions require."""
    return Field(
        (),
        description=description,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
