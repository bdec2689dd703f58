"""The schema registry on a real Kafka topic, its REST API seen through confluent-kafka's
own SchemaRegistryClient, validation on append, upcasting v1 -> v2 -> v3 from Kafka and
snapshots of another class version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kes import KafkaConfig, KafkaEventStore
from kes.application import Application
from kes.domain import Aggregate, Upcaster, event
from kes.envelope import NewEvent
from kes.schemas import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    PayloadValidationError,
    SchemaNotRegisteredError,
    SchemaRegistry,
    SchemaValidator,
    SubjectNotFoundError,
    VersionNotFoundError,
    payload_schema,
)
from kes.schemas.server import SchemaRegistryServer
from kes.store.base import NO_STREAM

pytestmark = pytest.mark.kafka


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "additionalProperties": False}


S = {"type": "string"}


@pytest.fixture
def registry(kafka_config: KafkaConfig, unique: str) -> Iterator[SchemaRegistry]:
    reg = SchemaRegistry(kafka_config, topic=f"{unique}._kes_schemas")
    yield reg
    reg.close()


def test_register_versions_ids_idempotent_and_restart(
    registry: SchemaRegistry, kafka_config: KafkaConfig
) -> None:
    v1 = registry.register("User-Created", obj(a=S))
    assert (v1.version, v1.id) == (1, 1)
    again = registry.register("User-Created", json.dumps(obj(a=S), indent=2))  # same schema
    assert (again.version, again.id) == (1, 1)
    v2 = registry.register("User-Created", obj(a=S, b=S))
    assert (v2.version, v2.id) == (2, 2)
    other = registry.register("User-Renamed", obj(a=S))  # same text, other subject: same id
    assert (other.version, other.id) == (1, 1)
    avro = registry.register(
        "User-Avro",
        {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]},
        "AVRO",
    )
    assert avro.schema_type == "AVRO" and avro.id == 3
    registry.set_compatibility("FULL", "User-Created")
    registry.set_compatibility("FORWARD")

    with pytest.raises(IncompatibleSchemaError) as info:
        registry.register("User-Created", obj(a={"type": "integer"}, b=S))
    assert [(c.field, c.change) for c in info.value.changes] == [
        ("a", "TYPE_CHANGED"),
        ("a", "TYPE_CHANGED"),
    ]
    assert "'User-Created'" in str(info.value) and "FULL" in str(info.value)
    assert registry.versions("User-Created") == [1, 2]  # nothing written

    # A new registry on the same topic rebuilds everything from Kafka.
    with SchemaRegistry(kafka_config, topic=registry.topic) as fresh:
        assert fresh.subjects() == ["User-Avro", "User-Created", "User-Renamed"]
        assert fresh.versions("User-Created") == [1, 2]
        assert fresh.get("User-Created", "latest").parsed == obj(a=S, b=S)
        assert fresh.by_id(3).schema_type == "AVRO"
        assert fresh.compatibility("User-Created").value == "FULL"
        assert fresh.compatibility("User-Renamed").value == "FORWARD"
        assert fresh.register("User-Created", obj(a=S)).version == 1  # idempotent after restart
        # a write from the second registry fences the first; the first re-reads and goes on
        assert fresh.register("User-Renamed", obj()).version == 2  # FORWARD: drop a field
    v3 = registry.register("User-Created", obj(a=S, b={**S, "description": "FULL allows it"}))
    assert (v3.version, v3.id) == (3, 5)


def test_bad_input(registry: SchemaRegistry) -> None:
    with pytest.raises(InvalidSchemaError, match="not valid JSON"):
        registry.register("A-B", "{not json")
    with pytest.raises(InvalidSchemaError, match="unknown JSON Schema type"):
        registry.register("A-B", {"type": "strng"})
    with pytest.raises(InvalidSchemaError, match="Avro field needs 'name' and 'type'"):
        registry.register("A-B", {"type": "record", "name": "R", "fields": [{"x": 1}]}, "AVRO")
    with pytest.raises(SubjectNotFoundError, match="'Nope-Nope' not found"):
        registry.get("Nope-Nope")
    assert registry.subjects() == []
    registry.register("A-B", obj(a=S))
    with pytest.raises(VersionNotFoundError, match=r"no version 7; it has \[1\]"):
        registry.get("A-B", 7)


@pytest.fixture
def client(registry: SchemaRegistry) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryServer(registry, port=0) as server:
        yield SchemaRegistryClient({"url": server.url})


def test_rest_api_with_confluent_client(client: SchemaRegistryClient) -> None:
    sid = client.register_schema("Order-Placed", Schema(json.dumps(obj(a=S)), "JSON"))
    assert sid == 1
    assert client.get_subjects() == ["Order-Placed"]
    assert client.get_versions("Order-Placed") == [1]
    latest = client.get_latest_version("Order-Placed")
    assert (latest.version, latest.schema_id) == (1, 1)
    assert json.loads(latest.schema.schema_str) == obj(a=S)
    assert latest.schema.schema_type == "JSON"
    assert json.loads(client.get_schema(1).schema_str) == obj(a=S)
    assert client.get_version("Order-Placed", 1).schema_id == 1
    ok = Schema(json.dumps(obj(a=S, b=S)), "JSON")
    bad = Schema(json.dumps(obj(a={"type": "integer"})), "JSON")
    assert client.test_compatibility("Order-Placed", ok) is True
    assert client.test_compatibility("Order-Placed", bad) is False
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(level="FULL")
    assert client.get_compatibility() == "FULL"
    client.set_compatibility("Order-Placed", "NONE")
    assert client.get_compatibility("Order-Placed") == "NONE"
    assert client.lookup_schema("Order-Placed", Schema(json.dumps(obj(a=S)), "JSON")).version == 1

    client.set_compatibility("Order-Placed", "BACKWARD")
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema("Order-Placed", bad)
    assert (info.value.http_status_code, info.value.error_code) == (409, 40901)
    assert "TYPE_CHANGED" in info.value.error_message
    with pytest.raises(SchemaRegistryError) as info:
        client.get_latest_version("Nope-Nope")
    assert (info.value.http_status_code, info.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema("Order-Placed", Schema("{broken", "JSON"))
    assert (info.value.http_status_code, info.value.error_code) == (422, 42201)
    with pytest.raises(SchemaRegistryError) as info:
        client.get_version("Order-Placed", 9)
    assert info.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as info:
        client.get_schema(99)
    assert info.value.error_code == 40403
    assert client.get_versions("Order-Placed") == [1]


# ---- validation on append ---------------------------------------------------------


class Account(Aggregate, id_field="account_id"):
    @event("Opened")
    def __init__(self, account_id: str, owner: str, limit: int = 0) -> None:
        self.owner = owner
        self.limit = limit

    @event("Tagged")
    def tag(self, tags: list[str]) -> None:
        self.tags = tags


def test_validation_refuses_before_writing(
    kafka_store: KafkaEventStore, registry: SchemaRegistry
) -> None:
    validator = SchemaValidator(registry)
    app = Application(kafka_store, validator=validator)
    with pytest.raises(SchemaNotRegisteredError, match="kes schemas register"):
        app.save(Account("a1", "ann"))
    assert not kafka_store.exists("Account", "a1")

    # A stricter registered schema (as another service or a newer class may register).
    opened = payload_schema(Account.event_types()["Opened"])
    opened["$defs"]["Opened"]["properties"]["limit"]["minimum"] = 0
    registry.register("Account-Opened", opened)
    registry.register("Account-Tagged", payload_schema(Account.event_types()["Tagged"]))
    validator = SchemaValidator(registry, against="latest")
    app = Application(kafka_store, validator=validator)
    with pytest.raises(PayloadValidationError) as info:
        app.save(Account("a2", "bob", limit=-5))
    assert info.value.field == "limit" and info.value.rule == "minimum"
    assert "'limit'" in str(info.value) and "-5" in str(info.value)
    assert "Account-Opened version 1" in str(info.value)
    assert not kafka_store.exists("Account", "a2")

    app.save(Account("a3", "cy", limit=5))
    assert app.get(Account, "a3").limit == 5

    # Raw events through the validator: wrong type, unknown field, missing field.
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"accountId": "x", "owner": 7}, "owner", "type"),
        ({"accountId": "x", "owner": "o", "extra": 1}, "(payload)", "additionalProperties"),
        ({"accountId": "x"}, "owner", "required"),
    ]
    for payload, field, rule in cases:
        with pytest.raises(PayloadValidationError) as info:
            validator(Account, [NewEvent(event_type="Opened", payload=payload)])
        assert (info.value.field, info.value.rule) == (field, rule), str(info.value)
    with pytest.raises(PayloadValidationError) as info:
        validator(Account, [NewEvent(event_type="Tagged", payload={"tags": ["a", 3]})])
    assert info.value.field == "tags[1]"


# ---- upcasting v1 -> v2 -> v3 from Kafka ----------------------------------------------


def _v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
    first, _, last = p.pop("name").partition(" ")
    return {**p, "firstName": first, "lastName": last}


def _v2_to_v3(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "email": p.get("email") or f"{p['firstName'].lower()}@example.com"}


class Person(Aggregate, id_field="person_id"):
    upcasters: ClassVar[dict[tuple[str, int], Upcaster]] = {
        ("Registered", 1): _v1_to_v2,
        ("Registered", 2): _v2_to_v3,
    }
    snapshot_version = 2

    @event("Registered", schema_version=3)
    def __init__(self, person_id: str, first_name: str, last_name: str, email: str) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.email = email

    @event("Moved")
    def move(self, city: str) -> None:
        self.city = city


def test_v1_v2_v3_events_replay_into_current_aggregates(kafka_store: KafkaEventStore) -> None:
    written = {
        "p1": NewEvent(
            event_type="Registered",
            schema_version=1,
            payload={"personId": "p1", "name": "Ada Lovelace"},
        ),
        "p2": NewEvent(
            event_type="Registered",
            schema_version=2,
            payload={"personId": "p2", "firstName": "Alan", "lastName": "Turing"},
        ),
        "p3": NewEvent(
            event_type="Registered",
            schema_version=3,
            payload={"personId": "p3", "firstName": "G", "lastName": "H", "email": "g@h.io"},
        ),
    }
    for pid, e in written.items():
        kafka_store.append(
            "Person", pid, [e, NewEvent(event_type="Moved", payload={"city": pid})], NO_STREAM
        )
    assert [e.schema_version for e in kafka_store.read_stream("Person", "p1")] == [1, 1]
    app = Application(kafka_store)
    ada, alan, g = (app.get(Person, pid) for pid in ("p1", "p2", "p3"))
    assert (ada.first_name, ada.last_name, ada.email, ada.city) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
        "p1",
    )
    assert (alan.first_name, alan.email, alan.version) == ("Alan", "alan@example.com", 2)
    assert (g.email, g.version) == ("g@h.io", 2)
    # Old events stay as written: the topic still holds v1.
    assert kafka_store.read_stream("Person", "p1")[0].payload == {
        "personId": "p1",
        "name": "Ada Lovelace",
    }


class Shipment(Aggregate, id_field="shipment_id"):
    @event("Sent")
    def __init__(self, shipment_id: str, address: dict[str, Any]) -> None:
        self.address = address


def test_validation_follows_schema_references(
    kafka_store: KafkaEventStore, registry: SchemaRegistry
) -> None:
    registry.register("Address", obj(street=S))
    sent = {
        "type": "object",
        "properties": {"shipmentId": S, "address": {"$ref": "address.json"}},
        "required": ["shipmentId", "address"],
    }
    ref = [{"name": "address.json", "subject": "Address", "version": 1}]
    registry.register("Shipment-Sent", sent, references=ref)
    app = Application(kafka_store, validator=SchemaValidator(registry, against="latest"))
    with pytest.raises(PayloadValidationError) as info:
        app.save(Shipment("s1", {"street": 7}))
    assert (info.value.field, info.value.rule) == ("address.street", "type")
    app.save(Shipment("s2", {"street": "Main St"}))
    assert app.get(Shipment, "s2").address == {"street": "Main St"}
