"""kes as a persistence module for the ``eventsourcing`` library.

Move an application written for the library to Kafka by changing its environment::

    PERSISTENCE_MODULE=kes.integrations.eventsourcing
    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092

Each application's stored events form one log: one kes stream written by the single
fenced writer of its partition. An insert (several aggregates, a tracking position) is
one kes append, atomic and checked against the log's head, so the library's
IntegrityError means exactly what it means on a database, and notification ids are
1, 2, 3, ... in log order. docs/eventsourcing.md gives the design and its trade-offs;
docs/wire-format.md how the records look to any Kafka consumer.
"""

from kes.integrations.eventsourcing.errors import (
    EventExistsError,
    IntegrityConflictError,
    InvalidRecordError,
    RecorderUnavailableError,
    StaleTrackingError,
)
from kes.integrations.eventsourcing.factory import KafkaFactory
from kes.integrations.eventsourcing.recorders import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
    KafkaProcessRecorder,
    KafkaSubscription,
    KafkaTrackingRecorder,
)

Factory = KafkaFactory  # the name the library's own modules use

__all__ = [
    "EventExistsError",
    "Factory",
    "IntegrityConflictError",
    "InvalidRecordError",
    "KafkaAggregateRecorder",
    "KafkaApplicationRecorder",
    "KafkaFactory",
    "KafkaProcessRecorder",
    "KafkaSubscription",
    "KafkaTrackingRecorder",
    "RecorderUnavailableError",
    "StaleTrackingError",
]
