"""Differences and breaking changes: the vocabulary of compatibility checks (no I/O, no errors)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Confluent's json-schema-provider ``SchemaDiff.COMPATIBLE_CHANGES_STRICT``: the change
# names after which the update still reads every payload the original accepted.
COMPATIBLE_CHANGES: frozenset[str] = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "DEPENDENCY_ARRAY_NARROWED",
        "DEPENDENCY_ARRAY_REMOVED",
        "DEPENDENCY_SCHEMA_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "UNEVALUATED_PROPERTIES_ADDED",
        "UNEVALUATED_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "MAX_CONTAINS_INCREASED",
        "MAX_CONTAINS_REMOVED",
        "MIN_CONTAINS_DECREASED",
        "MIN_CONTAINS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "UNEVALUATED_ITEMS_ADDED",
        "UNEVALUATED_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    }
)

# ``COMPATIBLE_CHANGES_LENIENT``: STRICT plus the changes that are safe when producers
# only ever write the properties their schema declares (old data never holds an
# undeclared property), so open and closed content models may be treated alike.
LENIENT_COMPATIBLE_CHANGES: frozenset[str] = COMPATIBLE_CHANGES | {
    "ADDITIONAL_PROPERTIES_NARROWED",
    "ADDITIONAL_PROPERTIES_REMOVED",
    "UNEVALUATED_PROPERTIES_NARROWED",
    "UNEVALUATED_PROPERTIES_REMOVED",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL",
    "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
}

# Why an incompatible difference breaks readers of the original's data.
_WHY: dict[str, str] = {
    "TYPE_CHANGED": "the type changed; values of the old type no longer validate",
    "TYPE_NARROWED": "the type was narrowed (e.g. number -> integer); 1.5 no longer validates",
    "SCHEMA_ADDED": "a constraint was added where anything was allowed",
    "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL": (
        "the original allowed unknown properties (open content model), so old data may "
        "already hold this name with another type; close the original "
        "(additionalProperties: false) before adding properties, or use the LENIENT policy"
    ),
    "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL": (
        "a new required property without a default: old data lacks it; make it optional "
        "or give it a default"
    ),
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL": (
        "the original allowed unknown properties (open content model), so old data may "
        "already hold this name with another type; close the original first, or use the "
        "LENIENT policy"
    ),
    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL": (
        "the update forbids unknown properties (closed content model) but old data holds "
        "this one; keep it, or mark it deprecated instead of removing it"
    ),
    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL": (
        "a new required property without a default: old data lacks it; make it optional "
        "or give it a default"
    ),
    "REQUIRED_ATTRIBUTE_ADDED": (
        "an existing property became required without a default: old data may lack it"
    ),
    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the new property's schema does not accept what the original's additional/pattern "
        "properties allowed"
    ),
    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the removed property's values are not accepted by the update's additional/pattern "
        "properties"
    ),
    "ADDITIONAL_PROPERTIES_REMOVED": "unknown properties are now forbidden; old data may have some",
    "ADDITIONAL_PROPERTIES_NARROWED": "unknown properties are now constrained by a schema",
    "ENUM_ARRAY_NARROWED": "enum values were removed; old data may hold them",
    "ENUM_ARRAY_CHANGED": "enum values were replaced; old data may hold the removed ones",
    "ITEM_ADDED_TO_OPEN_CONTENT_MODEL": "a tuple item was added where any item was allowed",
    "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL": "a tuple item was removed but extra items are "
    "forbidden",
    "ADDITIONAL_ITEMS_REMOVED": "extra array items are now forbidden",
    "ADDITIONAL_ITEMS_NARROWED": "extra array items are now constrained",
    "UNIQUE_ITEMS_ADDED": "items must now be unique; old arrays may repeat values",
    "COMBINED_TYPE_CHANGED": "anyOf/oneOf/allOf changed kind",
    "COMBINED_TYPE_SUBSCHEMAS_CHANGED": "the alternatives do not match the old ones",
    "SUM_TYPE_NARROWED": "alternatives were removed from anyOf/oneOf",
    "PRODUCT_TYPE_EXTENDED": "allOf gained a constraint",
    "NOT_TYPE_EXTENDED": "'not' now excludes more values",
    "DEPENDENCY_ARRAY_ADDED": "a property dependency was added: old data may lack what it asks",
    "DEPENDENCY_ARRAY_EXTENDED": "a property dependency asks for more properties",
    "DEPENDENCY_ARRAY_CHANGED": "a property dependency asks for other properties",
    "DEPENDENCY_SCHEMA_ADDED": "a schema dependency was added: old data may not match it",
    "UNEVALUATED_PROPERTIES_REMOVED": "unevaluated properties are now forbidden",
    "UNEVALUATED_PROPERTIES_NARROWED": "unevaluated properties are now constrained",
    "UNEVALUATED_ITEMS_REMOVED": "unevaluated array items are now forbidden",
    "UNEVALUATED_ITEMS_NARROWED": "unevaluated array items are now constrained",
    "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the new tuple item's schema does not accept what the original's extra items allowed"
    ),
    "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the removed tuple item's values are not accepted by the update's extra items"
    ),
}
for _limit in (
    "MAX_LENGTH",
    "MAXIMUM",
    "EXCLUSIVE_MAXIMUM",
    "MAX_ITEMS",
    "MAX_PROPERTIES",
    "MAX_CONTAINS",
):
    _WHY[f"{_limit}_ADDED"] = f"{_limit.lower()} was added: old values may exceed it"
    _WHY[f"{_limit}_DECREASED"] = f"{_limit.lower()} decreased: old values may exceed it"
for _limit in (
    "MIN_LENGTH",
    "MINIMUM",
    "EXCLUSIVE_MINIMUM",
    "MIN_ITEMS",
    "MIN_PROPERTIES",
    "MIN_CONTAINS",
):
    _WHY[f"{_limit}_ADDED"] = f"{_limit.lower()} was added: old values may be below it"
    _WHY[f"{_limit}_INCREASED"] = f"{_limit.lower()} increased: old values may be below it"
_WHY["PATTERN_ADDED"] = "a pattern was added: old strings may not match it"
_WHY["PATTERN_CHANGED"] = "the pattern changed: old strings may not match it"
_WHY["MULTIPLE_OF_ADDED"] = "multipleOf was added"
_WHY["MULTIPLE_OF_EXPANDED"] = "multipleOf grew: old values may not be multiples of it"
_WHY["MULTIPLE_OF_CHANGED"] = "multipleOf changed"


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between two schemas, at ``path`` (a JSON pointer into the schema).

    ``compatible`` is decided by the policy the comparison ran under (STRICT or LENIENT).
    """

    path: str
    type: str
    compatible: bool

    @property
    def field(self) -> str:
        """The payload field the path points at: ``addr.street``, ``tags[]``, ``(root)``."""
        return field_of(self.path)

    @property
    def why(self) -> str:
        if self.compatible:
            return "compatible"
        return _WHY.get(self.type, self.type.lower().replace("_", " "))


@dataclass(frozen=True, slots=True)
class BreakingChange:
    """An incompatible difference found by a compatibility check.

    ``direction`` is ``"backward"`` (the new schema cannot read data of ``version``)
    or ``"forward"`` (``version`` cannot read the new schema's data).
    """

    field: str
    change: str
    why: str
    path: str
    direction: str
    version: int | None = None

    def __str__(self) -> str:
        against = f" version {self.version}" if self.version is not None else " it"
        reader = (
            f"new schema cannot read{against}'s data"
            if self.direction == "backward"
            else f"{against.strip()} cannot read the new schema's data"
        )
        return f"{self.field}: {self.change} ({self.why}; {self.direction}: {reader})"

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "change": self.change,
            "why": self.why,
            "path": self.path,
            "direction": self.direction,
            "version": self.version,
        }


def field_of(path: str) -> str:
    parts = [p for p in path.lstrip("#").split("/") if p]
    out: list[str] = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if p in ("properties", "required", "dependencies") and i + 1 < len(parts):
            out.append(parts[i + 1])
            i += 2
            continue
        if p == "items":
            if out:
                out[-1] += "[]"
            else:
                out.append("[]")
            if i + 1 < len(parts) and parts[i + 1].isdigit():
                out[-1] = out[-1][:-2] + f"[{parts[i + 1]}]"
                i += 1
        elif p in ("additionalProperties", "patternProperties", "unevaluatedProperties"):
            out.append("*")
        i += 1
    return ".".join(out) if out else "(root)"


def canonical(value: Any) -> str:
    """A schema (or part) as canonical JSON: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
