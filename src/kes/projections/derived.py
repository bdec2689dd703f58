"""Derived per-event-type topics: ``<event topic>.<EventType>`` (e.g. every UserCreated).

The aggregate topic stays the source of truth (it keeps the order between one
aggregate's events); derived topics serve consumers that want one event type per
topic. Each record is copied byte for byte (key, value, headers) to the same partition
number of a derived topic with as many partitions, so an aggregate's events keep their
order and their partition, exactly once (a :class:`KafkaProcessor`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from confluent_kafka import Message

from kes.envelope import decode
from kes.errors import TopicConfigError
from kes.kafka.config import KafkaConfig
from kes.kafka.topics import DERIVED, Topics
from kes.projections.processor import Output, header
from kes.projections.projection import KafkaProcessor

DERIVED_GROUP_PREFIX = "kes.derive."


def derived_topic(event_topic: str, event_type: str) -> str:
    return f"{event_topic}.{event_type}"


class EventTypeTopics(KafkaProcessor):
    """Routes each event of ``aggregate_types`` to its event type's derived topic.

    Use :func:`event_type_topics` to make one for an aggregate type.
    """

    name: ClassVar[str] = "kes.derive"
    aggregate_types: ClassVar[tuple[str, ...]] = ("-",)

    def __init__(self) -> None:
        super().__init__()
        self._topics: Topics | None = None
        self._ready: dict[str, int] = {}  # derived topic -> partitions
        self._partitions: dict[str, int] = {}  # source topic -> partitions

    def open(self, config: KafkaConfig) -> None:
        self._topics = Topics(config)

    def process(self, record: Any) -> Iterable[Output]:
        msg: Message = record
        raw_type = header(msg, "eventType")
        event_type = raw_type.decode() if raw_type else decode(msg.value()).event_type
        target = derived_topic(msg.topic(), event_type)
        if target not in self._ready:
            self._ensure(msg.topic(), target)
        return (Output(target, msg.key(), msg.value(), msg.headers(), msg.partition()),)

    def _ensure(self, source: str, target: str) -> None:
        topics = self._topics
        assert topics is not None, "open() was not called"
        if source not in self._partitions:
            info = topics.describe(source)
            if info is None:
                raise TopicConfigError(f"event topic {source} vanished while being read.")
            self._partitions[source] = info.partitions
        partitions = self._partitions[source]
        topics.ensure_twin(DERIVED, target, partitions)
        self._ready[target] = partitions


def event_type_topics(*aggregate_types: str) -> type[EventTypeTopics]:
    """A processor deriving per-event-type topics of ``aggregate_types``
    (group ``kes.derive.<types>``)."""
    group = DERIVED_GROUP_PREFIX + "+".join(aggregate_types)
    return type(
        "EventTypeTopics_" + "_".join(aggregate_types),
        (EventTypeTopics,),
        {"name": group, "aggregate_types": tuple(aggregate_types), "__module__": __name__},
    )
