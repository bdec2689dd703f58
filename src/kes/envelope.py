"""The wire envelope: one Kafka record per event.

key = aggregate id (UTF-8); value = the JSON envelope below; headers carry
``eventType``, ``schemaVersion``, ``contentType`` and correlation ids so that
routers need not decode the value. Personal fields travel encrypted in the envelope's
``personal`` list (:class:`SealedFields`), never in ``payload``. See docs/wire-format.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from kes.errors import InvalidInputError, SerializationError

CONTENT_TYPE = "application/json"


# Random bytes for event ids, drawn 256 ids at a time: os.urandom releases the GIL for
# its system call, and at thousands of appends a second the thread that released it
# waits for it behind the writer thread (up to the 5 ms switch interval) each time.
_ID_BATCH = 16 * 256
_ids = threading.local()


def _fresh_ids() -> None:
    global _ids
    _ids = threading.local()  # a forked child must never reuse its parent's bytes


os.register_at_fork(after_in_child=_fresh_ids)


def new_event_id() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, faster."""
    local = _ids
    pool: bytes | None = getattr(local, "pool", None)
    at: int = getattr(local, "at", _ID_BATCH)
    if pool is None or at >= _ID_BATCH:
        pool, at = os.urandom(_ID_BATCH), 0
        local.pool = pool
    local.at = at + 16
    b = bytearray(pool[at : at + 16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SealedFields(msgspec.Struct, frozen=True, rename="camel"):
    """Personal fields of one event and one data subject, encrypted (AES-256-GCM).

    ``fields`` maps each protected payload field to the value it reads as once the
    subject is forgotten (its placeholder); ``data`` is ``nonce (12 bytes) ||
    ciphertext || tag (16 bytes)`` of the JSON object of those fields' values, base64
    in JSON, under the subject's data key ``key_id``. See docs/wire-format.md.
    """

    subject: str
    key_id: str
    fields: dict[str, Any]
    data: bytes


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. ``event_id`` defaults to a fresh UUID.

    Re-sending the same ``event_id`` at the same version is an idempotent retry.
    ``personal`` holds the event's encrypted personal fields (set by the repository,
    which removes them from ``payload``); unset when it has none.
    """

    event_type: str
    payload: Mapping[str, Any]
    event_id: str = msgspec.field(default_factory=new_event_id)
    schema_version: int = 1
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)
    timestamp: datetime | None = None
    personal: list[SealedFields] | msgspec.UnsetType = msgspec.UNSET


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
    # Absent from the JSON unless the event has personal fields (UNSET is never encoded).
    personal: list[SealedFields] | msgspec.UnsetType = msgspec.UNSET


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
        personal=event.personal,
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
    for name in ("correlationId", "causationId", "traceparent", "tracestate"):
        value = envelope.metadata.get(name)
        if value is not None:
            hs.append((name, value.encode()))
    return hs


_VERSION_SLOT = b'"version":0,'


class EnvelopeTemplate(msgspec.Struct, frozen=True):
    """An event's record encoded once, before its version is known: the envelope JSON
    around the version's value, the headers, and the size without the version's digits.
    ``value(v)`` is byte for byte ``encode`` of the envelope at version ``v``."""

    event_id: str
    head: bytes  # ... "aggregateId":"<id>","version":
    tail: bytes  # ,"schemaVersion":... }
    headers: list[tuple[str, bytes]]

    def value(self, version: int) -> bytes:
        return b"".join((self.head, str(version).encode(), self.tail))

    @property
    def size(self) -> int:
        """Bytes of key-less record content (value and headers), for size limits."""
        return len(self.head) + len(self.tail) + 10 + sum(len(k) + len(v) for k, v in self.headers)


def template(aggregate_type: str, aggregate_id: str, event: NewEvent) -> EnvelopeTemplate:
    """Encode ``event`` for ``aggregate_type`` ``aggregate_id`` once (see EnvelopeTemplate);
    raises SerializationError or InvalidInputError as ``encode`` would."""
    env = to_envelope(aggregate_type, aggregate_id, 0, event)
    data = encode(env)
    # Every field before "version" is a JSON string, in which a quote is escaped: the
    # first unescaped '"version":0,' is the envelope's own.
    at = data.index(_VERSION_SLOT)
    return EnvelopeTemplate(
        event.event_id, data[: at + 10], data[at + len(_VERSION_SLOT) - 1 :], headers(env)
    )
