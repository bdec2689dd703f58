"""kes's Confluent-compatible REST API seen by confluent-kafka's own clients, on a real
Kafka: the JSON Schema and Avro serializers (auto-register on, then off) produce through
it and the matching deserializers read back; deletion and references answer with
Confluent's status and error codes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kes import KafkaConfig
from kes.schemas import SchemaRegistry
from kes.schemas.server import SchemaRegistryServer

pytestmark = pytest.mark.kafka

ORDER_JSON = {
    "type": "object",
    "properties": {"orderId": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["orderId", "amount"],
    "additionalProperties": False,
}
ORDER_AVRO = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme",
    "fields": [{"name": "orderId", "type": "string"}, {"name": "amount", "type": "long"}],
}


@pytest.fixture
def url(kafka_config: KafkaConfig, unique: str) -> Iterator[str]:
    with (
        SchemaRegistry(kafka_config, topic=f"{unique}._kes_schemas") as registry,
        SchemaRegistryServer(registry, port=0) as server,
    ):
        yield server.url


def _topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(30)
    return name


def _read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    out: list[bytes] = []
    try:
        for _ in range(200):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg.value())
            if len(out) == count:
                return out
    finally:
        consumer.close()
    raise AssertionError(f"read {len(out)} of {count} records from {topic}")


def _round_trip(
    bootstrap: str,
    topic: str,
    url: str,
    serializer: Callable[[SchemaRegistryClient, bool], Any],
    deserializer: Callable[[SchemaRegistryClient], Any],
    values: list[dict[str, Any]],
) -> list[int]:
    """Produce values[0] with auto-register on, the rest with it off (each serializer on
    a fresh client, so nothing is cached); read all back. Returns the schema ids used."""
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap})
    payloads = [serializer(SchemaRegistryClient({"url": url}), True)(values[0], ctx)]
    for value in values[1:]:
        payloads.append(serializer(SchemaRegistryClient({"url": url}), False)(value, ctx))
    for payload in payloads:
        producer.produce(topic, value=payload)
    assert producer.flush(30) == 0
    read = _read(bootstrap, topic, len(values))
    decode = deserializer(SchemaRegistryClient({"url": url}))
    assert [decode(raw, ctx) for raw in read] == values
    return [int.from_bytes(raw[1:5], "big") for raw in read]  # Confluent's wire format


def test_json_serializer_round_trip_through_kes(
    url: str, bootstrap_servers: str, unique: str
) -> None:
    topic = _topic(bootstrap_servers, f"{unique}.orders-json")
    text = json.dumps(ORDER_JSON)
    ids = _round_trip(
        bootstrap_servers,
        topic,
        url,
        lambda c, auto: JSONSerializer(text, c, conf={"auto.register.schemas": auto}),
        lambda c: JSONDeserializer(None, schema_registry_client=c),
        [{"orderId": "o1", "amount": 3}, {"orderId": "o2", "amount": 4}],
    )
    client = SchemaRegistryClient({"url": url})
    registered = client.get_latest_version(f"{topic}-value")
    assert ids == [registered.schema_id] * 2 and registered.version == 1
    # auto-register off: a schema the subject does not hold is refused, nothing registered
    other = JSONSerializer(
        json.dumps({**ORDER_JSON, "required": ["orderId"]}),
        client,
        conf={"auto.register.schemas": False},
    )
    with pytest.raises(SchemaRegistryError) as info:
        other({"orderId": "o3"}, SerializationContext(topic, MessageField.VALUE))
    assert (info.value.http_status_code, info.value.error_code) == (404, 40403)
    assert client.get_versions(f"{topic}-value") == [1]


def test_avro_serializer_round_trip_through_kes(
    url: str, bootstrap_servers: str, unique: str
) -> None:
    topic = _topic(bootstrap_servers, f"{unique}.orders-avro")
    text = json.dumps(ORDER_AVRO)
    ids = _round_trip(
        bootstrap_servers,
        topic,
        url,
        lambda c, auto: AvroSerializer(c, text, conf={"auto.register.schemas": auto}),
        lambda c: AvroDeserializer(c),
        [{"orderId": "o1", "amount": 3}, {"orderId": "o2", "amount": 2**40}],
    )
    client = SchemaRegistryClient({"url": url})
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "AVRO"
    assert ids == [registered.schema_id] * 2


def test_deletion_and_references_answer_with_confluent_codes(url: str) -> None:
    client = SchemaRegistryClient({"url": url})

    def code(call: Callable[[], object]) -> tuple[int, int]:
        with pytest.raises(SchemaRegistryError) as info:
            call()
        return info.value.http_status_code, info.value.error_code

    address = {"type": "object", "properties": {"street": {"type": "string"}}}
    client.register_schema("Address", Schema(json.dumps(address), "JSON"))
    customer = {"type": "object", "properties": {"address": {"$ref": "address.json"}}}
    ref = SchemaReference("address.json", "Address", 1)
    cid = client.register_schema("Customer", Schema(json.dumps(customer), "JSON", [ref]))
    got = client.get_latest_version("Customer")
    assert [(r.name, r.subject, r.version) for r in got.schema.references] == [
        ("address.json", "Address", 1)
    ]
    assert client.get_schema(cid).references[0].subject == "Address"
    assert client.get_referenced_by("Address", 1) == [cid]
    # SubjectVersionsResource / SubjectsResource: a referenced version cannot go (42206)
    assert code(lambda: client.delete_version("Address", 1)) == (422, 42206)
    assert code(lambda: client.delete_subject("Address")) == (422, 42206)
    # soft, then permanent (KafkaSchemaRegistry.deleteSubject / deleteSchemaVersion)
    assert code(lambda: client.delete_subject("Customer", permanent=True)) == (404, 40405)
    assert client.delete_subject("Customer") == [1]
    assert code(lambda: client.get_versions("Customer")) == (404, 40401)
    assert code(lambda: client.delete_subject("Customer")) == (404, 40404)
    assert client.delete_subject("Customer", permanent=True) == [1]
    assert code(lambda: client.delete_subject("Customer")) == (404, 40401)
    assert code(lambda: client.delete_version("Address", 1, permanent=True)) == (404, 40407)
    assert client.delete_version("Address", 1) == 1
    assert code(lambda: client.delete_version("Address", 1)) == (404, 40406)
    assert client.delete_version("Address", 1, permanent=True) == 1
    assert client.get_subjects() == []
    # a reference to nothing is an invalid schema (42201)
    assert code(
        lambda: client.register_schema("Customer", Schema(json.dumps(customer), "JSON", [ref]))
    ) == (422, 42201)


def test_policy_over_rest(url: str) -> None:
    client = SchemaRegistryClient({"url": url})
    open_v1 = {"type": "object", "properties": {"a": {"type": "string"}}}
    open_v2 = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    client.register_schema("Open-A", Schema(json.dumps(open_v1), "JSON"))
    assert client.test_compatibility("Open-A", Schema(json.dumps(open_v2), "JSON")) is False
    assert _http("PUT", f"{url}/config/Open-A", {"compatibilityPolicy": "LENIENT"}) == (
        200,
        {"compatibilityPolicy": "LENIENT"},
    )
    assert _http("GET", f"{url}/config/Open-A") == (200, {"compatibilityPolicy": "LENIENT"})
    assert client.test_compatibility("Open-A", Schema(json.dumps(open_v2), "JSON")) is True
    status, body = _http("PUT", f"{url}/config/Open-A", {"compatibilityPolicy": "LOOSE"})
    assert (status, body["error_code"]) == (422, 42203)


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
