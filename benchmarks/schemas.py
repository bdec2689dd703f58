"""Validation cost on the append path: µs per event, and its share of an append to Kafka.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m benchmarks.schemas [--events N]

Compares fastjsonschema against the registered schema (what SchemaValidator does) with
msgspec.convert against the payload class, then times Application.save of one-event
appends to Kafka with and without the validator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

import msgspec

from kes.application import Application
from kes.domain import Aggregate, event
from kes.envelope import NewEvent
from kes.schemas import SchemaRegistry, SchemaValidator, payload_schema
from kes.schemas.validation import compile_validator
from kes.store.kafka import KafkaConfig, KafkaEventStore


class Order(Aggregate, id_field="order_id"):
    @event("Placed")
    def __init__(
        self,
        order_id: str,
        customer: str,
        lines: list[dict[str, Any]],
        total: float,
        note: str = "",
    ) -> None:
        self.total = total


def _per_event_us(fn: Any, payload: dict[str, Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(payload)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--appends", type=int, default=300)
    args = ap.parse_args()
    payload_cls = Order.event_types()["Placed"]
    lines: list[dict[str, Any]] = [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]
    payload: dict[str, Any] = {
        "orderId": "o-1",
        "customer": "c-9",
        "lines": lines,
        "total": 12.5,
        "note": "",
    }
    check = compile_validator(payload_schema(payload_cls))
    result: dict[str, Any] = {
        "fastjsonschema_us": _per_event_us(check, payload, args.events),
        "msgspec_convert_us": _per_event_us(
            lambda p: msgspec.convert(p, payload_cls, str_keys=True), payload, args.events
        ),
    }
    servers = os.environ.get("KES_BOOTSTRAP_SERVERS")
    if servers:
        tag = uuid.uuid4().hex[:8]
        config = KafkaConfig(
            bootstrap_servers=servers,
            namespace=f"bench{tag}",
            index_dir=f"/tmp/kes-bench-{tag}",
            partitions=1,
        )
        with (
            KafkaEventStore(config) as store,
            SchemaRegistry(config, topic=f"bench{tag}._kes_schemas") as registry,
        ):
            registry.register_aggregate(Order)
            validator = SchemaValidator(registry)
            for label, app in (
                ("append_us", Application(store)),
                ("append_validated_us", Application(store, validator=validator)),
            ):
                app.save(Order(f"warm-{label}", "c", [], 1.0))
                t0 = time.perf_counter()
                for i in range(args.appends):
                    app.save(Order(f"{label}-{i}", "c-9", lines, 12.5))
                result[label] = (time.perf_counter() - t0) / args.appends * 1e6
            ev = [NewEvent(event_type="Placed", payload=payload)]
            result["validator_call_us"] = _per_event_us(
                lambda _: validator(Order, ev), payload, args.events // 4
            )
            result["validation_share_of_append"] = result["validator_call_us"] / result["append_us"]
    print(json.dumps({k: round(v, 4) for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
