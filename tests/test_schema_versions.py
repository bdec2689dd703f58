"""Registry versions and ``schemaVersion`` are two counters (docs/schemas.md): a
compatible change adds a registry version and keeps ``schemaVersion``; a breaking one
with an upcaster adds both; the validator relates them by schema, never by number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from kes import Aggregate, Application, KafkaConfig, KafkaEventStore, Upcaster, event
from kes.schemas import SchemaRegistry, SchemaValidator

pytestmark = pytest.mark.kafka


class Order(Aggregate, id_field="order_id"):
    @event("Placed")
    def __init__(self, order_id: str, amount: int) -> None:
        self.amount = amount


class OrderWithNote(Aggregate, aggregate_type="Order", id_field="order_id"):
    """Compatible: an optional field added; the payload's shape version stays 1."""

    @event("Placed")
    def __init__(self, order_id: str, amount: int, note: str = "") -> None:
        self.amount = amount
        self.note = note


def _cents(payload: dict[str, Any]) -> dict[str, Any]:
    return {"orderId": payload["orderId"], "amountCents": payload["amount"] * 100}


class OrderInCents(Aggregate, aggregate_type="Order", id_field="order_id"):
    """Breaking: a field renamed and retyped; schemaVersion 2, with an upcaster."""

    upcasters: ClassVar[dict[tuple[str, int], Upcaster]] = {("Placed", 1): _cents}

    @event("Placed", schema_version=2)
    def __init__(self, order_id: str, amount_cents: int) -> None:
        self.amount_cents = amount_cents


@pytest.fixture
def registry(kafka_config: KafkaConfig, unique: str) -> Iterator[SchemaRegistry]:
    reg = SchemaRegistry(kafka_config, topic=f"{unique}._kes_schemas")
    yield reg
    reg.close()


def test_registry_versions_count_registrations_and_schema_version_counts_breaks(
    kafka_store: KafkaEventStore, registry: SchemaRegistry
) -> None:
    def save(cls: type[Aggregate], aggregate: Aggregate) -> int:
        registry.register_aggregate(cls)
        Application(kafka_store, validator=SchemaValidator(registry)).save(aggregate)
        return kafka_store.read_stream("Order", aggregate.id)[-1].schema_version

    assert save(Order, Order("o-1", amount=5)) == 1
    assert save(OrderWithNote, OrderWithNote("o-2", amount=6, note="gift")) == 1
    assert registry.versions("Order-Placed") == [1, 2]  # registry version 2, schemaVersion 1

    registry.configure("Order-Placed", compatibility="NONE")  # upcasters read the old ones
    assert save(OrderInCents, OrderInCents("o-3", amount_cents=700)) == 2
    assert registry.versions("Order-Placed") == [1, 2, 3]  # registry version 3, schemaVersion 2
    app = Application(kafka_store)
    assert [app.get(OrderInCents, f"o-{i}").amount_cents for i in (1, 2, 3)] == [500, 600, 700]
