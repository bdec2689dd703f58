"""Refuse, before anything is written, an event whose payload breaks its registered schema.

``Application(store, validator=SchemaValidator(registry))``: each append's events are
checked against the schema registered for ``<AggregateType>-<EventType>`` (the version
equal to the class's current schema), compiled once with ``fastjsonschema``. A payload
that does not match raises :class:`PayloadValidationError` naming the field, the rule
and the value; the append does not happen.

The first use of an event type looks its schema up in the registry: a class whose
schema was never registered is refused with SchemaNotRegisteredError (register it with
``kes schemas register MODULE:Class``), unless ``auto_register=True``, which registers
it then (subject to the subject's compatibility level). ``against="latest"`` validates
against the subject's latest version instead of the one equal to the class's schema
(for a subject another team governs, with constraints the class does not express).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import fastjsonschema

from kes.domain import Aggregate
from kes.envelope import NewEvent
from kes.schemas.errors import (
    PayloadValidationError,
    SchemaNotFoundError,
    SchemaNotRegisteredError,
    SubjectNotFoundError,
)
from kes.schemas.generate import payload_schema, subject_name
from kes.schemas.registry import RegisteredSchema, SchemaRegistry

__all__ = ["SchemaValidator", "compile_validator"]

Check = Callable[[Any], Any]


def compile_validator(schema: Any) -> Check:
    """A fast validating function for a JSON Schema (raises JsonSchemaValueException)."""
    check: Check = fastjsonschema.compile(schema)
    return check


class _Compiled:
    __slots__ = ("check", "registered", "schema_version")

    def __init__(self, registered: RegisteredSchema, schema_version: int, document: Any) -> None:
        self.registered = registered
        self.schema_version = schema_version
        self.check = compile_validator(document)  # references bundled in: no remote $ref


class SchemaValidator:
    """An ``EventValidator`` for :class:`kes.application.Application` backed by a registry."""

    def __init__(
        self,
        registry: SchemaRegistry,
        auto_register: bool = False,
        closed: bool = True,
        against: Literal["class", "latest"] = "class",
    ) -> None:
        self.registry = registry
        self.against = against
        self.auto_register = auto_register
        self.closed = closed
        self._compiled: dict[tuple[type[Aggregate], str], _Compiled] = {}
        self._lock = threading.Lock()

    def __call__(self, aggregate_cls: type[Aggregate], events: Sequence[NewEvent]) -> None:
        for e in events:
            compiled = self._compiled.get((aggregate_cls, e.event_type))
            if compiled is None:
                compiled = self._resolve(aggregate_cls, e.event_type)
            if e.schema_version != compiled.schema_version:
                raise PayloadValidationError(
                    f"{aggregate_cls.aggregate_type} event {e.event_type} has schema version "
                    f"{e.schema_version}, but {aggregate_cls.__name__} writes version "
                    f"{compiled.schema_version}, the one registered as "
                    f"{compiled.registered.subject} v{compiled.registered.version}. New events "
                    "are written in the current version; nothing was written.",
                    event_type=e.event_type,
                    field="(schemaVersion)",
                    rule="schemaVersion",
                    value=e.schema_version,
                )
            payload = e.payload if isinstance(e.payload, dict) else dict(e.payload)
            try:
                compiled.check(payload)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _explain(aggregate_cls, e.event_type, compiled.registered, exc) from None

    def _resolve(self, cls: type[Aggregate], event_type: str) -> _Compiled:
        with self._lock:
            found = self._compiled.get((cls, event_type))
            if found is not None:
                return found
            payload_cls = cls.event_types().get(event_type)
            if payload_cls is None:
                raise SchemaNotRegisteredError(
                    f"{cls.__name__} has no event {event_type!r}; known: "
                    f"{sorted(cls.event_types())}. Nothing was written."
                )
            subject = subject_name(cls.aggregate_type, event_type)
            schema = payload_schema(payload_cls, self.closed)
            if self.auto_register:
                registered = self.registry.register(subject, schema)
            else:
                try:
                    registered = (
                        self.registry.get(subject, "latest")
                        if self.against == "latest"
                        else self.registry.lookup(subject, schema)
                    )
                except (SubjectNotFoundError, SchemaNotFoundError) as exc:
                    raise SchemaNotRegisteredError(
                        f"the schema of {cls.__name__} event {event_type} (subject {subject!r}) "
                        f"is not registered: {exc} Register it with `kes schemas register "
                        f"{cls.__module__}:{cls.__qualname__}` (or "
                        "SchemaValidator(auto_register=True)); nothing was written."
                    ) from None
            compiled = _Compiled(
                registered, cls.schema_versions()[event_type], self.registry.document(registered.id)
            )
            self._compiled[(cls, event_type)] = compiled
            return compiled


def _field(path: Sequence[Any]) -> str:
    out = ""
    for part in path[1:] if path and path[0] == "data" else path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(payload)"


def _explain(
    cls: type[Aggregate],
    event_type: str,
    registered: RegisteredSchema,
    exc: fastjsonschema.JsonSchemaValueException,
) -> PayloadValidationError:
    path = list(exc.path or [])
    rule = str(exc.rule or "schema")
    field = _field(path)
    definition: Any = exc.rule_definition
    value: Any = exc.value
    if rule == "required" and isinstance(definition, list) and isinstance(value, Mapping):
        missing = [name for name in definition if name not in value]
        field = ".".join(p for p in (_field(path).replace("(payload)", ""), *missing[:1]) if p)
        detail = f"is required but missing (required: {definition})"
        value = None
    elif rule == "additionalProperties" and isinstance(value, Mapping):
        detail = f"has unknown properties (the schema is closed): {exc.message}"
    else:
        detail = f"breaks rule {rule!r} ({definition!r}); got {value!r}"
    return PayloadValidationError(
        f"{cls.aggregate_type} event {event_type}: field {field!r} {detail}. The payload does "
        f"not match its registered schema ({registered.subject} version {registered.version}, "
        f"id {registered.id}); nothing was written. Fix the value, or register a new schema "
        "version for the new shape.",
        event_type=event_type,
        field=field,
        rule=rule,
        value=value,
    )
