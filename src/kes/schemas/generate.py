"""JSON Schemas of event payloads, derived from the aggregate classes.

``msgspec.json.schema(payload_cls)`` gives the shape; kes then *closes* every object
that comes from a payload class (``additionalProperties: false``): kes writes exactly
the declared fields, and under Confluent's rules a closed model is what lets a later
version add an optional field and stay BACKWARD compatible. Objects that stand for
``dict`` values stay open.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kes.domain import Aggregate
from kes.schemas.differences import canonical

__all__ = ["aggregate_schemas", "canonical", "payload_schema", "subject_name"]


def subject_name(aggregate_type: str, event_type: str) -> str:
    """The registry subject of an event type: ``<AggregateType>-<EventType>``."""
    return f"{aggregate_type}-{event_type}"


def payload_schema(payload_cls: type[msgspec.Struct], closed: bool = True) -> dict[str, Any]:
    """The JSON Schema of a payload class (closed objects unless ``closed=False``)."""
    schema: dict[str, Any] = msgspec.json.schema(payload_cls)
    if closed:
        for definition in schema.get("$defs", {}).values():
            if (
                isinstance(definition, dict)
                and definition.get("type") == "object"
                and "properties" in definition
            ):
                definition.setdefault("additionalProperties", False)
    return schema


def aggregate_schemas(
    cls: type[Aggregate], closed: bool = True
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Subject -> (schema version of the class, JSON Schema) for each event type of ``cls``."""
    versions = cls.schema_versions()
    return {
        subject_name(cls.aggregate_type, name): (versions[name], payload_schema(payload, closed))
        for name, payload in sorted(cls.event_types().items())
    }
