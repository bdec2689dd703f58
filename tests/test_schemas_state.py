"""The registry's decisions on an in-memory RegistryState (no Kafka): deletion with
Confluent's semantics and error codes, schema references in JSON Schema and Avro, and
the compatibility level and policy per subject. Each plan's records are applied as the
Kafka registry applies them once written."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pytest

from kes.schemas.compatibility import Mode, Policy
from kes.schemas.errors import (
    CompatibilityNotConfiguredError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    ReferenceExistsError,
    SchemaError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from kes.schemas.state import Mutation, RegistryState

T = TypeVar("T")
S = {"type": "string"}


def obj(closed: bool = True, **props: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "object", "properties": props}
    if closed:
        s["additionalProperties"] = False
    return s


def run(state: RegistryState, mutation: Mutation[T]) -> T:
    for key, value in mutation.records:
        state.apply(key, value)
    return mutation.result


def refused(state: RegistryState, error: type[SchemaError], code: int, plan: Any) -> None:
    """``plan()`` raises ``error`` with Confluent's ``code`` and the state is unchanged."""
    before = (state.subjects(True), {s: state.versions(s, True) for s in state.subjects(True)})
    with pytest.raises(error) as info:
        plan()
    assert info.value.error_code == code
    after = (state.subjects(True), {s: state.versions(s, True) for s in state.subjects(True)})
    assert after == before


@pytest.fixture
def state() -> RegistryState:
    return RegistryState()


# ---- deletion: KafkaSchemaRegistry.deleteSubject / deleteSchemaVersion ---------------


def test_soft_deleted_subject_hides_its_versions_and_keeps_ids(state: RegistryState) -> None:
    v1 = run(state, state.plan_register("A-B", obj(a=S)))
    run(state, state.plan_register("A-B", obj(a=S, b=S)))
    assert run(state, state.plan_delete_subject("A-B")) == [1, 2]
    assert state.subjects() == [] and state.subjects(deleted=True) == ["A-B"]
    assert state.versions("A-B", deleted=True) == [1, 2]
    with pytest.raises(SubjectNotFoundError) as info:
        state.versions("A-B")
    assert info.value.error_code == 40401
    assert state.get("A-B", 1, deleted=True).deleted
    assert state.by_id(v1.id).schema == json.dumps(obj(a=S))  # old data still decodes
    # Confluent: a soft delete of an already soft-deleted subject is 40404
    refused(state, SubjectSoftDeletedError, 40404, lambda: state.plan_delete_subject("A-B"))
    # registering again goes on from the highest version; the same text keeps its id
    again = run(state, state.plan_register("A-B", obj(a=S)))
    assert (again.version, again.id) == (3, v1.id)


def test_permanent_delete_needs_a_soft_delete_first(state: RegistryState) -> None:
    run(state, state.plan_register("A-B", obj(a=S)))
    run(state, state.plan_config("A-B", compatibility="NONE"))
    refused(
        state,
        SubjectNotSoftDeletedError,
        40405,
        lambda: state.plan_delete_subject("A-B", permanent=True),
    )
    run(state, state.plan_delete_subject("A-B"))
    assert run(state, state.plan_delete_subject("A-B", permanent=True)) == [1]
    assert state.subjects(deleted=True) == []
    assert state.override("A-B") == (None, None)  # its config went with it
    refused(state, SubjectNotFoundError, 40401, lambda: state.plan_delete_subject("A-B"))
    assert run(state, state.plan_register("A-B", obj(a=S))).version == 1


def test_version_delete_codes(state: RegistryState) -> None:
    run(state, state.plan_register("A-B", obj(a=S)))
    run(state, state.plan_register("A-B", obj(a=S, b=S)))
    refused(
        state,
        VersionNotSoftDeletedError,
        40407,
        lambda: state.plan_delete_version("A-B", 2, permanent=True),
    )
    assert run(state, state.plan_delete_version("A-B", "latest")) == 2
    assert state.versions("A-B") == [1]
    assert state.get("A-B").version == 1
    refused(state, VersionSoftDeletedError, 40406, lambda: state.plan_delete_version("A-B", 2))
    refused(state, VersionNotFoundError, 40402, lambda: state.plan_delete_version("A-B", 9))
    refused(state, SubjectNotFoundError, 40401, lambda: state.plan_delete_version("X-Y", 1))
    assert run(state, state.plan_delete_version("A-B", 2, permanent=True)) == 2
    assert state.versions("A-B", deleted=True) == [1]
    # a deleted version no longer counts for compatibility: v1 is the latest again
    assert state.check("A-B", obj(a=S, c=S)) == []


# ---- references ------------------------------------------------------------------------

ADDRESS = {
    "$defs": {"Zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
    "type": "object",
    "properties": {"street": S, "zip": {"$ref": "#/$defs/Zip"}},
    "additionalProperties": False,
}


def customer(address_ref: str = "address.json") -> dict[str, Any]:
    return obj(name=S, address={"$ref": address_ref})


def test_json_schema_reference_is_resolved_checked_and_protected(state: RegistryState) -> None:
    address = run(state, state.plan_register("Address", ADDRESS))
    ref = [{"name": "address.json", "subject": "Address", "version": 1}]
    got = run(state, state.plan_register("Customer", customer(), references=ref))
    assert got.to_json()["references"] == ref
    assert state.referenced_by("Address", 1) == [got.id]
    # the referenced schema takes part in the check: a zip that is a number breaks
    zip_number = {**ADDRESS, "$defs": {"Zip": {"type": "integer"}}}
    run(state, state.plan_config("Address", compatibility="NONE"))
    run(state, state.plan_register("Address", zip_number))
    moved = [{"name": "address.json", "subject": "Address", "version": 2}]
    breaking = state.check("Customer", customer(), references=moved)
    assert [(b.change, b.path) for b in breaking] == [
        ("TYPE_CHANGED", "#/properties/address/properties/zip")
    ]
    # same text, same references: the same version (idempotent); other references: new id
    assert run(state, state.plan_register("Customer", customer(), references=ref)) == got
    # a referenced version cannot go, soft or permanently (42206), nothing is written
    refused(state, ReferenceExistsError, 42206, lambda: state.plan_delete_version("Address", 1))
    refused(state, ReferenceExistsError, 42206, lambda: state.plan_delete_subject("Address"))
    run(state, state.plan_delete_subject("Customer"))
    assert run(state, state.plan_delete_version("Address", 1)) == address.version
    # a soft-deleted referrer still pins the referenced version against permanent deletion
    refused(
        state,
        ReferenceExistsError,
        42206,
        lambda: state.plan_delete_version("Address", 1, permanent=True),
    )


def test_a_reference_to_nothing_is_an_invalid_schema(state: RegistryState) -> None:
    ref = [{"name": "address.json", "subject": "Address", "version": 1}]
    with pytest.raises(InvalidSchemaError, match="'Address' version 1, which is not registered"):
        state.plan_register("Customer", customer(), references=ref)
    with pytest.raises(InvalidSchemaError, match="not a local reference"):
        state.plan_register("Customer", customer())  # no references given
    with pytest.raises(InvalidSchemaError, match="integer version"):
        state.plan_register("Customer", customer(), references=[{"name": "a"}])


AVRO_ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.acme",
    "fields": [{"name": "street", "type": "string"}],
}


def avro_customer(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Customer",
        "namespace": "com.acme",
        "fields": [{"name": "address", "type": "com.acme.Address"}, *extra],
    }


def test_avro_reference_is_resolved_for_parsing_and_compatibility(state: RegistryState) -> None:
    run(state, state.plan_register("Address", AVRO_ADDRESS, "AVRO"))
    ref = [{"name": "com.acme.Address", "subject": "Address", "version": 1}]
    with pytest.raises(InvalidSchemaError, match=r"'com.acme.Address' is not defined"):
        state.plan_register("Customer", avro_customer(), "AVRO")
    run(state, state.plan_register("Customer", avro_customer(), "AVRO", ref))
    with_zip = {
        **AVRO_ADDRESS,
        "fields": [*AVRO_ADDRESS["fields"], {"name": "zip", "type": "string"}],
    }
    run(state, state.plan_config("Address", compatibility="NONE"))
    run(state, state.plan_register("Address", with_zip, "AVRO"))
    moved = [{"name": "com.acme.Address", "subject": "Address", "version": 2}]
    breaking = state.check("Customer", avro_customer(), "AVRO", references=moved)
    assert [(b.change, b.field) for b in breaking] == [
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "address.zip")
    ]


# ---- compatibility level and policy per subject ----------------------------------------


def test_policy_is_set_per_subject_like_the_level(state: RegistryState) -> None:
    run(state, state.plan_register("Open-A", obj(False, a=S)))
    run(state, state.plan_register("Open-B", obj(False, a=S)))
    widened = obj(False, a=S, b=S)
    with pytest.raises(IncompatibleSchemaError) as info:
        state.plan_register("Open-A", widened)
    assert info.value.error_code == 40901 and info.value.http_status == 409
    assert "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL" in str(info.value)
    assert run(state, state.plan_config("Open-A", policy="LENIENT")) == (
        Mode.BACKWARD,
        Policy.LENIENT,
    )
    assert run(state, state.plan_register("Open-A", widened)).version == 2
    with pytest.raises(IncompatibleSchemaError):  # the other subject stays STRICT
        state.plan_register("Open-B", widened)
    run(state, state.plan_config(None, policy="LENIENT"))  # global
    assert state.policy("Open-B") is Policy.LENIENT
    assert state.override("Open-A") == (None, Policy.LENIENT)
    assert run(state, state.plan_delete_config("Open-A")) == (Mode.BACKWARD, Policy.LENIENT)
    with pytest.raises(CompatibilityNotConfiguredError) as missing:
        state.plan_delete_config("Open-A")
    assert missing.value.error_code == 40408


def test_unknown_levels_and_policies_are_refused(state: RegistryState) -> None:
    for bad in ({"compatibility": "SIDEWAYS"}, {"policy": "LOOSE"}):
        with pytest.raises(SchemaError) as info:
            state.plan_config("A-B", **bad)
        assert info.value.error_code == 42203
    assert state.override("A-B") == (None, None)
