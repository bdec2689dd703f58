"""Restarts from the persisted index, rebuilds from the log, topics that would lose
events, events too large for the topic."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from kes import ANY, NO_STREAM, EventTooLargeError, NewEvent, TopicConfigError
from kes.store.kafka import KafkaConfig, KafkaEventStore, rebuild_index

pytestmark = pytest.mark.kafka


def ev(**payload: object) -> NewEvent:
    return NewEvent(event_type="Happened", payload=payload)


def fill(store: KafkaEventStore, n_aggs: int, n_events: int) -> None:
    for a in range(n_aggs):
        store.append("Acct", f"a{a}", [ev(i=i) for i in range(n_events)], NO_STREAM)


def test_restarted_writer_continues_from_its_persisted_index(kafka_config: KafkaConfig) -> None:
    with KafkaEventStore(kafka_config) as store:
        fill(store, 20, 5)
    with KafkaEventStore(kafka_config) as store:
        store.owned_partitions("Acct")
        writers = store.member("Acct").owned()
        assert sum(w.restored_offset for w in writers.values()) >= 100
        assert sum(w.caught_up_events for w in writers.values()) == 0  # nothing re-read
        assert store.append("Acct", "a3", [ev(i=5)], 5).version == 6
        assert [e.version for e in store.read_stream("Acct", "a3")] == [1, 2, 3, 4, 5, 6]


def test_writer_without_an_index_rebuilds_it_from_the_log(kafka_config: KafkaConfig) -> None:
    with KafkaEventStore(kafka_config) as store:
        fill(store, 20, 5)
        before = {f"a{a}": store.stream_version("Acct", f"a{a}") for a in range(20)}
    shutil.rmtree(kafka_config.index_dir)
    with KafkaEventStore(kafka_config) as store:
        store.owned_partitions("Acct")
        writers = store.member("Acct").owned()
        assert sum(w.caught_up_events for w in writers.values()) == 100
        after = {f"a{a}": store.stream_version("Acct", f"a{a}") for a in range(20)}
        assert after == before
        assert store.append("Acct", "a7", [ev()], 5).version == 6


def test_index_written_while_other_events_arrived_is_caught_up(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    other = dataclasses.replace(kafka_config, index_dir=str(tmp_path / "other"))
    with KafkaEventStore(kafka_config) as store:
        fill(store, 10, 2)
    with KafkaEventStore(other) as store:  # another writer appends meanwhile
        store.append("Acct", "a1", [ev(), ev()], 2)
    with KafkaEventStore(kafka_config) as store:  # back with the old, stale index
        assert store.stream_version("Acct", "a1") == 4
        writers = store.member("Acct").owned()
        assert sum(w.caught_up_events for w in writers.values()) == 2


def test_rebuild_index_reads_every_event(kafka_config: KafkaConfig) -> None:
    with KafkaEventStore(kafka_config) as store:
        fill(store, 10, 3)
    partitions, events, seconds = rebuild_index(kafka_config, "Acct")
    assert (partitions, events) == (kafka_config.partitions, 30)
    assert seconds >= 0


def test_event_larger_than_the_topic_allows_is_refused(kafka_config: KafkaConfig) -> None:
    with KafkaEventStore(kafka_config) as store:
        big = ev(blob="x" * 1_100_000)
        with pytest.raises(EventTooLargeError, match=r"max\.message\.bytes"):
            store.append("Acct", "big", [ev(), big], NO_STREAM)
        assert store.stream_version("Acct", "big") == 0
        assert store.append("Acct", "big", [ev()], NO_STREAM).version == 1


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"cleanup.policy": "compact"}, "cleanup.policy=compact"),
        ({"retention.ms": "604800000"}, "retention.ms=604800000"),
        ({"retention.ms": "-1", "retention.bytes": "1073741824"}, "retention.bytes=1073741824"),
    ],
)
def test_existing_topic_that_would_lose_events_is_refused(
    kafka_config: KafkaConfig, config: dict[str, str], setting: str
) -> None:
    topic = kafka_config.topic("Acct")
    admin = AdminClient({"bootstrap.servers": kafka_config.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 4, 1, config=config)])[topic].result(timeout=30)
    with (
        KafkaEventStore(kafka_config) as store,
        pytest.raises(TopicConfigError, match=setting.replace(".", r"\.")),
    ):
        store.append("Acct", "x", [ev()], NO_STREAM)


def test_created_event_topic_has_durable_settings(kafka_config: KafkaConfig) -> None:
    with KafkaEventStore(kafka_config) as store:
        store.append("Acct", "x", [ev()], NO_STREAM)
        info = store.topics.describe(kafka_config.topic("Acct"))
    assert info is not None
    assert info.configs["cleanup.policy"] == "delete"
    assert info.configs["retention.ms"] == "-1"
    assert info.configs["retention.bytes"] == "-1"
    assert info.partitions == kafka_config.partitions


def test_index_of_a_deleted_and_recreated_topic_is_not_trusted(
    kafka_config: KafkaConfig,
) -> None:
    with KafkaEventStore(kafka_config) as store:
        fill(store, 10, 3)
    admin = AdminClient({"bootstrap.servers": kafka_config.bootstrap_servers})
    topic = kafka_config.topic("Acct")
    admin.delete_topics([topic, kafka_config.request_topic("Acct")])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    with KafkaEventStore(kafka_config) as store:
        fill(store, 2, 1)  # the new topic's first events, not versions 4
        assert store.stream_version("Acct", "a1") == 1
        assert store.stream_version("Acct", "a5") == 0


def test_new_owner_treats_a_repeat_of_the_old_owners_append_as_a_no_op(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    """An append the previous owner wrote, repeated to a new owner that has no index of
    its own (what a forwarded request delivered again after its owner died amounts to),
    writes nothing, even with expected_version=ANY: the new owner learns the recent
    event ids while it catches up. (The redelivery itself is not staged here.)"""
    events = [ev(n=1), ev(n=2)]
    with KafkaEventStore(kafka_config) as old_owner:
        old_owner.append("Acct", "dup", events, ANY)
    successor = dataclasses.replace(kafka_config, index_dir=str(tmp_path / "successor"))
    with KafkaEventStore(successor) as new_owner:
        again = new_owner.append("Acct", "dup", events, ANY)
        assert again.written is False and again.version == 2
        assert new_owner.stream_version("Acct", "dup") == 2
