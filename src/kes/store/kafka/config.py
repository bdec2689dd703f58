"""Settings of the Kafka event store, from code or from the environment."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from kes.errors import InvalidInputError

# librdkafka reports transient states (a coordinator still loading, a broker restarting)
# as warnings it then retries; kes handles them. Show only errors unless asked for more.
_librdkafka_log = logging.getLogger("kes.kafka")
if _librdkafka_log.level == logging.NOTSET:
    _librdkafka_log.setLevel(logging.ERROR)


@dataclass(frozen=True)
class KafkaConfig:
    """Where Kafka is and how kes lays out its topics.

    ``client`` is merged into every confluent-kafka client kes creates, for
    security settings (``security.protocol``, ``sasl.*``, ``ssl.*``).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    client: dict[str, Any] = field(default_factory=dict)
    topic_prefix: str = "kes.events."
    request_topic_suffix: str = ".requests"
    group_prefix: str = "kes.writers."
    partitions: int = 12
    replication_factor: int | None = None  # None: min(3, brokers)
    index_dir: str = ".kes/index"
    session_timeout_ms: int = 10_000
    transaction_timeout_ms: int = 60_000
    request_timeout_s: float = 30.0
    ready_timeout_s: float = 60.0
    max_batch_events: int = 2_000
    group_commit_wait_s: float = 0.001  # after a shared commit, wait this long for company
    index_checkpoint_every: int = 50_000  # events between index snapshots on disk
    recent_event_ids: int = 20_000  # per partition: repeated appends within it are no-ops
    member_name: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise InvalidInputError("bootstrap_servers is empty; set KES_BOOTSTRAP_SERVERS.")
        if self.partitions < 1:
            raise InvalidInputError(f"partitions must be >= 1, got {self.partitions}.")

    @classmethod
    def from_env(cls, **overrides: Any) -> KafkaConfig:
        """Read ``KES_BOOTSTRAP_SERVERS``, ``KES_PARTITIONS``, ``KES_INDEX_DIR`` and
        ``KES_KAFKA_<SETTING>`` (e.g. ``KES_KAFKA_SECURITY_PROTOCOL=SASL_SSL``)."""
        env = os.environ
        values: dict[str, Any] = {}
        if "KES_BOOTSTRAP_SERVERS" in env:
            values["bootstrap_servers"] = env["KES_BOOTSTRAP_SERVERS"]
        if "KES_PARTITIONS" in env:
            values["partitions"] = int(env["KES_PARTITIONS"])
        if "KES_INDEX_DIR" in env:
            values["index_dir"] = env["KES_INDEX_DIR"]
        if "KES_TOPIC_PREFIX" in env:
            values["topic_prefix"] = env["KES_TOPIC_PREFIX"]
        client = {
            k[len("KES_KAFKA_") :].lower().replace("_", "."): v
            for k, v in env.items()
            if k.startswith("KES_KAFKA_")
        }
        if client:
            values["client"] = client
        values.update(overrides)
        return cls(**values)

    def topic(self, aggregate_type: str) -> str:
        return self.topic_prefix + aggregate_type

    def request_topic(self, aggregate_type: str) -> str:
        return self.topic(aggregate_type) + self.request_topic_suffix

    def group(self, aggregate_type: str) -> str:
        return self.group_prefix + aggregate_type

    def transactional_id(self, aggregate_type: str, partition: int) -> str:
        # One id per partition: whoever initialises it fences every earlier owner.
        return f"{self.group(aggregate_type)}.p{partition}"

    def base(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": _librdkafka_log,  # librdkafka logs go to logging
        }
        conf.update(self.client)
        return conf

    def reader(self, **extra: Any) -> dict[str, Any]:
        """A group-less consumer reading committed records only."""
        conf = self.base()
        conf.update(
            {
                "group.id": f"kes-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "auto.offset.reset": "earliest",
                # librdkafka prefetches up to 64 MiB by default; 32 MiB reads as fast here
                # (8 MiB halves the rate). Writers' catch-up readers ask for less.
                "queued.max.messages.kbytes": 32768,
            }
        )
        conf.update(extra)
        return conf
