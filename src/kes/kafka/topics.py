"""Every kind of topic kes creates, with its settings and checks, and the admin client
that creates and describes them.

The catalogue (:data:`KINDS`) is the single source of each kind's settings; the table
in docs/operations.md is generated from it (``kes topics --kinds``). One replication
rule holds for all: replication factor ``min(3, brokers)`` unless configured, and
``min.insync.replicas = max(1, RF - 1)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import ConfigResource, NewTopic

from kes.errors import StoreUnavailableError, TopicConfigError
from kes.kafka.acl import Role
from kes.kafka.clients import admin
from kes.kafka.config import REQUEST_SUFFIX, KafkaConfig
from kes.kafka.errors import DENIED, kafka_error, kafka_errors, translate
from kes.kafka.refusals import denied, need

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "KINDS",
    "TopicInfo",
    "TopicKind",
    "Topics",
    "check_event_topic",
    "check_key_topic",
    "kinds_table",
    "min_insync",
]

log = logging.getLogger("kes.topics")

DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
HOUR_MS = 3_600_000


def min_insync(replication_factor: int) -> int:
    """The one min.insync.replicas rule: a write needs every replica but one."""
    return max(1, replication_factor - 1)


@dataclass(frozen=True)
class TopicKind:
    """One kind of topic kes creates."""

    kind: str
    name: str  # how its name is made (for the docs)
    partitions: str  # how many (for the docs)
    purpose: str
    compacted: bool = False
    retention_ms: int = -1  # -1: forever
    # refuse an existing topic that would lose live records: one that deletes or compacts
    # (a log), or, when compacted, one that also deletes by time or size (a table)
    never_lose: bool = False
    settings: tuple[tuple[str, str], ...] = ()  # further topic settings of this kind
    role: Role | None = None  # the kes role that creates and writes it (kes.kafka.acl)

    def configs(self, replication_factor: int) -> dict[str, str]:
        configs = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "min.insync.replicas": str(min_insync(replication_factor)),
            "unclean.leader.election.enable": "false",
        }
        if not self.compacted:
            configs["retention.ms"] = str(self.retention_ms)
            if self.retention_ms == -1:
                configs["retention.bytes"] = "-1"
        if self.never_lose:
            configs["message.timestamp.type"] = "CreateTime"
        configs.update(self.settings)
        return configs

    def check(self, info: TopicInfo) -> None:
        """Refuse (or warn about) an existing topic whose settings break this kind's promise."""
        if self.never_lose and self.compacted:
            check_key_topic(info)
        elif self.never_lose:
            check_event_topic(info)
        elif self.compacted and "compact" not in info.configs.get("cleanup.policy", "delete"):
            log.warning(
                "%s topic %s has cleanup.policy=%s, not compact: old records are never "
                "cleaned and current ones may expire. Set cleanup.policy=compact on it.",
                self.kind,
                info.name,
                info.configs.get("cleanup.policy"),
            )


EVENTS = TopicKind(
    "events",
    "<namespace>.events.<AggregateType>",
    "KES_PARTITIONS (12), fixed at creation",
    "every event of one aggregate type, keyed by aggregate id: the source of truth",
    never_lose=True,
    role="writer",
)
REQUESTS = TopicKind(
    "requests",
    "<event topic>.requests",
    "as many as its event topic",
    "appends and reads forwarded to the partition's owner (carry a deadline)",
    retention_ms=HOUR_MS,
    role="writer",
)
REPLIES = TopicKind(
    "replies",
    "<namespace>.replies.<member>",
    "1",
    "answers to one process's forwarded requests; deleted when it closes",
    retention_ms=HOUR_MS,
    role="writer",
)
SNAPSHOTS = TopicKind(
    "snapshots",
    "<namespace>.snapshots.<event prefix>",
    "KES_PARTITIONS (12)",
    "latest snapshot per aggregate (a cache: deleting it loses nothing)",
    compacted=True,
)
KEYS = TopicKind(
    "data keys",
    "<namespace>.keys",
    "1",
    "each data subject's keys, wrapped by the key-encryption key, and a marker for each "
    "subject forgotten; forgetting writes tombstones (kes.shredding)",
    compacted=True,
    never_lose=True,
    # A forgotten key must leave the disks in days, not "when half the topic is dirty":
    # segments roll daily (on the next write) and are compacted within a day after.
    settings=(("segment.ms", str(24 * HOUR_MS)), ("max.compaction.lag.ms", str(24 * HOUR_MS))),
)
SCHEMAS = TopicKind(
    "schemas",
    "_<namespace>_schemas",
    "1",
    "the schema registry: subjects, versions, ids, compatibility (Confluent's layout)",
    compacted=True,
    role="schemas",
)
DEAD_LETTERS = TopicKind(
    "dead letters",
    "<namespace>.dlq.<projection or pipeline>",
    "1",
    "records a projection or pipeline could not handle, with why and where from",
    role="projection",
)
DERIVED = TopicKind(
    "derived",
    "<event topic>.<EventType>",
    "as many as its event topic",
    "one event type's events, copied exactly once (`kes project derive`)",
    never_lose=True,
    role="projection",
)
LATE = TopicKind(
    "late records",
    "<namespace>.stream.<pipeline>.late",
    "1",
    "records that arrived after their window closed",
    role="pipeline",
)
OUTPUTS = TopicKind(
    "pipeline outputs",
    "<the name given to Streams.to_topic>",
    "1, or as asked",
    "a pipeline's plain JSON results",
    never_lose=True,
    role="pipeline",
)
STREAM_STATE = TopicKind(
    "pipeline state",
    "changelog__<namespace>.stream.<pipeline>--..., repartition__...",
    "as Quix Streams chooses",
    "a pipeline's window and table state, and re-keyed records; made by Quix Streams",
    compacted=True,
)
KINDS: tuple[TopicKind, ...] = (
    EVENTS,
    REQUESTS,
    REPLIES,
    SNAPSHOTS,
    KEYS,
    SCHEMAS,
    DEAD_LETTERS,
    DERIVED,
    LATE,
    OUTPUTS,
    STREAM_STATE,
)


def kinds_table() -> str:
    """The catalogue as a Markdown table (docs/operations.md holds this very text)."""

    def settings(k: TopicKind) -> str:
        if k.compacted:
            return "compact" + (" (checked)" if k.never_lose else "")
        keep = "forever" if k.retention_ms == -1 else f"{k.retention_ms // HOUR_MS} h"
        return f"delete, kept {keep}" + (" (checked)" if k.never_lose else "")

    rows = ["| kind | name | partitions | cleanup | what it holds |", "|---|---|---|---|---|"]
    rows += [
        f"| {k.kind} | `{k.name}` | {k.partitions} | {settings(k)} | {k.purpose} |" for k in KINDS
    ]
    return "\n".join(rows)


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


def check_event_topic(info: TopicInfo) -> None:
    """Refuse a topic whose settings would silently lose or rewrite events."""
    policy = info.configs.get("cleanup.policy", "delete")
    if "compact" in policy:
        raise TopicConfigError(
            f"topic {info.name} has cleanup.policy={policy}: compaction keeps only the last "
            "event per aggregate and destroys history. Use an event topic with "
            "cleanup.policy=delete, or another namespace."
        )
    for key in ("retention.ms", "retention.bytes"):
        value = info.configs.get(key, "-1")
        if value != "-1":
            raise TopicConfigError(
                f"topic {info.name} has {key}={value}: Kafka would delete events once they "
                f"pass that limit. Set it with `kafka-configs --alter --topic {info.name} "
                f"--add-config {key}=-1` (or let kes create the topic)."
            )


def check_key_topic(info: TopicInfo) -> None:
    """Refuse a key topic that could expire a live key: every record it holds is the only
    copy of a key that events need (deleting one must be a tombstone, by ``forget``)."""
    policy = info.configs.get("cleanup.policy", "delete")
    if "delete" in policy or "compact" not in policy:
        raise TopicConfigError(
            f"topic {info.name} has cleanup.policy={policy}: Kafka would delete data keys by "
            "age or size, and the personal data they encrypt would be lost with them. Set "
            f"`kafka-configs --alter --topic {info.name} --add-config cleanup.policy=compact`."
        )


class Topics:
    """Creates, checks and describes kes topics."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.admin = admin(config)
        self._rf: int | None = None

    def broker_count(self) -> int:
        with kafka_errors(f"asking Kafka at {self.config.bootstrap_servers} for its brokers"):
            return len(self.admin.list_topics(timeout=10).brokers)

    def replication_factor(self) -> int:
        if self.config.replication_factor is not None:
            return self.config.replication_factor
        if self._rf is None:
            self._rf = min(3, self.broker_count())
        return self._rf

    def describe(self, name: str, role: Role = "reader") -> TopicInfo | None:
        """The topic's partitions, replication and settings; None when it does not exist
        (or is not visible yet). ``role``: the kes role the caller acts in (named by
        the AccessDeniedError when the principal may not describe it)."""
        doing = f"describing topic {name}"
        with kafka_errors(doing, need=need(self.config, "TOPIC", name, "DESCRIBE", role)):
            md = self.admin.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is not None and t.error.code() in DENIED:
            right = need(self.config, "TOPIC", name, "DESCRIBE", role)
            raise denied(right, doing, f"{t.error.name()}: {t.error.str()}")
        if t is None or t.error is not None or not t.partitions:
            return None
        rf = len(next(iter(t.partitions.values())).replicas)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            configs = self.admin.describe_configs([resource])[resource].result(timeout=10)
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None  # just created: the broker asked has not heard of it yet
            right = need(self.config, "TOPIC", name, "DESCRIBE_CONFIGS", role)
            raise translate(exc, f"describing the settings of topic {name}", need=right) from exc
        values = {k: v.value for k, v in configs.items() if v.value is not None}
        try:
            description = self.admin.describe_topics(TopicCollection([name]))[name]
            topic_id = str(description.result(timeout=10).topic_id)
        except KafkaException:
            topic_id = ""
        return TopicInfo(name, len(t.partitions), rf, values, topic_id)

    def ensure(
        self, kind: TopicKind, name: str, partitions: int, role: Role | None = None
    ) -> TopicInfo:
        """The topic ``name`` of ``kind``, created with the kind's settings when missing and
        checked against them when it exists. ``role``: the kes role the caller acts in
        (default: the one that creates this kind)."""
        role = role or kind.role or "reader"
        info = self.describe(name, role)
        if info is None:
            rf = self.replication_factor()
            future = self.admin.create_topics(
                [NewTopic(name, partitions, rf, config=kind.configs(rf))], operation_timeout=30
            )[name]
            try:
                future.result(timeout=60)
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is None or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise translate(
                        exc,
                        f"creating {kind.kind} topic {name} ({partitions} partitions, "
                        f"replication factor {rf})",
                        need=need(self.config, "TOPIC", name, "CREATE", role),
                    ) from exc
            info = self._wait_described(name, role)
        kind.check(info)
        self._check_replication(kind, info)
        return info

    def _check_replication(self, kind: TopicKind, info: TopicInfo) -> None:
        """Log an error for an existing topic below kes's rule (replication factor
        ``min(3, brokers)`` or configured, ``min.insync.replicas`` one less): made by hand
        or by an older version, it loses records or refuses writes with one broker down."""
        rf = self.replication_factor()
        insync = int(info.configs.get("min.insync.replicas") or 1)
        if info.replication_factor >= rf and insync >= min_insync(rf):
            return
        log.error(
            "%s topic %s has replication factor %d and min.insync.replicas %d; kes's rule "
            "here is %d and %d. With one broker down it can lose acknowledged records or "
            "refuse writes: raise them (kafka-reassign-partitions, kafka-configs "
            "--add-config min.insync.replicas=%d) or delete it and let kes create it.",
            kind.kind,
            info.name,
            info.replication_factor,
            insync,
            rf,
            min_insync(rf),
            min_insync(rf),
        )

    def _wait_described(self, name: str, role: Role) -> TopicInfo:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = self.describe(name, role)
            if info is not None:
                return info
            time.sleep(0.1)
        raise StoreUnavailableError(f"topic {name} was created but does not show in metadata.")

    def ensure_event_topic(self, aggregate_type: str, role: Role = "writer") -> TopicInfo:
        return self.ensure(EVENTS, self.config.topic(aggregate_type), self.config.partitions, role)

    def ensure_request_topic(self, aggregate_type: str, partitions: int) -> TopicInfo:
        return self.ensure_twin(REQUESTS, self.config.request_topic(aggregate_type), partitions)

    def ensure_twin(
        self, kind: TopicKind, name: str, partitions: int, role: Role | None = None
    ) -> TopicInfo:
        """A topic that must have as many partitions as the event topic it follows."""
        info = self.ensure(kind, name, partitions, role)
        if info.partitions != partitions:
            raise TopicConfigError(
                f"{kind.kind} topic {name} has {info.partitions} partitions but its event "
                f"topic has {partitions}; they must match so that each aggregate keeps its "
                f"partition. Delete {name} (kes re-creates it)."
            )
        return info

    def names(self, prefix: str = "") -> list[str]:
        """The names of the topics that start with ``prefix``, sorted."""
        with kafka_errors("listing topics"):
            md = self.admin.list_topics(timeout=10)
        return sorted(n for n in md.topics if n.startswith(prefix))

    def aggregate_types(self) -> list[str]:
        """The aggregate types that have an event topic in this namespace."""
        prefix = self.config.events_prefix
        # <prefix><AggregateType>: aggregate types hold no dots, so derived per-event-type
        # topics (<prefix>User.UserCreated) and request topics are left out.
        return [
            n[len(prefix) :]
            for n in self.names(prefix)
            if not n.endswith(REQUEST_SUFFIX) and "." not in n[len(prefix) :]
        ]

    def event_topics(self) -> list[TopicInfo]:
        """The event topics of this namespace (derived and request topics left out)."""
        names = [self.config.topic(t) for t in self.aggregate_types()]
        return [i for n in names if (i := self.describe(n)) is not None]

    def delete(self, names: list[str], timeout: float = 30) -> None:
        """Delete topics; missing ones are ignored."""
        if not names:
            return
        futures = self.admin.delete_topics(names, operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout + 10)
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is None or err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise translate(exc, f"deleting topic {name}") from exc
