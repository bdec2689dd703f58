"""Schema compatibility with the meaning Confluent Schema Registry gives its modes.

A *difference* between an original and an updated schema is compatible when every
payload the original accepts, the update accepts too (the update can read the
original's data). The modes then pick which comparisons must hold:

=====================  ==========================================================
BACKWARD (default)     the new schema reads data written with the latest version
BACKWARD_TRANSITIVE    ... with every earlier version
FORWARD                the latest version reads data written with the new schema
FORWARD_TRANSITIVE     every earlier version reads the new schema's data
FULL                   BACKWARD and FORWARD against the latest version
FULL_TRANSITIVE        BACKWARD and FORWARD against every version
NONE                   no check
=====================  ==========================================================

JSON Schema differences follow Confluent's ``json-schema-provider`` diff (the same
difference names, the same compatible set), including its *content models*:

* an object is **open** when it allows unknown properties (``additionalProperties``
  absent or ``true``, no ``patternProperties``), **closed** with
  ``additionalProperties: false``, **partially open** with a schema there.
* Adding a property to an *open* original is incompatible (old data may already
  hold that name with any value) unless the new property's schema is ``{}``.
  Adding an optional property to a *closed* original is compatible; a required one
  only with a ``default``.
* Removing a property is compatible only when the update is *open* (the old
  payloads, which have it, still validate), or covered by a partially open update.

kes generates closed schemas for event payloads (see :mod:`kes.schemas.generate`), as
Confluent's own Java serializer does, so "add an optional field" is BACKWARD compatible.

A *policy* picks the compatible change names: STRICT (Confluent's default) as above;
LENIENT also accepts the changes that only break data holding properties its schema
never declared (adding a property to an open model, closing an open model, removing a
property from a closed one), for producers that write exactly their declared fields.

Not compared (as in Confluent): ``format``, ``if/then/else``, ``propertyNames``,
``contains``. Local ``$ref`` (``#/$defs/..``, ``#/definitions/..``) is followed,
recursion included; schema references (another subject's version) are bundled in
first (:mod:`kes.schemas.references`).

Avro follows Avro's own ``SchemaCompatibility`` (the reader resolves the writer's
data): records (fields matched by name or alias; a reader field missing in the writer
needs a default), named types matched by full name or the reader's aliases, enums
(writer symbols known to the reader, or a reader default), fixed sizes, unions,
arrays, maps and the promotions int -> long -> float -> double and string <-> bytes.
Logical types are annotations of their base type, as in Avro: a base type the reader
cannot read breaks, a changed ``logicalType`` alone does not.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from kes.schemas.avro_diff import avro_differences, avro_why
from kes.schemas.differences import (
    COMPATIBLE_CHANGES,
    LENIENT_COMPATIBLE_CHANGES,
    BreakingChange,
    Difference,
    field_of,
)
from kes.schemas.errors import InvalidCompatibilityError, InvalidSchemaError
from kes.schemas.json_diff import json_differences

__all__ = [
    "COMPATIBLE_CHANGES",
    "LENIENT_COMPATIBLE_CHANGES",
    "BreakingChange",
    "Difference",
    "Mode",
    "Policy",
    "avro_differences",
    "check_compatibility",
    "json_differences",
]


class Mode(enum.StrEnum):
    """A compatibility level, spelled as Confluent Schema Registry spells it."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        try:
            return cls(str(value).upper())
        except ValueError:
            raise InvalidCompatibilityError(
                f"unknown compatibility level {value!r}; use one of "
                f"{', '.join(m.value for m in cls)}."
            ) from None

    @property
    def backward(self) -> bool:
        return self in (Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE, Mode.FULL, Mode.FULL_TRANSITIVE)

    @property
    def forward(self) -> bool:
        return self in (Mode.FORWARD, Mode.FORWARD_TRANSITIVE, Mode.FULL, Mode.FULL_TRANSITIVE)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


class Policy(enum.StrEnum):
    """Which JSON Schema changes count as compatible (Confluent's ``compatibilityPolicy``)."""

    STRICT = "STRICT"
    LENIENT = "LENIENT"

    @classmethod
    def parse(cls, value: str | Policy) -> Policy:
        try:
            return cls(str(value).upper())
        except ValueError:
            raise InvalidCompatibilityError(
                f"unknown compatibility policy {value!r}; use STRICT (the default) or LENIENT."
            ) from None

    @property
    def compatible_changes(self) -> frozenset[str]:
        return LENIENT_COMPATIBLE_CHANGES if self is Policy.LENIENT else COMPATIBLE_CHANGES


def _breaking(
    schema_type: str,
    policy: Policy,
    writer_or_original: Any,
    reader_or_update: Any,
    direction: str,
    version: int,
) -> list[BreakingChange]:
    if schema_type == "AVRO":
        return [
            BreakingChange(
                field_of(d.path.replace("/fields/", "/properties/")),
                d.type,
                avro_why(d.type),
                d.path,
                direction,
                version,
            )
            for d in avro_differences(writer_or_original, reader_or_update)
        ]
    return [
        BreakingChange(d.field, d.type, d.why, d.path, direction, version)
        for d in json_differences(writer_or_original, reader_or_update, policy.compatible_changes)
        if not d.compatible
    ]


def check_compatibility(
    mode: Mode | str,
    new: Any,
    previous: Sequence[tuple[int, Any]],
    schema_type: str = "JSON",
    policy: Policy | str = Policy.STRICT,
) -> list[BreakingChange]:
    """The breaking changes of ``new`` under ``mode`` (and ``policy``) against ``previous``.

    ``previous`` holds ``(version, parsed schema)``, oldest first. Non-transitive
    modes compare with the last one only. An empty list means compatible.
    """
    mode = Mode.parse(mode)
    policy = Policy.parse(policy)
    if mode is Mode.NONE or not previous:
        return []
    kind = schema_type.upper()
    if kind == "PROTOBUF":
        raise InvalidSchemaError(
            "kes checks JSON Schema and Avro compatibility only; register PROTOBUF with "
            "compatibility NONE."
        )
    targets = previous if mode.transitive else previous[-1:]
    out: list[BreakingChange] = []
    for version, old in reversed(targets):
        if mode.backward:
            out.extend(_breaking(kind, policy, old, new, "backward", version))
        if mode.forward:
            out.extend(_breaking(kind, policy, new, old, "forward", version))
    return out
