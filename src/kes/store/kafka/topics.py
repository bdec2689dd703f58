"""Event topics: created with settings that never lose events, checked when they exist."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kes.errors import StoreUnavailableError, TopicConfigError
from kes.store.kafka.config import KafkaConfig

DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    topic_id: str = ""  # Kafka's id: tells a re-created topic from the one an index knew

    @property
    def max_message_bytes(self) -> int:
        return int(self.configs.get("max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES))


def event_topic_configs(replication_factor: int) -> dict[str, str]:
    return {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "min.insync.replicas": str(max(1, replication_factor - 1)),
        "unclean.leader.election.enable": "false",
        "message.timestamp.type": "CreateTime",
    }


def request_topic_configs(replication_factor: int) -> dict[str, str]:
    # Forwarded commands are short-lived: they carry a deadline and are never replayed.
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(3_600_000),
        "min.insync.replicas": str(max(1, replication_factor - 1)),
    }


def check_event_topic(info: TopicInfo) -> None:
    """Refuse a topic whose settings would silently lose or rewrite events."""
    policy = info.configs.get("cleanup.policy", "delete")
    if "compact" in policy:
        raise TopicConfigError(
            f"topic {info.name} has cleanup.policy={policy}: compaction keeps only the last "
            "event per aggregate and destroys history. Use an event topic with "
            "cleanup.policy=delete, or another topic_prefix."
        )
    for key in ("retention.ms", "retention.bytes"):
        value = info.configs.get(key, "-1")
        if value != "-1":
            raise TopicConfigError(
                f"topic {info.name} has {key}={value}: Kafka would delete events once they "
                f"pass that limit. Set it with `kafka-configs --alter --topic {info.name} "
                f"--add-config {key}=-1` (or let kes create the topic)."
            )


class Topics:
    """Admin operations on kes topics."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.admin = AdminClient(config.base())

    def broker_count(self) -> int:
        try:
            return len(self.admin.list_topics(timeout=10).brokers)
        except KafkaException as exc:
            raise StoreUnavailableError(
                f"Kafka at {self.config.bootstrap_servers} did not answer: {exc}. Is it "
                "running? (`kes broker start` starts a local one.)"
            ) from exc

    def describe(self, name: str) -> TopicInfo | None:
        try:
            md = self.admin.list_topics(topic=name, timeout=10)
        except KafkaException as exc:
            raise StoreUnavailableError(
                f"Kafka at {self.config.bootstrap_servers} did not answer: {exc}."
            ) from exc
        t = md.topics.get(name)
        if t is None or t.error is not None or not t.partitions:
            return None
        rf = len(next(iter(t.partitions.values())).replicas)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            configs = self.admin.describe_configs([resource])[resource].result(timeout=10)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                # Just created: the broker asked for configs has not heard of it yet.
                return None
            raise StoreUnavailableError(
                f"Kafka at {self.config.bootstrap_servers} could not describe topic {name}: {exc}."
            ) from exc
        values = {k: v.value for k, v in configs.items() if v.value is not None}
        try:
            description = self.admin.describe_topics(TopicCollection([name]))[name]
            topic_id = str(description.result(timeout=10).topic_id)
        except KafkaException:
            topic_id = ""
        return TopicInfo(name, len(t.partitions), rf, values, topic_id)

    def ensure(self, name: str, partitions: int, configs: dict[str, str], rf: int) -> TopicInfo:
        info = self.describe(name)
        if info is None:
            future = self.admin.create_topics(
                [NewTopic(name, partitions, rf, config=configs)], operation_timeout=30
            )[name]
            try:
                future.result(timeout=60)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise StoreUnavailableError(
                        f"could not create topic {name} ({partitions} partitions, "
                        f"replication factor {rf}): {exc}"
                    ) from exc
            info = self._wait_described(name)
        return info

    def _wait_described(self, name: str) -> TopicInfo:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = self.describe(name)
            if info is not None:
                return info
            time.sleep(0.1)
        raise StoreUnavailableError(f"topic {name} was created but does not show in metadata.")

    def ensure_event_topic(self, aggregate_type: str) -> TopicInfo:
        rf = self.replication_factor()
        name = self.config.topic(aggregate_type)
        info = self.ensure(name, self.config.partitions, event_topic_configs(rf), rf)
        check_event_topic(info)
        return info

    def ensure_request_topic(self, aggregate_type: str, partitions: int) -> TopicInfo:
        rf = self.replication_factor()
        name = self.config.request_topic(aggregate_type)
        info = self.ensure(name, partitions, request_topic_configs(rf), rf)
        if info.partitions != partitions:
            raise TopicConfigError(
                f"topic {name} has {info.partitions} partitions but its event topic has "
                f"{partitions}; they must match so that a command lands on its aggregate's "
                "owner. Delete the request topic (it holds only transient commands)."
            )
        return info

    def replication_factor(self) -> int:
        if self.config.replication_factor is not None:
            return self.config.replication_factor
        return min(3, self.broker_count())

    def event_topics(self) -> list[TopicInfo]:
        md = self.admin.list_topics(timeout=10)
        prefix = self.config.topic_prefix
        suffix = self.config.request_topic_suffix
        # <prefix><AggregateType>: aggregate types hold no dots, so derived per-event-type
        # topics (<prefix>User.UserCreated) and request topics are left out.
        names = sorted(
            n
            for n in md.topics
            if n.startswith(prefix) and not n.endswith(suffix) and "." not in n[len(prefix) :]
        )
        return [i for n in names if (i := self.describe(n)) is not None]
