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

Not compared (as in Confluent, or simplified here): ``format``, ``dependencies``,
``unevaluated*``, ``if/then/else``, remote ``$ref``. Local ``$ref`` (``#/$defs/..``,
``#/definitions/..``) is followed, recursion included.

Avro compatibility is basic: Avro's schema-resolution rules for records (fields
matched by name or alias; a reader field missing in the writer needs a default),
enums (writer symbols must be known to the reader, or the reader has a default),
arrays, maps, fixed (size), unions and primitive promotions (int -> long -> float ->
double, string <-> bytes). Logical types, aliases of named types and namespaces are
not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kes.schemas.avro_diff import _AVRO_WHY, avro_differences
from kes.schemas.differences import (
    COMPATIBLE_CHANGES,
    BreakingChange,
    Difference,
    Mode,
    field_of,
)
from kes.schemas.errors import InvalidSchemaError
from kes.schemas.json_diff import json_differences

__all__ = [
    "COMPATIBLE_CHANGES",
    "BreakingChange",
    "Difference",
    "Mode",
    "avro_differences",
    "check_compatibility",
    "json_differences",
]


def _breaking(
    schema_type: str, writer_or_original: Any, reader_or_update: Any, direction: str, version: int
) -> list[BreakingChange]:
    if schema_type == "AVRO":
        diffs = avro_differences(writer_or_original, reader_or_update)
        return [
            BreakingChange(
                field_of(d.path.replace("/fields/", "/properties/")),
                d.type,
                _AVRO_WHY.get(d.type, d.type),
                d.path,
                direction,
                version,
            )
            for d in diffs
        ]
    return [
        BreakingChange(d.field, d.type, d.why, d.path, direction, version)
        for d in json_differences(writer_or_original, reader_or_update)
        if not d.compatible
    ]


def check_compatibility(
    mode: Mode | str,
    new: Any,
    previous: Sequence[tuple[int, Any]],
    schema_type: str = "JSON",
) -> list[BreakingChange]:
    """The breaking changes of ``new`` under ``mode`` against ``previous``.

    ``previous`` holds ``(version, parsed schema)``, oldest first. Non-transitive
    modes compare with the last one only. An empty list means compatible.
    """
    mode = Mode.parse(mode)
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
            out.extend(_breaking(kind, old, new, "backward", version))
        if mode.forward:
            out.extend(_breaking(kind, new, old, "forward", version))
    return out
