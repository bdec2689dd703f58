"""kes: event sourcing for Python with Apache Kafka as the event store."""

from kes.envelope import Envelope, NewEvent, Position, RecordedEvent
from kes.errors import (
    AggregateNotFoundError,
    BrokerError,
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    SerializationError,
    StoreUnavailableError,
    TopicConfigError,
)
from kes.store import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion, MemoryEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "AggregateNotFoundError",
    "AppendResult",
    "BrokerError",
    "ConcurrencyError",
    "Envelope",
    "EventStore",
    "EventTooLargeError",
    "ExpectedVersion",
    "FencedError",
    "InvalidInputError",
    "KesError",
    "MemoryEventStore",
    "NewEvent",
    "NotOwnerError",
    "Position",
    "RecordedEvent",
    "SerializationError",
    "StoreUnavailableError",
    "TopicConfigError",
]
__version__ = "0.1.0"
