"""The wire envelope: one Kafka record per event.

key = aggregate id (UTF-8); value = the JSON envelope below; headers carry
``eventType``, ``schemaVersion``, ``contentType`` and correlation ids so that
routers need not decode the value. See docs/wire-format.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from kes.errors import InvalidInputError, SerializationError

CONTENT_TYPE = "application/json"


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. ``event_id`` defaults to a fresh UUID.

    Re-sending the same ``event_id`` at the same version is an idempotent retry.
    """

    event_type: str
    payload: Mapping[str, Any]
    event_id: str = msgspec.field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = 1
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)
    timestamp: datetime | None = None


class Position(msgspec.Struct, frozen=True):
    """Where a record lies in Kafka."""

    topic: str
    partition: int
    offset: int


class Envelope(msgspec.Struct, frozen=True, rename="camel"):
    """The JSON value of an event record, field for field."""

    event_id: str
    event_type: str
    timestamp: datetime
    aggregate_type: str
    aggregate_id: str
    version: int
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, str] = {}


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event read back from the store, with its position."""

    envelope: Envelope
    position: Position

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def version(self) -> int:
        return self.envelope.version

    @property
    def aggregate_id(self) -> str:
        return self.envelope.aggregate_id

    @property
    def aggregate_type(self) -> str:
        return self.envelope.aggregate_type

    @property
    def timestamp(self) -> datetime:
        return self.envelope.timestamp

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope.payload

    @property
    def schema_version(self) -> int:
        return self.envelope.schema_version

    @property
    def metadata(self) -> dict[str, str]:
        return self.envelope.metadata


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def now() -> datetime:
    return datetime.now(UTC)


def to_envelope(aggregate_type: str, aggregate_id: str, version: int, event: NewEvent) -> Envelope:
    ts = event.timestamp or now()
    if ts.tzinfo is None:
        raise InvalidInputError(
            f"event {event.event_type!r} has a naive timestamp {ts!r}; pass a timezone-aware "
            "datetime (e.g. datetime.now(UTC))."
        )
    return Envelope(
        event_id=event.event_id,
        event_type=event.event_type,
        timestamp=ts.astimezone(UTC),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        version=version,
        schema_version=event.schema_version,
        payload=dict(event.payload),
        metadata=dict(event.metadata),
    )


def encode(envelope: Envelope) -> bytes:
    """Encode an envelope as JSON bytes, or raise a SerializationError naming the event."""
    try:
        return _encoder.encode(envelope)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"event {envelope.event_type!r} for {envelope.aggregate_type} "
            f"{envelope.aggregate_id!r} cannot be encoded as JSON: {exc}. Payload and metadata "
            "must hold only JSON values (str, int, float, bool, None, lists, dicts with str keys)."
        ) from exc


def decode(value: bytes) -> Envelope:
    """Decode a record value; raises msgspec.DecodeError / ValidationError when malformed."""
    return _decoder.decode(value)


def headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    hs = [
        ("eventType", envelope.event_type.encode()),
        ("schemaVersion", str(envelope.schema_version).encode()),
        ("contentType", CONTENT_TYPE.encode()),
    ]
    for name in ("correlationId", "causationId"):
        value = envelope.metadata.get(name)
        if value is not None:
            hs.append((name, value.encode()))
    return hs
