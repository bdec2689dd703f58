"""Schemas of events: a registry in a compacted Kafka topic, Confluent's compatibility
rules (JSON Schema and Avro, STRICT and LENIENT), deletion and schema references,
validation on append and a Confluent-compatible REST API.

See docs/schemas.md.
"""

from __future__ import annotations

from kes.schemas.compatibility import BreakingChange, Mode, Policy, check_compatibility
from kes.schemas.errors import (
    CompatibilityNotConfiguredError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    PayloadValidationError,
    ReferenceExistsError,
    SchemaError,
    SchemaNotFoundError,
    SchemaNotRegisteredError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from kes.schemas.generate import aggregate_schemas, payload_schema, subject_name
from kes.schemas.registry import DEFAULT_TOPIC, SchemaRegistry
from kes.schemas.state import Reference, RegisteredSchema, RegistryState
from kes.schemas.validation import SchemaValidator

__all__ = [
    "DEFAULT_TOPIC",
    "BreakingChange",
    "CompatibilityNotConfiguredError",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "Mode",
    "PayloadValidationError",
    "Policy",
    "Reference",
    "ReferenceExistsError",
    "RegisteredSchema",
    "RegistryState",
    "SchemaError",
    "SchemaNotFoundError",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "SchemaValidator",
    "SubjectNotFoundError",
    "SubjectNotSoftDeletedError",
    "SubjectSoftDeletedError",
    "VersionNotFoundError",
    "VersionNotSoftDeletedError",
    "VersionSoftDeletedError",
    "aggregate_schemas",
    "check_compatibility",
    "payload_schema",
    "subject_name",
]
