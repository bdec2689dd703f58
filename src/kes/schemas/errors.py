"""Errors of the schema registry and of payload validation; all are KesErrors.

Each carries the Confluent Schema Registry ``error_code`` and HTTP status the REST
server answers with, so the same exception means the same thing in Python and over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kes.errors import InvalidInputError, KesError

if TYPE_CHECKING:
    from kes.schemas.differences import BreakingChange

__all__ = [
    "CompatibilityNotConfiguredError",
    "IncompatibleSchemaError",
    "InvalidCompatibilityError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "PayloadValidationError",
    "ReferenceExistsError",
    "SchemaError",
    "SchemaNotFoundError",
    "SchemaNotRegisteredError",
    "SubjectNotFoundError",
    "SubjectNotSoftDeletedError",
    "SubjectSoftDeletedError",
    "VersionNotFoundError",
    "VersionNotSoftDeletedError",
    "VersionSoftDeletedError",
]


class SchemaError(KesError):
    """Root of the schema registry's errors."""

    http_status = 500
    error_code = 50001


class InvalidSchemaError(SchemaError, InvalidInputError):
    """A schema document is not valid JSON Schema / Avro; nothing was registered."""

    http_status = 422
    error_code = 42201


class InvalidVersionError(SchemaError, InvalidInputError):
    """A version is neither a positive integer nor ``latest``."""

    http_status = 422
    error_code = 42202


class InvalidCompatibilityError(SchemaError, InvalidInputError):
    """An unknown compatibility level."""

    http_status = 422
    error_code = 42203


class SubjectNotFoundError(SchemaError, LookupError):
    """No schema is registered under the subject."""

    http_status = 404
    error_code = 40401


class VersionNotFoundError(SchemaError, LookupError):
    """The subject has no such version."""

    http_status = 404
    error_code = 40402


class SchemaNotFoundError(SchemaError, LookupError):
    """No schema has the id, or the subject does not hold the schema looked up."""

    http_status = 404
    error_code = 40403


class SubjectSoftDeletedError(SchemaError, LookupError):
    """A soft delete of a subject whose versions are all soft-deleted already."""

    http_status = 404
    error_code = 40404


class SubjectNotSoftDeletedError(SchemaError, LookupError):
    """A permanent delete of a subject that still has live versions (soft-delete first)."""

    http_status = 404
    error_code = 40405


class VersionSoftDeletedError(SchemaError, LookupError):
    """A soft delete of a version that is soft-deleted already."""

    http_status = 404
    error_code = 40406


class VersionNotSoftDeletedError(SchemaError, LookupError):
    """A permanent delete of a live version (soft-delete it first)."""

    http_status = 404
    error_code = 40407


class CompatibilityNotConfiguredError(SchemaError, LookupError):
    """The subject has no compatibility level (or policy) of its own."""

    http_status = 404
    error_code = 40408


class ReferenceExistsError(SchemaError):
    """A delete of a version that another subject's schema references; nothing deleted."""

    http_status = 422
    error_code = 42206


class IncompatibleSchemaError(SchemaError):
    """Registering the schema would break the subject's compatibility rule; nothing written."""

    http_status = 409
    error_code = 40901

    def __init__(self, message: str, changes: Sequence[BreakingChange]) -> None:
        super().__init__(message)
        self.changes = list(changes)


class SchemaNotRegisteredError(SchemaError, LookupError):
    """An event type has no registered schema that equals its class's schema."""

    http_status = 404
    error_code = 40403


class PayloadValidationError(InvalidInputError):
    """An event payload does not match its registered schema; nothing was written."""

    def __init__(
        self, message: str, *, event_type: str, field: str, rule: str, value: object = None
    ) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.field = field
        self.rule = rule
        self.value = value
