"""The EventStore contract. A backend that passes ``kes.testing.EventStoreContract`` is a
backend."""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Final, Self

import msgspec

from kes.envelope import NewEvent, Position, RecordedEvent
from kes.errors import InvalidInputError


class ExpectedVersion(enum.Enum):
    """Special values for ``expected_version``; an int means "exactly this version"."""

    ANY = "any"
    NO_STREAM = "no_stream"

    def __repr__(self) -> str:
        return self.name


ANY: Final = ExpectedVersion.ANY
NO_STREAM: Final = ExpectedVersion.NO_STREAM

Expected = int | ExpectedVersion


class AppendResult(msgspec.Struct, frozen=True):
    """The stream's version after the append and where each event landed.

    ``written`` is False for an idempotent retry that found the events already stored.
    """

    version: int
    positions: list[Position]
    written: bool = True


MAX_ID_LENGTH: Final = 1024


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{what} must be a str, got {type(value).__name__} {value!r}; "
            "convert UUIDs and numbers with str() first."
        )
    if not value or value.strip() != value:
        raise InvalidInputError(
            f"{what} must be a non-empty string without surrounding spaces, got {value!r}."
        )
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"{what} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}."
        )
    return value


def check_type(aggregate_type: object) -> None:
    """Refuse an aggregate type that cannot name a Kafka topic."""
    name = _check_name("aggregate_type", aggregate_type)
    if not all(c.isalnum() or c in "_-" for c in name):
        raise InvalidInputError(
            f"aggregate_type {name!r} may hold only letters, digits, '_' and '-' "
            "(it names a Kafka topic)."
        )


def check_stream(aggregate_type: object, aggregate_id: object) -> None:
    """Refuse a stream name (aggregate type and id) kes cannot store."""
    check_type(aggregate_type)
    _check_name("aggregate_id", aggregate_id)


def check_append(
    aggregate_type: object, aggregate_id: object, events: object, expected_version: object
) -> None:
    """Validate append arguments; raises InvalidInputError before anything is written."""
    check_stream(aggregate_type, aggregate_id)
    if isinstance(expected_version, bool) or not isinstance(
        expected_version, int | ExpectedVersion
    ):
        raise InvalidInputError(
            f"expected_version must be an int >= 0, ANY or NO_STREAM, got {expected_version!r}."
        )
    if isinstance(expected_version, int) and expected_version < 0:
        raise InvalidInputError(
            f"expected_version must be >= 0 (0 means the stream must not exist yet), "
            f"got {expected_version}."
        )
    if not isinstance(events, Sequence) or isinstance(events, str | bytes):
        raise InvalidInputError(f"events must be a list of NewEvent, got {type(events).__name__}.")
    if not events:
        raise InvalidInputError(
            f"append to {aggregate_type} {aggregate_id!r} got no events; pass at least one."
        )
    for i, e in enumerate(events):
        if not isinstance(e, NewEvent):
            raise InvalidInputError(f"events[{i}] is a {type(e).__name__}, not a NewEvent.")
        if not e.event_type or not isinstance(e.event_type, str):
            raise InvalidInputError(f"events[{i}] has an empty event_type.")
        if not e.event_id:
            raise InvalidInputError(f"events[{i}] has an empty event_id.")
        if e.schema_version < 1:
            raise InvalidInputError(
                f"events[{i}] has schema_version {e.schema_version}; versions start at 1."
            )
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        raise InvalidInputError(
            f"append to {aggregate_type} {aggregate_id!r} repeats an event_id within one call."
        )


def expected_matches(expected: Expected, actual: int) -> bool:
    if expected is ExpectedVersion.ANY:
        return True
    if expected is ExpectedVersion.NO_STREAM:
        return actual == 0
    return expected == actual


class EventStore(ABC):
    """Append-only event streams, one per aggregate, grouped by aggregate type."""

    @abstractmethod
    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        """Append ``events`` atomically if the stream is at ``expected_version``.

        Raises ConcurrencyError (nothing written) when it is not.
        """

    @abstractmethod
    def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        """One aggregate's events in version order, from ``from_version`` to ``to_version``."""

    @abstractmethod
    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The stream's current version; 0 when it has no events."""

    def exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        return self.stream_version(aggregate_type, aggregate_id) > 0

    @abstractmethod
    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> Iterator[RecordedEvent]:
        """Every event of a type present when called, in order per partition.

        ``from_positions`` maps partition -> first offset to read.
        """

    @abstractmethod
    def subscribe(
        self,
        aggregate_type: str,
        from_positions: Mapping[int, int] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        """Catch up from ``from_positions``, then yield new events live until ``stop`` is set."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_read(from_version: object, to_version: object) -> None:
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise InvalidInputError(f"from_version must be an int >= 1, got {from_version!r}.")
    if to_version is not None and (
        isinstance(to_version, bool) or not isinstance(to_version, int) or to_version < 0
    ):
        raise InvalidInputError(f"to_version must be an int >= 0 or None, got {to_version!r}.")
