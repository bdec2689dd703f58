"""One picture of a namespace: brokers, event topics and their rates, writers and the
partitions they own, projections and pipelines with lag and dead letters (``kes status``).

Everything is asked of Kafka (metadata, end offsets, consumer groups); nothing needs a kes
process to answer. Rates are end-offset growth between two looks ``interval_s`` apart,
so they count commit markers too (one per partition per transaction).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kes.kafka.config import KafkaConfig
from kes.kafka.consume import count_records, watermarks
from kes.kafka.errors import kafka_errors
from kes.kafka.topics import Topics
from kes.projections.admin import group_status

__all__ = ["ConsumerStatus", "NamespaceStatus", "TopicStatus", "WriterStatus", "namespace_status"]


@dataclass
class TopicStatus:
    topic: str
    aggregate_type: str
    partitions: int
    replication_factor: int
    end_offsets: int  # summed over partitions
    offsets_per_s: float | None  # None on the first look


@dataclass
class WriterStatus:
    aggregate_type: str
    state: str
    owners: dict[str, list[int]]  # member (client id) -> partitions it owns


@dataclass
class ConsumerStatus:
    name: str  # as kes project status / kes stream status take it
    kind: str  # projection, pipeline or derive
    group: str
    state: str
    members: int
    lag: int
    dead_letters: int


@dataclass
class NamespaceStatus:
    namespace: str
    bootstrap_servers: str
    brokers: dict[int, str]
    controller: int
    topics: list[TopicStatus] = field(default_factory=list)
    writers: list[WriterStatus] = field(default_factory=list)
    consumers: list[ConsumerStatus] = field(default_factory=list)
    taken_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def namespace_status(
    config: KafkaConfig, previous: NamespaceStatus | None = None
) -> NamespaceStatus:
    """The namespace now; with ``previous`` (an earlier look), topic rates since it."""
    topics = Topics(config)
    admin = topics.admin
    with kafka_errors(f"reading the metadata of {config.bootstrap_servers}"):
        meta = admin.list_topics(timeout=10)
        listed = admin.list_consumer_groups().result(timeout=10)
    out = NamespaceStatus(
        config.ns,
        config.bootstrap_servers,
        {b.id: f"{b.host}:{b.port}" for b in meta.brokers.values()},
        meta.controller_id,
    )
    before = {t.topic: t for t in previous.topics} if previous else {}
    elapsed = out.taken_at - previous.taken_at if previous else 0.0
    for info in topics.event_topics():
        ends = sum(watermarks(config, info.name, p)[1] for p in range(info.partitions))
        old = before.get(info.name)
        rate = (ends - old.end_offsets) / elapsed if old is not None and elapsed > 0 else None
        aggregate_type = info.name[len(config.events_prefix) :]
        out.topics.append(
            TopicStatus(
                info.name, aggregate_type, info.partitions, info.replication_factor, ends, rate
            )
        )
        out.writers.append(_writer(config, admin, aggregate_type))
    groups = sorted(g.group_id for g in listed.valid)
    for kind, name, group in _consumer_groups(config, groups):
        out.consumers.append(_consumer(config, kind, name, group))
    return out


def _writer(config: KafkaConfig, admin: Any, aggregate_type: str) -> WriterStatus:
    group = config.writer_group(aggregate_type)
    with kafka_errors(f"describing writer group {group!r}"):
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    owners: dict[str, list[int]] = {}
    for m in desc.members:
        parts = m.assignment.topic_partitions if m.assignment else []
        owners[m.client_id] = sorted(tp.partition for tp in parts)
    return WriterStatus(aggregate_type, str(desc.state).split(".")[-1].lower(), owners)


def _consumer_groups(config: KafkaConfig, groups: list[str]) -> list[tuple[str, str, str]]:
    """(kind, name, group) of the namespace's projection, pipeline and derive groups."""
    ns = config.ns
    skip = tuple(f"{ns}.{part}." for part in ("writers", "dlq-replay", "reader"))
    prefix = config.group_id("")  # "" in the default namespace, else "<namespace>."
    out = []
    for g in groups:
        if g.startswith(skip) or not g.startswith(prefix) or g.startswith("kes-"):
            continue
        if g.startswith(f"{ns}.stream."):
            out.append(("pipeline", g[len(f"{ns}.stream.") :], g))
        elif g.startswith(f"{ns}.derive."):
            out.append(("derive", g[len(f"{ns}.derive.") :], g))
        elif prefix or not g.startswith(f"{ns}."):  # a projection (its own name)
            out.append(("projection", g[len(prefix) :], g))
    return out


def _consumer(config: KafkaConfig, kind: str, name: str, group: str) -> ConsumerStatus:
    st = group_status(config, group, must_exist=False)
    dead = count_records(config, config.dlq_topic(name))
    return ConsumerStatus(
        name, kind, group, st.state.lower(), st.members, sum(p.lag for p in st.partitions), dead
    )
