"""Compatibility decisions per mode, table-driven, with Confluent Schema Registry's meaning.

BACKWARD: the new schema reads the old one's data; FORWARD: the old one reads the new
one's data; FULL: both. NONE accepts everything. With two versions the transitive
modes decide as their plain forms; ``test_transitive_*`` covers three versions.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from kes.domain import Aggregate, event
from kes.schemas.compatibility import (
    Mode,
    avro_differences,
    check_compatibility,
    json_differences,
)
from kes.schemas.errors import InvalidCompatibilityError, InvalidSchemaError
from kes.schemas.generate import payload_schema

S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
N = {"type": "number"}


def obj(closed: bool = True, required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "object", "properties": props, "required": list(required)}
    if closed:
        s["additionalProperties"] = False
    return s


# name, old, new, backward ok, forward ok, the incompatible changes reported (space-separated)
CASES: list[tuple[str, Any, Any, bool, bool, str | None]] = [
    ("no change", obj(a=S), obj(a=S), True, True, None),
    ("description only", obj(a=S), obj(a={**S, "description": "x"}), True, True, None),
    (
        "add optional field, closed",
        obj(a=S),
        obj(a=S, b=S),
        True,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "add optional field, open",
        obj(False, a=S),
        obj(False, a=S, b=S),
        False,
        True,
        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    (
        "add field with empty schema, open",
        obj(False, a=S),
        obj(False, a=S, b={}),
        True,
        True,
        None,
    ),
    (
        "add required field, closed",
        obj(True, ("a",), a=S),
        obj(True, ("a", "b"), a=S, b=S),
        False,
        False,
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL "
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "add required field with default, closed",
        obj(True, ("a",), a=S),
        obj(True, ("a", "b"), a=S, b={**S, "default": ""}),
        True,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "remove optional field, closed",
        obj(a=S, b=S),
        obj(a=S),
        False,
        True,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "remove required field, closed",
        obj(True, ("a", "b"), a=S, b=S),
        obj(True, ("a",), a=S),
        False,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL "
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    ),
    (
        "remove optional field, open",
        obj(False, a=S, b=S),
        obj(False, a=S),
        True,
        False,
        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    (
        "remove required field, open",
        obj(False, ("a", "b"), a=S, b=S),
        obj(False, ("a",), a=S),
        True,
        False,
        "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    ("change type", obj(a=S), obj(a=I), False, False, "TYPE_CHANGED"),
    ("widen integer -> number", obj(a=I), obj(a=N), True, False, "TYPE_NARROWED"),
    ("narrow number -> integer", obj(a=N), obj(a=I), False, True, "TYPE_NARROWED"),
    (
        "rename = remove + add, closed",
        obj(a=S, b=S),
        obj(a=S, c=S),
        False,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "rename, open",
        obj(False, a=S, b=S),
        obj(False, a=S, c=S),
        False,
        False,
        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    (
        "enum widened",
        obj(k={"enum": ["a", "b"]}),
        obj(k={"enum": ["a", "b", "c"]}),
        True,
        False,
        "ENUM_ARRAY_NARROWED",
    ),
    (
        "enum narrowed",
        obj(k={"enum": ["a", "b"]}),
        obj(k={"enum": ["a"]}),
        False,
        True,
        "ENUM_ARRAY_NARROWED",
    ),
    (
        "enum changed",
        obj(k={"enum": ["a", "b"]}),
        obj(k={"enum": ["a", "c"]}),
        False,
        False,
        "ENUM_ARRAY_CHANGED",
    ),
    (
        "nested: add optional field",
        obj(addr=obj(street=S)),
        obj(addr=obj(street=S, zip=S)),
        True,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "nested: change type",
        obj(addr=obj(street=S)),
        obj(addr=obj(street=I)),
        False,
        False,
        "TYPE_CHANGED",
    ),
    (
        "array items widened",
        obj(xs={"type": "array", "items": I}),
        obj(xs={"type": "array", "items": N}),
        True,
        False,
        "TYPE_NARROWED",
    ),
    (
        "array items changed",
        obj(xs={"type": "array", "items": S}),
        obj(xs={"type": "array", "items": I}),
        False,
        False,
        "TYPE_CHANGED",
    ),
    (
        "array of objects: remove field",
        obj(xs={"type": "array", "items": obj(a=S, b=S)}),
        obj(xs={"type": "array", "items": obj(a=S)}),
        False,
        True,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "closed -> open",
        obj(a=S),
        obj(False, a=S),
        True,
        False,
        "ADDITIONAL_PROPERTIES_REMOVED",
    ),
    (
        "open -> closed",
        obj(False, a=S),
        obj(a=S),
        False,
        True,
        "ADDITIONAL_PROPERTIES_REMOVED",
    ),
    (
        "partially open covers the added property",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S, b=S), "additionalProperties": S},
        True,
        True,
        None,
    ),
    (
        "partially open does not cover the added property",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S, b=I), "additionalProperties": S},
        False,
        False,
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL TYPE_CHANGED "
        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    ),
    (
        "made nullable",
        obj(a=S),
        obj(a={"anyOf": [S, {"type": "null"}]}),
        True,
        False,
        "TYPE_CHANGED",
    ),
    (
        "optional -> required",
        obj(a=S),
        obj(True, ("a",), a=S),
        False,
        True,
        "REQUIRED_ATTRIBUTE_ADDED",
    ),
    (
        "maxLength decreased",
        obj(a={**S, "maxLength": 10}),
        obj(a={**S, "maxLength": 5}),
        False,
        True,
        "MAX_LENGTH_DECREASED",
    ),
    (
        "minimum added",
        obj(a=I),
        obj(a={**I, "minimum": 0}),
        False,
        True,
        "MINIMUM_ADDED",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward", "change"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
@pytest.mark.parametrize("mode", list(Mode))
def test_decision_per_mode(
    mode: Mode, old: Any, new: Any, backward: bool, forward: bool, change: str | None
) -> None:
    breaking = check_compatibility(mode, new, [(1, old)])
    expected = {
        Mode.NONE: True,
        Mode.BACKWARD: backward,
        Mode.BACKWARD_TRANSITIVE: backward,
        Mode.FORWARD: forward,
        Mode.FORWARD_TRANSITIVE: forward,
        Mode.FULL: backward and forward,
        Mode.FULL_TRANSITIVE: backward and forward,
    }[mode]
    assert (not breaking) == expected, [str(b) for b in breaking]
    if not expected:
        assert change is not None
        assert {b.change for b in breaking} <= set(change.split())
        for b in breaking:
            assert b.why and b.path.startswith("#") and b.version == 1
            assert b.direction in ("backward", "forward")


def test_breaking_change_names_the_field_and_why() -> None:
    old = obj(addr=obj(street=S, city=S))
    new = obj(addr=obj(street=I))
    breaking = check_compatibility("BACKWARD", new, [(3, old)])
    by_field = {b.field: b for b in breaking}
    assert set(by_field) == {"addr.street", "addr.city"}
    assert by_field["addr.street"].change == "TYPE_CHANGED"
    assert by_field["addr.city"].change == "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
    assert "old data holds this one" in by_field["addr.city"].why
    assert "addr.city" in str(by_field["addr.city"]) and "version 3" in str(by_field["addr.city"])


def test_transitive_modes_check_every_version() -> None:
    # v2 changed the type while the subject was at NONE; v3 is compatible with v2 only.
    v1, v2, v3 = obj(a=S), obj(a=I), obj(a=I, b=S)
    history = [(1, v1), (2, v2)]
    assert check_compatibility("BACKWARD", v3, history) == []
    transitive = check_compatibility("BACKWARD_TRANSITIVE", v3, history)
    assert {(b.version, b.change) for b in transitive} == {(1, "TYPE_CHANGED")}
    assert {b.version for b in check_compatibility("FULL_TRANSITIVE", v3, history)} == {1, 2}
    assert {b.version for b in check_compatibility("FORWARD_TRANSITIVE", v3, history)} == {1, 2}
    assert {b.version for b in check_compatibility("FORWARD", v3, history)} == {2}


class Address(msgspec.Struct):
    street: str


class Address2(msgspec.Struct):
    street: str
    zip: str = ""


def test_generated_schemas_follow_refs_and_are_closed() -> None:
    class V1(Aggregate):
        @event("Moved")
        def moved(self, address: Address) -> None:
            pass

    class V2(Aggregate):
        @event("Moved", schema_version=2)
        def moved(self, address: Address2, note: str | None = None) -> None:
            pass

    s1 = payload_schema(V1.event_types()["Moved"])
    s2 = payload_schema(V2.event_types()["Moved"])
    assert s1["$defs"]["Moved"]["additionalProperties"] is False
    assert check_compatibility("BACKWARD", s2, [(1, s1)]) == []
    forward = check_compatibility("FORWARD", s2, [(1, s1)])
    assert {b.field for b in forward} == {"note", "address.zip"}


def test_recursive_schema_terminates() -> None:
    tree = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                "additionalProperties": False,
            }
        },
    }
    assert json_differences(tree, tree) == []


def test_bad_inputs() -> None:
    with pytest.raises(InvalidCompatibilityError, match="SIDEWAYS"):
        check_compatibility("SIDEWAYS", obj(), [(1, obj())])
    with pytest.raises(InvalidSchemaError, match="unknown JSON Schema type 'strin'"):
        check_compatibility("BACKWARD", obj(a={"type": "strin"}), [(1, obj(a=S))])
    with pytest.raises(InvalidSchemaError, match="points at nothing"):
        check_compatibility("BACKWARD", {"$ref": "#/$defs/Nope"}, [(1, obj())])


RECORD = {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]}


def _rec(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}, *fields]}


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"),
    [
        pytest.param(RECORD, RECORD, True, True, id="same"),
        pytest.param(
            RECORD, _rec({"name": "b", "type": "int", "default": 0}), True, True, id="add+default"
        ),
        pytest.param(RECORD, _rec({"name": "b", "type": "int"}), False, True, id="add no default"),
        pytest.param(_rec({"name": "b", "type": "int"}), RECORD, True, False, id="remove"),
        pytest.param(
            _rec({"name": "b", "type": "int"}),
            _rec({"name": "b", "type": "long"}),
            True,
            False,
            id="int->long",
        ),
        pytest.param(
            _rec({"name": "b", "type": {"type": "enum", "name": "K", "symbols": ["X"]}}),
            _rec({"name": "b", "type": {"type": "enum", "name": "K", "symbols": ["X", "Y"]}}),
            True,
            False,
            id="enum widened",
        ),
        pytest.param(
            _rec({"name": "b", "type": "string"}),
            _rec({"name": "b", "type": ["null", "string"], "default": None}),
            True,
            False,
            id="made nullable",
        ),
    ],
)
def test_avro_basic(old: Any, new: Any, backward: bool, forward: bool) -> None:
    assert (not avro_differences(old, new)) == backward
    assert (not avro_differences(new, old)) == forward
    full = check_compatibility("FULL", new, [(1, old)], schema_type="AVRO")
    assert (not full) == (backward and forward)
