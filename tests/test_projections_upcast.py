"""Projection handlers receive events upcast to the current schema version (as aggregates
and pipelines do), optionally typed; what cannot be upcast is parked at once and replays
once the upcaster exists."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kes import Aggregate, Application, Envelope, Position, Upcaster, event
from kes.projections import (
    Projection,
    ProjectionError,
    ProjectionEvent,
    ProjectionRunner,
    SqlProjection,
    Tx,
)
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.cli_support import kes


class OrderV1(Aggregate, aggregate_type="Order", id_field="order_id"):
    """The first release: ``Placed`` with ``qty``."""

    @event("Placed")
    def __init__(self, order_id: str, qty: int, lines: dict[str, int]) -> None:
        self.qty = qty


def placed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"orderId": payload["orderId"], "quantity": payload["qty"], "lines": payload["lines"]}


class Order(Aggregate, aggregate_type="Order", id_field="order_id"):
    """The next release: ``qty`` renamed ``quantity`` (schema version 2), with an upcaster."""

    upcasters: ClassVar[dict[tuple[str, int], Upcaster]] = {("Placed", 1): placed_v1_to_v2}

    @event("Placed", schema_version=2)
    def __init__(self, order_id: str, quantity: int, lines: dict[str, int]) -> None:
        self.quantity = quantity


class OrderWithoutUpcaster(Aggregate, aggregate_type="Order", id_field="order_id"):
    @event("Placed", schema_version=2)
    def __init__(self, order_id: str, quantity: int, lines: dict[str, int]) -> None:
        self.quantity = quantity


class Quantities(SqlProjection):
    name = "quantities"
    aggregates: ClassVar[tuple[type[Aggregate], ...]] = (Order,)
    max_attempts = 1

    def setup(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS quantities (order_id TEXT PRIMARY KEY, "
            "quantity INTEGER NOT NULL, schema_version INTEGER NOT NULL, lines TEXT NOT NULL)"
        )

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM quantities")

    def on_Placed(self, event: ProjectionEvent, tx: Tx) -> None:
        placed = event.data  # the payload struct of Order's Placed, v2
        assert event.payload["quantity"] == placed.quantity
        tx.execute(
            "INSERT INTO quantities VALUES (?, ?, ?, ?)",
            (event.aggregate_id, placed.quantity, event.schema_version, json.dumps(placed.lines)),
        )


class QuantitiesWithoutUpcaster(Quantities):
    """The same read model (name, database), deployed before the upcaster was written."""

    aggregates = (OrderWithoutUpcaster,)


class Collected(Projection):
    """At least once, into a list."""

    name = "collected"
    aggregates = (Order,)
    seen: ClassVar[list[tuple[str, int, int]]] = []

    def on_Placed(self, event: ProjectionEvent) -> None:
        self.seen.append((event.aggregate_id, event.payload["quantity"], event.schema_version))


class NaiveMailer(Projection):
    """Reads type names only (no class): payloads arrive as written."""

    name = "mailer"
    aggregate_types = ("Order",)
    max_attempts = 1

    def on_Placed(self, event: ProjectionEvent) -> None:
        event.payload["qty"]  # v1's field: gone from v2 events


def v1_envelope(order_id: str, qty: int) -> Envelope:
    return Envelope(
        event_id="e-1",
        event_type="Placed",
        timestamp=datetime(2024, 5, 1, tzinfo=UTC),
        aggregate_type="Order",
        aggregate_id=order_id,
        version=1,
        schema_version=1,
        payload={"orderId": order_id, "qty": qty, "lines": {"skuA1": 2, "sku_b": 1}},
    )


def test_a_handler_receives_a_v1_event_upcast_and_typed() -> None:
    received = Quantities().event_for(v1_envelope("o-1", 3), Position("t", 0, 7))
    assert received.schema_version == 2
    # top-level keys: camelCase field names; a dict field keeps its own keys as written
    assert received.payload == {"orderId": "o-1", "quantity": 3, "lines": {"skuA1": 2, "sku_b": 1}}
    assert (received.data.order_id, received.data.quantity) == ("o-1", 3)
    assert received.position == Position("t", 0, 7) and received.event_id == "e-1"


def test_aggregates_name_the_types_read_and_a_class_less_type_is_passed_as_written() -> None:
    assert Quantities.aggregate_types == ("Order",)
    assert NaiveMailer.aggregate_types == ("Order",)

    class Both(Projection):
        name = "both"
        aggregate_types: ClassVar[tuple[str, ...]] = ("Audit",)
        aggregates = (Order,)

    assert Both.aggregate_types == ("Audit", "Order")
    as_written = NaiveMailer().event_for(v1_envelope("o-1", 3), Position("t", 0, 0))
    assert as_written.schema_version == 1 and as_written.payload["qty"] == 3
    with pytest.raises(ProjectionError, match=r"list the aggregate class in the projection"):
        _ = as_written.data

    class NotAnAggregate(Projection):
        name = "x"
        aggregates = ("Order",)  # type: ignore[assignment]

    with pytest.raises(ProjectionError, match="tuple of Aggregate classes"):
        NotAnAggregate()


def kes_env(config: KafkaConfig) -> dict[str, str]:
    return {
        "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KES_NAMESPACE": config.ns,
        "COLUMNS": "250",
    }


def write_both_versions(store: KafkaEventStore) -> None:
    app = Application(store)
    app.save(*(OrderV1(f"old-{i}", qty=i, lines={"skuA1": i}) for i in range(1, 4)))
    app.save(*(Order(f"new-{i}", quantity=10 * i, lines={"skuA1": i}) for i in range(1, 3)))


@pytest.mark.kafka
def test_projections_handle_events_written_before_a_schema_change_without_parking(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    write_both_versions(kafka_store)
    db = str(tmp_path / "rm.db")
    stats = ProjectionRunner(Quantities(), kafka_config, database=db, until_caught_up=True).run()
    assert stats.parked == 0
    with sqlite3.connect(db) as conn:
        rows = sorted(conn.execute("SELECT order_id, quantity, schema_version FROM quantities"))
    assert rows == [
        ("new-1", 10, 2),
        ("new-2", 20, 2),
        ("old-1", 1, 2),
        ("old-2", 2, 2),
        ("old-3", 3, 2),
    ]
    Collected.seen.clear()
    stats = ProjectionRunner(Collected(), kafka_config, until_caught_up=True).run()
    assert stats.parked == 0
    assert sorted(Collected.seen) == [(r[0], r[1], 2) for r in rows]


@pytest.mark.kafka
def test_an_event_that_cannot_be_upcast_is_parked_at_once_and_replays_once_fixed(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    write_both_versions(kafka_store)
    db = str(tmp_path / "rm.db")
    runner = ProjectionRunner(
        QuantitiesWithoutUpcaster(), kafka_config, database=db, until_caught_up=True
    )
    assert runner.run().parked == 3  # the v1 events; the v2 ones were handled
    env = kes_env(kafka_config)
    listed = kes("dlq", "list", "quantities", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    parked = json.loads(listed.stdout)
    assert {p["errorType"] for p in parked} == {"UnknownEventError"}
    assert all(p["attempts"] == 1 and "no upcaster for Placed v1" in p["error"] for p in parked)

    replayed = kes("dlq", "replay", f"{__name__}:Quantities", "--database", db, env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 parked record(s)" in replayed.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), min(schema_version) FROM quantities").fetchone() == (
            5,
            2,
        )


@pytest.mark.kafka
def test_dlq_list_names_a_missing_field_once_and_an_unknown_name_is_an_error(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    Application(kafka_store).save(Order("new-1", quantity=1, lines={}))
    assert ProjectionRunner(NaiveMailer(), kafka_config, until_caught_up=True).run().parked == 1
    env = kes_env(kafka_config)
    table = kes("dlq", "list", "mailer", env=env)
    assert table.returncode == 0, table.stderr
    assert "KeyError: no key 'qty' (a field missing from the payload?)" in table.stdout
    assert "KeyError: KeyError" not in table.stdout

    unknown = kes("dlq", "list", "mailr", env=env)
    assert unknown.returncode == 1
    assert "no dead-letter topic" in unknown.stderr and "mailer" in unknown.stderr
