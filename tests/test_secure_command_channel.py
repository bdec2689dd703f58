"""The request and reply topics are a command channel. Plain confluent-kafka clients try
to use it without the right to: an append injected through a request topic, a reply
forged on a caller's reply topic, an owner asked to answer on an event topic. Each is
refused or ignored, and nothing is written (checked as the admin, with plain clients)."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from kes import NO_STREAM, NewEvent, StoreUnavailableError
from kes.broker import LocalCluster
from kes.partitioning import partition_for
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.store.kafka._routing import AppendCall, Reply, call_decoder, digest, encoder
from tests.faults import read_topic
from tests.secure_support import plain_conf, principal

pytestmark = pytest.mark.kafka


def produce(
    conf: dict[str, Any], topic: str, value: bytes, partition: int = 0
) -> KafkaError | None:
    """Produce one record as the principal of ``conf``; Kafka's refusal, or None."""
    result: list[KafkaError | None] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        result.append(err)

    producer = Producer({**conf, "enable.idempotence": False, "acks": "all"})
    producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
    producer.flush(30)
    assert result, f"no delivery report for {topic}"
    return result[0]


def records(cluster: LocalCluster, topic: str) -> list[bytes]:
    found = read_topic(cluster.bootstrap_servers, topic, conf=plain_conf(cluster, "admin"))
    return [r.value or b"" for r in found]


def injected_call(config: KafkaConfig, reply_to: str, aggregate_id: str) -> AppendCall:
    return AppendCall(
        id=uuid.uuid4().hex,
        reply_to=reply_to,
        deadline=time.time() + 60,
        aggregate_type="T",
        aggregate_id=aggregate_id,
        expected="ANY",
        events=[NewEvent(event_type="Injected", payload={})],
    )


@pytest.fixture
def owner(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> Iterator[KafkaEventStore]:
    config = principal(secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",))
    store = KafkaEventStore(config)
    store.owned_partitions("T")  # owns and serves every partition of T
    yield store
    store.close()


def test_principal_without_the_writer_role_cannot_inject_an_append(
    secure_broker: LocalCluster, secure_base: KafkaConfig, owner: KafkaEventStore, unique: str
) -> None:
    config = owner.config
    p = partition_for("victim", config.partitions)
    request_topic = config.request_topic("T")
    reply_to = f"{config.replies_prefix}x"
    # No ACL at all, and a reader of every type (which may read request topics):
    principal(secure_broker, secure_base, f"m-{unique}")
    principal(secure_broker, secure_base, f"r-{unique}", "reader")
    for user in (f"m-{unique}", f"r-{unique}"):
        call = injected_call(config, reply_to, "victim")
        refusal = produce(plain_conf(secure_broker, user), request_topic, encoder.encode(call), p)
        assert refusal is not None and refusal.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The same request from a principal allowed to write there is carried out: the
    # refusals above are what stood between an injection and the log.
    allowed = injected_call(config, reply_to, "control")
    q = partition_for("control", config.partitions)
    assert (
        produce(plain_conf(secure_broker, "admin"), request_topic, encoder.encode(allowed), q)
        is None
    )
    deadline = time.monotonic() + 30
    while owner.stream_version("T", "control") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert owner.stream_version("T", "control") == 1
    log = [msgspec.json.decode(v) for v in records(secure_broker, config.topic("T"))]
    assert [e["aggregateId"] for e in log] == ["control"]


def _read_one_call(cluster: LocalCluster, topic: str, partitions: int) -> AppendCall:
    """The first request in ``topic``, as the admin sees it."""
    consumer = Consumer(
        {**plain_conf(cluster, "admin"), "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                call = call_decoder.decode(msg.value())
                assert isinstance(call, AppendCall)
                return call
        raise AssertionError(f"no request appeared on {topic}")
    finally:
        consumer.close()


def test_a_forged_reply_is_refused_or_ignored_and_the_caller_is_not_fooled(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> None:
    # No writer runs for T: the caller's append waits for an owner that never answers.
    base = dataclasses.replace(secure_base, request_timeout_s=8)
    caller = principal(secure_broker, base, f"c-{unique}", "writer", aggregate_types=("T",))
    # A writer of another type may write reply topics (it answers its own callers).
    principal(secure_broker, base, f"b-{unique}", "writer", aggregate_types=("B",))
    principal(secure_broker, base, f"m-{unique}")
    outcome: list[BaseException | object] = []
    with KafkaEventStore(caller, role="client") as store:
        events = [NewEvent(event_type="Created", payload={})]

        def append() -> None:
            try:
                outcome.append(store.append("T", "victim", events, NO_STREAM))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=append)
        thread.start()
        call = _read_one_call(secure_broker, caller.request_topic("T"), caller.partitions)
        assert call.reply_to == store.router.reply_topic
        forged = Reply(call.id, True, version=1, offsets=[0])
        # Without any right: Kafka refuses to store the forgery.
        refusal = produce(
            plain_conf(secure_broker, f"m-{unique}"), call.reply_to, encoder.encode(forged)
        )
        assert refusal is not None and refusal.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        # With the right to write replies but not to read the request: the forgery is
        # stored, names the request's id, but cannot carry the digest of its bytes.
        for wrong in ("", digest(b"something else")):
            forged.digest = wrong
            stored = produce(
                plain_conf(secure_broker, f"b-{unique}"), call.reply_to, encoder.encode(forged)
            )
            assert stored is None
        thread.join(60)
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreUnavailableError), outcome  # not a forged success
    assert "no writer answered" in str(outcome[0])
    assert records(secure_broker, caller.topic("T")) == []


def test_an_owner_answers_only_on_reply_topics(
    secure_broker: LocalCluster, owner: KafkaEventStore
) -> None:
    """A writer-role principal may send requests, but cannot make the owner write a reply
    record into an event topic (or anywhere but a reply topic)."""
    config = owner.config
    p = partition_for("a", config.partitions)
    writer_conf = plain_conf(secure_broker, config.principal_name or "")
    bad = injected_call(config, config.topic("T"), "a")
    assert produce(writer_conf, config.request_topic("T"), encoder.encode(bad), p) is None
    # Requests of one partition are served in order: once a later one for the same
    # aggregate is answered, the one before it was handled. Had it been carried out,
    # this create would find the stream existing.
    with KafkaEventStore(config, role="client") as client:
        created = client.append("T", "a", [NewEvent(event_type="Later", payload={})], NO_STREAM)
    assert created.version == 1
    log = [msgspec.json.decode(v) for v in records(secure_broker, config.topic("T"))]
    assert [e["eventType"] for e in log] == ["Later"]  # neither the append nor a reply
