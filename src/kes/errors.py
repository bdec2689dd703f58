"""One exception hierarchy: every error kes raises is a :class:`KesError`.

Each message says what happened, with the values involved, and what to do.
"""

from __future__ import annotations


class KesError(Exception):
    """Root of every error raised by kes."""


class InvalidInputError(KesError, ValueError):
    """The caller passed something kes cannot accept; nothing was written."""


class SerializationError(InvalidInputError):
    """A payload or metadata value cannot be encoded as JSON."""


class EventTooLargeError(InvalidInputError):
    """An encoded event is larger than the topic accepts."""


class ConcurrencyError(KesError):
    """The stream was not at the expected version; nothing was written."""

    def __init__(
        self, aggregate_type: str, aggregate_id: str, expected: object, actual: int
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{aggregate_type} {aggregate_id!r}: expected version {expected}, "
            f"but the stream is at version {actual}. Nothing was written; "
            "reload the aggregate and retry the command."
        )


class AggregateNotFoundError(KesError, LookupError):
    """No events exist for the requested aggregate (or version / time)."""


class NotOwnerError(KesError):
    """This process does not own the partition an aggregate lives in."""


class FencedError(KesError):
    """A newer writer took over a partition; this writer's work was aborted."""


class TopicConfigError(KesError):
    """An event topic exists with settings that would lose or misplace events."""


class StoreUnavailableError(KesError):
    """Kafka could not be reached or did not answer in time."""


class BrokerError(KesError):
    """A local Apache Kafka node could not be fetched, started or stopped."""
