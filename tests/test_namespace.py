"""One namespace names everything kes creates in Kafka: applications in different
namespaces share a cluster without seeing or fencing each other."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kes import NO_STREAM, KafkaConfig, KafkaEventStore, NewEvent
from kes.kafka.config import namespace_of
from tests.faults import read_topic


def every_name(config: KafkaConfig) -> list[str]:
    return [
        config.topic("Order"),
        config.request_topic("Order"),
        config.writer_group("Order"),
        config.writer_transactional_id(),
        config.reply_topic(),
        config.snapshot_topic(),
        config.schema_topic(),
        config.schema_transactional_id(config.schema_topic()),
        config.dlq_topic("mailer"),
        config.stream_group("hourly"),
        config.late_topic("hourly"),
        config.group_id("orders.list"),
        config.processor_transactional_id("orders.list"),
    ]


def test_every_name_derives_from_the_namespace() -> None:
    for namespace in ("shop", "eu.shop-2"):
        names = every_name(KafkaConfig(namespace=namespace))
        assert all(n.startswith((namespace, f"_{namespace}")) for n in names), names
    # The bug seen: two prefixes, same writer groups and transactional ids.
    a, b = KafkaConfig(topic_prefix="a."), KafkaConfig(topic_prefix="b.")
    assert a.writer_group("Order") != b.writer_group("Order")
    assert set(every_name(a)).isdisjoint(every_name(b))


def test_the_default_namespace_keeps_the_names_kes_always_used() -> None:
    c = KafkaConfig(member_name="m1")
    assert (c.topic("User"), c.request_topic("User"), c.writer_group("User")) == (
        "kes.events.User",
        "kes.events.User.requests",
        "kes.writers.User",
    )
    assert (c.snapshot_topic(), c.schema_topic(), c.dlq_topic("p")) == (
        "kes.snapshots.kes.events",
        "_kes_schemas",
        "kes.dlq.p",
    )
    assert (c.group_id("users.directory"), c.reply_topic()) == ("users.directory", "kes.replies.m1")
    assert [namespace_of(p) for p in ("kes.events.", "shop.events.", "a.", "")] == [
        "kes",
        "shop",
        "a",
        "kes",
    ]


def test_the_environment_sets_the_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KES_NAMESPACE", "billing")
    monkeypatch.setenv("KES_ROLE", "client")
    config = KafkaConfig.from_env()
    assert config.ns == "billing" and config.topic("Invoice") == "billing.events.Invoice"
    assert config.role == "client"


@pytest.mark.kafka
def test_two_applications_in_different_namespaces_share_a_cluster(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    a = dataclasses.replace(
        kafka_config, namespace=f"{kafka_config.ns}a", index_dir=str(tmp_path / "a")
    )
    b = dataclasses.replace(
        kafka_config, namespace=f"{kafka_config.ns}b", index_dir=str(tmp_path / "b")
    )
    with KafkaEventStore(a) as store_a, KafkaEventStore(b) as store_b:
        everything = list(range(kafka_config.partitions))
        # Each owns every partition of its own Order topic: neither fenced the other.
        assert store_a.owned_partitions("Order") == everything
        assert store_b.owned_partitions("Order") == everything
        for i in range(20):
            for name, store in (("a", store_a), ("b", store_b)):
                event = NewEvent(event_type="Placed", payload={"by": name})
                store.append("Order", f"o{i}", [event], NO_STREAM)
        assert store_a.stream_version("Order", "o3") == 1 == store_b.stream_version("Order", "o3")
        assert store_a.owned_partitions("Order") == everything == store_b.owned_partitions("Order")
        writers_a, writers_b = store_a.writer.stats, store_b.writer.stats
        assert writers_a.aborted == 0 and writers_b.aborted == 0
    for name, config in (("a", a), ("b", b)):
        records = read_topic(config.bootstrap_servers, config.topic("Order"))
        assert len(records) == 20
        assert {r.json()["payload"]["by"] for r in records} == {name}
