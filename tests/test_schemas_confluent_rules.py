"""One test per Confluent JSON Schema rule kes once got wrong: the exact change names and
paths, and the verdict under STRICT and LENIENT, that Confluent Schema Registry gives.

Each case names the Confluent class (json-schema-provider ``...json.diff``) whose rule it
mirrors and, where one exists, the case of Confluent's own ``diff-schema-examples*.json``
with the same schemas. Paths are Confluent's (``Difference.getJsonPath``).
"""

from __future__ import annotations

from typing import Any

import pytest

from kes.schemas.compatibility import Policy, json_differences

D2020 = "https://json-schema.org/draft/2020-12/schema"
S = {"type": "string"}
N = {"type": "number"}


def modern(**schema: Any) -> dict[str, Any]:
    return {"$schema": D2020, **schema}


def tup(*prefix: Any, **rest: Any) -> dict[str, Any]:
    return modern(type="array", prefixItems=list(prefix), **rest)


# id, original, update, [(change, path)], compatible under STRICT, under LENIENT
RULES: list[tuple[str, Any, Any, list[tuple[str, str]], bool, bool]] = [
    # ArraySchemaDiff + SchemaTranslator.visitItemsSchema: beside prefixItems, `items`
    # is the schema of additional items; `items: false` closes the tuple.
    (
        "2020-12 closed tuple: item added",
        tup(S, items=False),
        tup(S, N, items=False),
        [("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", "#/items/1")],
        True,
        True,
    ),
    (
        "2020-12 open tuple: item added",
        tup(S),
        tup(S, N),
        [("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", "#/items/1")],
        False,
        False,
    ),
    (
        "2020-12 partially open tuple: added item covered by items",
        tup(S, items=N),
        tup(S, N, items=N),
        [("ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "#/items/1")],
        True,
        True,
    ),
    (
        "2020-12 partially open tuple: added item not covered by items",
        tup(S, items=N),
        tup(S, S, items=N),
        [
            ("TYPE_CHANGED", "#/items/1"),
            ("ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "#/items/1"),
        ],
        False,
        False,
    ),
    (
        "2020-12 closed -> open tuple: item removed (Detect removing from closed content model)",
        tup(S, N, items=False),
        tup(S, items=True),
        [
            ("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", "#/items/1"),
            ("ADDITIONAL_ITEMS_ADDED", "#/additionalItems"),
        ],
        True,
        True,
    ),
    (
        "2020-12 unevaluatedItems is the partial model: removed item covered",
        tup(S, N, unevaluatedItems=N),
        tup(S, unevaluatedItems=N),
        [("ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "#/items/1")],
        True,
        True,
    ),
    (
        "2020-12 unevaluatedItems closed",
        tup(S),
        tup(S, unevaluatedItems=False),
        [("UNEVALUATED_ITEMS_REMOVED", "#/unevaluatedItems")],
        False,
        False,
    ),
    (
        "2020-12 items: false alone forbids every item (Detect removed boolean additional items)",
        modern(items=True),
        modern(items=False),
        [("ADDITIONAL_ITEMS_REMOVED", "#/additionalItems")],
        False,
        False,
    ),
    # ObjectSchemaDiff.compareDependencies: array dependencies by set inclusion
    (
        "dependencies: array added",
        {"properties": {"a": S, "b": S}},
        {"properties": {"a": S, "b": S}, "dependencies": {"a": ["b"]}},
        [("DEPENDENCY_ARRAY_ADDED", "#/dependencies/a")],
        False,
        False,
    ),
    (
        "dependencies: array removed",
        {"properties": {"a": S}, "dependencies": {"a": ["b"]}},
        {"properties": {"a": S}},
        [("DEPENDENCY_ARRAY_REMOVED", "#/dependencies/a")],
        True,
        True,
    ),
    (
        "dependencies: array extended",
        {"dependencies": {"a": ["b"]}},
        {"dependencies": {"a": ["b", "c"]}},
        [("DEPENDENCY_ARRAY_EXTENDED", "#/dependencies/a")],
        False,
        False,
    ),
    (
        "dependencies: array narrowed",
        {"dependencies": {"a": ["b", "c"]}},
        {"dependencies": {"a": ["b"]}},
        [("DEPENDENCY_ARRAY_NARROWED", "#/dependencies/a")],
        True,
        True,
    ),
    (
        "dependencies: array changed",
        {"dependencies": {"a": ["b"]}},
        {"dependencies": {"a": ["c"]}},
        [("DEPENDENCY_ARRAY_CHANGED", "#/dependencies/a")],
        False,
        False,
    ),
    (
        "dependencies: schema added",
        {"dependencies": {}},
        {"dependencies": {"a": S}},
        [("DEPENDENCY_SCHEMA_ADDED", "#/dependencies/a")],
        False,
        False,
    ),
    (
        "dependencies: schema removed",
        {"dependencies": {"a": S}},
        {"dependencies": {}},
        [("DEPENDENCY_SCHEMA_REMOVED", "#/dependencies/a")],
        True,
        True,
    ),
    (
        "dependencies: schema changed (Detect incompatible changes to dependencies schemas)",
        {"dependencies": {"a": S}},
        {"dependencies": {"a": N}},
        [("TYPE_CHANGED", "#/dependencies/a")],
        False,
        False,
    ),
    # SchemaTranslator.visitDependentRequiredSchema / visitDependentSchemas: the 2020-12
    # keywords are the `dependencies` of older drafts, reported at the same path
    (
        "2020-12 dependentRequired swapped (Detect changes to dependencies as array)",
        modern(properties={"a": N, "b": S}, dependentRequired={"a": ["b"]}),
        modern(properties={"a": N, "b": S}, dependentRequired={"b": ["a"]}),
        [
            ("DEPENDENCY_ARRAY_REMOVED", "#/dependencies/a"),
            ("DEPENDENCY_ARRAY_ADDED", "#/dependencies/b"),
        ],
        False,
        False,
    ),
    (
        "2020-12 dependentSchemas removed",
        modern(dependentSchemas={"a": S, "b": S}),
        modern(dependentSchemas={"a": S}),
        [("DEPENDENCY_SCHEMA_REMOVED", "#/dependencies/b")],
        True,
        True,
    ),
    # ObjectSchemaDiff.isOpenContentModel / schemaFromPartiallyOpenContentModel:
    # unevaluatedProperties closes or partially opens an object like additionalProperties
    (
        "2020-12 unevaluatedProperties: false closes the object",
        modern(properties={"a": S}, unevaluatedProperties=False),
        modern(properties={"a": S, "b": N}, unevaluatedProperties=False),
        [("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "#/properties/b")],
        True,
        True,
    ),
    (
        "2020-12 unevaluatedProperties schema covers the added property",
        modern(properties={"a": S}, unevaluatedProperties=S),
        modern(properties={"a": S, "b": S}, unevaluatedProperties=S),
        [
            ("PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "#/properties/b"),
            ("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "#/properties/b"),
        ],
        True,
        True,
    ),
    (
        "2020-12 unevaluatedProperties: false added",
        modern(properties={"a": S}),
        modern(properties={"a": S}, unevaluatedProperties=False),
        [("UNEVALUATED_PROPERTIES_REMOVED", "#/unevaluatedProperties")],
        False,
        True,
    ),
    (
        "2020-12 unevaluatedProperties: false dropped",
        modern(properties={"a": S}, unevaluatedProperties=False),
        modern(properties={"a": S}),
        [("UNEVALUATED_PROPERTIES_ADDED", "#/unevaluatedProperties")],
        True,
        True,
    ),
    # ArraySchemaDiff.compareAdditionalItems runs whether or not `items` is an array
    (
        "additionalItems true -> false, items not an array",
        {"additionalItems": True},
        {"additionalItems": False},
        [("ADDITIONAL_ITEMS_REMOVED", "#/additionalItems")],
        False,
        False,
    ),
    (
        "additionalItems schema changed, items not an array",
        {"items": S, "additionalItems": S},
        {"items": S, "additionalItems": N},
        [("TYPE_CHANGED", "#/additionalItems")],
        False,
        False,
    ),
    # ArraySchemaDiff.compareContainsAttribute
    (
        "minContains increased",
        {"type": "array", "contains": N, "minContains": 1},
        {"type": "array", "contains": N, "minContains": 2},
        [("MIN_CONTAINS_INCREASED", "#/minContains")],
        False,
        False,
    ),
    (
        "minContains decreased",
        {"type": "array", "contains": N, "minContains": 2},
        {"type": "array", "contains": N, "minContains": 1},
        [("MIN_CONTAINS_DECREASED", "#/minContains")],
        True,
        True,
    ),
    (
        "maxContains decreased",
        {"type": "array", "contains": N, "maxContains": 3},
        {"type": "array", "contains": N, "maxContains": 2},
        [("MAX_CONTAINS_DECREASED", "#/maxContains")],
        False,
        False,
    ),
    (
        "maxContains removed",
        {"type": "array", "contains": N, "maxContains": 3},
        {"type": "array", "contains": N},
        [("MAX_CONTAINS_REMOVED", "#/maxContains")],
        True,
        True,
    ),
    (
        "2020-12: minContains 1 is the default, so removing it changes nothing",
        tup(contains=N, minContains=1),
        tup(contains=N),
        [],
        True,
        True,
    ),
    # everit's loader: `type` + `enum` is allOf[enum, string]; SchemaDiff.compareTypes:
    # a combined allOf original whose one subschema reads the update -> PRODUCT_TYPE_NARROWED
    (
        "enum removed from a typed schema (Detect removed enum)",
        {"type": "string", "enum": ["red"]},
        {"type": "string"},
        [("PRODUCT_TYPE_NARROWED", "#/")],
        True,
        True,
    ),
    (
        "enum added to a typed schema",
        {"type": "string"},
        {"type": "string", "enum": ["red"]},
        [("TYPE_CHANGED", "#/")],
        False,
        False,
    ),
    (
        "typed enum extended: the enum is allOf's subschema 0",
        {"type": "string", "enum": ["red"]},
        {"type": "string", "enum": ["red", "blue"]},
        [("ENUM_ARRAY_EXTENDED", "#/allOf/0/enum")],
        True,
        True,
    ),
    # CombinedSchemaDiff.compareCriteria + size rule by the original's criterion
    (
        "allOf -> anyOf with fewer subschemas",
        {"allOf": [N, S]},
        {"anyOf": [S]},
        [("COMBINED_TYPE_EXTENDED", "#/"), ("PRODUCT_TYPE_NARROWED", "#/")],
        True,
        True,
    ),
    (
        "allOf -> oneOf with one subschema",
        {"allOf": [N, S]},
        {"oneOf": [S]},
        [("COMBINED_TYPE_EXTENDED", "#/"), ("PRODUCT_TYPE_NARROWED", "#/")],
        True,
        True,
    ),
    (
        "allOf -> oneOf with two of three subschemas",
        {"allOf": [N, S, {"type": "boolean"}]},
        {"oneOf": [N, S]},
        [("COMBINED_TYPE_CHANGED", "#/")],
        False,
        False,
    ),
    # ObjectSchemaDiff.compareProperties: the current names for an open original
    (
        "optional property added to an open object",
        {"properties": {"a": S}},
        {"properties": {"a": S, "b": N}},
        [("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "#/properties/b")],
        False,
        True,
    ),
    (
        "required property added to an open object",
        {"properties": {"a": S}},
        {"properties": {"a": S, "b": N}, "required": ["b"]},
        [("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "#/properties/b")],
        False,
        False,
    ),
    (
        "required property with default added to an open object",
        {"properties": {"a": S}},
        {"properties": {"a": S, "b": {**N, "default": 0}}, "required": ["b"]},
        [("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", "#/properties/b")],
        False,
        True,
    ),
    (
        "property removed from a closed object",
        {"properties": {"a": S, "b": S}, "additionalProperties": False},
        {"properties": {"a": S}, "additionalProperties": False},
        [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "#/properties/b")],
        False,
        True,
    ),
    (
        "open object closed",
        {"properties": {"a": S}},
        {"properties": {"a": S}, "additionalProperties": False},
        [("ADDITIONAL_PROPERTIES_REMOVED", "#/additionalProperties")],
        False,
        True,
    ),
    # NotSchemaDiff enters path "not"; ConstSchemaDiff reports at "const"
    (
        "not narrowed (Detect compatible change to not schema)",
        {"not": N},
        {"not": {"type": "integer"}},
        [("NOT_TYPE_NARROWED", "#/not")],
        True,
        True,
    ),
    (
        "not extended",
        {"not": {"type": "integer"}},
        {"not": N},
        [("NOT_TYPE_EXTENDED", "#/not")],
        False,
        False,
    ),
    (
        "const changed (Detect incompatible changes to const schema)",
        {"properties": {"foo": {"const": "red"}}},
        {"properties": {"foo": {"const": "blue"}}},
        [("ENUM_ARRAY_CHANGED", "#/properties/foo/const")],
        False,
        False,
    ),
    (
        "const -> enum is another schema class",
        {"const": "red"},
        {"enum": ["red", "blue"]},
        [("TYPE_CHANGED", "#/")],
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("original", "update", "changes", "strict", "lenient"),
    [pytest.param(*r[1:], id=r[0]) for r in RULES],
)
def test_change_names_paths_and_verdicts_match_confluent(
    original: Any, update: Any, changes: list[tuple[str, str]], strict: bool, lenient: bool
) -> None:
    diffs = json_differences(original, update, Policy.STRICT.compatible_changes)
    assert sorted((d.type, d.path) for d in diffs) == sorted(changes)
    assert all(d.compatible for d in diffs) is strict
    relaxed = json_differences(original, update, Policy.LENIENT.compatible_changes)
    assert all(d.compatible for d in relaxed) is lenient


def test_lenient_policy_changes_the_verdict_of_check_compatibility() -> None:
    from kes.schemas.compatibility import check_compatibility

    old = {"type": "object", "properties": {"a": S}}
    new = {"type": "object", "properties": {"a": S, "b": N}}
    strict = check_compatibility("BACKWARD", new, [(1, old)])
    assert [(b.change, b.field) for b in strict] == [
        ("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "b")
    ]
    assert check_compatibility("BACKWARD", new, [(1, old)], policy="LENIENT") == []


# ---- Avro: Confluent's AvroSchema.isBackwardCompatible is Avro's own
# SchemaCompatibility.checkReaderWriterCompatibility(reader=new, writer=old) ----------


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, t: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": t, **extra}


# id, writer (old data), reader (new schema), incompatibility types Avro reports
AVRO_RULES: list[tuple[str, Any, Any, list[str]]] = [
    # SchemaCompatibility: promotions the reader may apply to the writer's value
    ("int -> long", rec("E", field("a", "int")), rec("E", field("a", "long")), []),
    ("int -> double", rec("E", field("a", "int")), rec("E", field("a", "double")), []),
    ("long -> float", rec("E", field("a", "long")), rec("E", field("a", "float")), []),
    ("float -> double", rec("E", field("a", "float")), rec("E", field("a", "double")), []),
    ("string -> bytes", rec("E", field("a", "string")), rec("E", field("a", "bytes")), []),
    ("bytes -> string", rec("E", field("a", "bytes")), rec("E", field("a", "string")), []),
    ("long -> int", rec("E", field("a", "long")), rec("E", field("a", "int")), ["TYPE_MISMATCH"]),
    (
        "double -> float",
        rec("E", field("a", "double")),
        rec("E", field("a", "float")),
        ["TYPE_MISMATCH"],
    ),
    # schemaNameEquals: unqualified names, or a reader alias naming the writer's full name
    (
        "record renamed",
        rec("Old", field("a", "int")),
        rec("New", field("a", "int")),
        ["NAME_MISMATCH"],
    ),
    (
        "record renamed with an alias",
        rec("Old", field("a", "int"), namespace="com.acme"),
        rec("New", field("a", "int"), namespace="com.acme", aliases=["Old"]),
        [],
    ),
    (
        "namespace changed, same name",
        rec("E", field("a", "int"), namespace="com.old"),
        rec("E", field("a", "int"), namespace="com.new"),
        [],
    ),
    (
        "enum renamed with a full-name alias",
        rec("R", field("k", {"type": "enum", "name": "K", "namespace": "x", "symbols": ["A"]})),
        rec("R", field("k", {"type": "enum", "name": "K2", "aliases": ["x.K"], "symbols": ["A"]})),
        [],
    ),
    (
        "fixed renamed",
        rec("R", field("f", {"type": "fixed", "name": "F", "size": 4})),
        rec("R", field("f", {"type": "fixed", "name": "G", "size": 4})),
        ["NAME_MISMATCH"],
    ),
    # fixed sizes must be equal
    (
        "fixed size changed",
        rec("R", field("f", {"type": "fixed", "name": "F", "size": 4})),
        rec("R", field("f", {"type": "fixed", "name": "F", "size": 8})),
        ["FIXED_SIZE_MISMATCH"],
    ),
    # field aliases: the reader field names the writer field
    (
        "field renamed with an alias",
        rec("E", field("old", "int")),
        rec("E", field("new", "int", aliases=["old"])),
        [],
    ),
    (
        "field renamed without default or alias",
        rec("E", field("old", "int")),
        rec("E", field("new", "int")),
        ["READER_FIELD_MISSING_DEFAULT_VALUE"],
    ),
    # logical types annotate their base type: only the base type is resolved
    (
        "int -> date",
        rec("E", field("d", "int")),
        rec("E", field("d", {"type": "int", "logicalType": "date"})),
        [],
    ),
    (
        "timestamp-millis -> timestamp-micros",
        rec("E", field("t", {"type": "long", "logicalType": "timestamp-millis"})),
        rec("E", field("t", {"type": "long", "logicalType": "timestamp-micros"})),
        [],
    ),
    (
        "decimal precision changed",
        rec("E", field("m", {"type": "bytes", "logicalType": "decimal", "precision": 5})),
        rec("E", field("m", {"type": "bytes", "logicalType": "decimal", "precision": 9})),
        [],
    ),
    (
        "date -> string",
        rec("E", field("d", {"type": "int", "logicalType": "date"})),
        rec("E", field("d", "string")),
        ["TYPE_MISMATCH"],
    ),
    # enums: writer symbols the reader lacks, unless the reader has a default
    (
        "enum symbol removed",
        rec("R", field("k", {"type": "enum", "name": "K", "symbols": ["A", "B"]})),
        rec("R", field("k", {"type": "enum", "name": "K", "symbols": ["A"]})),
        ["MISSING_ENUM_SYMBOLS"],
    ),
    (
        "enum symbol removed, reader default",
        rec("R", field("k", {"type": "enum", "name": "K", "symbols": ["A", "B"]})),
        rec("R", field("k", {"type": "enum", "name": "K", "symbols": ["A"], "default": "A"})),
        [],
    ),
    # unions: each writer branch needs a reader branch
    (
        "union branch removed",
        rec("E", field("a", ["null", "string", "int"])),
        rec("E", field("a", ["null", "string"])),
        ["MISSING_UNION_BRANCH"],
    ),
]


@pytest.mark.parametrize(
    ("writer", "reader", "changes"), [pytest.param(*r[1:], id=r[0]) for r in AVRO_RULES]
)
def test_avro_resolution_matches_avro_schema_compatibility(
    writer: Any, reader: Any, changes: list[str]
) -> None:
    from kes.schemas.compatibility import avro_differences, check_compatibility

    assert [d.type for d in avro_differences(writer, reader)] == changes
    breaking = check_compatibility("BACKWARD", reader, [(1, writer)], schema_type="AVRO")
    assert [b.change for b in breaking] == changes
