"""Quix Streams' internal topics of a pipeline (changelogs, repartitions), held to kes's
replication rule: created by it through :func:`kes_topic_manager`, checked by
:func:`internal_topic_problems` when a member starts and by ``kes stream status``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Topic
from quixstreams.models.topics import TopicAdmin, TopicConfig, TopicManager

from kes.kafka.config import KafkaConfig
from kes.kafka.topics import Topics, min_insync

__all__ = ["internal_topic_problems", "kes_topic_manager"]


def kes_topic_manager(
    config: KafkaConfig, connection: ConnectionConfig, group: str, client: dict[str, Any]
) -> TopicManager:
    """Quix's topic manager, creating its internal topics (changelogs, repartitions) by
    kes's rule: replication factor ``min(3, brokers)`` unless configured, and
    ``min.insync.replicas`` one less (never a changelog on fewer copies than the events
    it was computed from, which Quix would otherwise derive from whatever it finds)."""
    rf = Topics(config).replication_factor()
    insync = {"min.insync.replicas": str(min_insync(rf))}

    class KesTopicManager(TopicManager):
        default_replication_factor = rf
        default_extra_config = insync

        @classmethod
        def derive_topic_config(cls, topics: Iterable[Topic]) -> TopicConfig:
            derived = super().derive_topic_config(topics)
            return TopicConfig(derived.num_partitions, rf, {**derived.extra_config, **insync})

    admin = TopicAdmin(broker_address=connection, extra_config=client)
    return KesTopicManager(admin, group)


def internal_topic_problems(config: KafkaConfig, group: str) -> list[str]:
    """What is wrong with the existing internal topics of the pipeline group ``group``
    (replication or min.insync.replicas below kes's rule), one line each."""
    topics = Topics(config)
    rf = topics.replication_factor()
    problems = []
    for prefix in (f"changelog__{group}--", f"repartition__{group}--"):
        for name in topics.names(prefix):
            info = topics.describe(name)
            if info is None:
                continue
            insync = int(info.configs.get("min.insync.replicas") or 1)
            if info.replication_factor < rf or insync < min_insync(rf):
                problems.append(
                    f"{name}: replication factor {info.replication_factor}, "
                    f"min.insync.replicas {insync} (kes's rule: {rf} and {min_insync(rf)})"
                )
    return problems
