"""Schemas of events: a registry in a compacted Kafka topic, Confluent-style
compatibility checks, validation on append and a Confluent-compatible REST API.

See docs/schemas.md.
"""

from __future__ import annotations

from kes.schemas.compatibility import BreakingChange, Mode, check_compatibility
from kes.schemas.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    PayloadValidationError,
    SchemaError,
    SchemaNotFoundError,
    SchemaNotRegisteredError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from kes.schemas.generate import aggregate_schemas, payload_schema, subject_name
from kes.schemas.registry import DEFAULT_TOPIC, RegisteredSchema, SchemaRegistry
from kes.schemas.validation import SchemaValidator

__all__ = [
    "DEFAULT_TOPIC",
    "BreakingChange",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "Mode",
    "PayloadValidationError",
    "RegisteredSchema",
    "SchemaError",
    "SchemaNotFoundError",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "SchemaValidator",
    "SubjectNotFoundError",
    "VersionNotFoundError",
    "aggregate_schemas",
    "check_compatibility",
    "payload_schema",
    "subject_name",
]
