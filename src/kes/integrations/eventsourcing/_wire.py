"""How the library's records travel as kes events (docs/wire-format.md, "eventsourcing").

Every record a recorder writes is one kes event in its log (one kes stream):

* a **stored event**: ``eventType`` is the library's topic; ``payload`` is the stored
  state itself when that state is a JSON object (the library's default JSON transcoder,
  without cipher or compressor), otherwise ``{"base64": ...}`` with metadata
  ``stateEncoding: base64``; metadata ``originatorId``, ``originatorIdType`` (``uuid`` or
  ``str``), ``originatorVersion`` and, in an application's log, ``notificationId``;
* a **tracking record** (a process application's position in an upstream log):
  ``eventType`` ``kes:Tracking``, payload ``{"applicationName": ..., "notificationId": n}``.

Pure functions, no I/O: the bytes the library gave are the bytes it gets back.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent, Tracking

from kes.envelope import NewEvent, RecordedEvent
from kes.integrations.eventsourcing.errors import InvalidRecordError

log = logging.getLogger("kes.eventsourcing")

TRACKING_EVENT_TYPE: Final = "kes:Tracking"
ORIGINATOR_ID: Final = "originatorId"
ORIGINATOR_ID_TYPE: Final = "originatorIdType"
ORIGINATOR_VERSION: Final = "originatorVersion"
NOTIFICATION_ID: Final = "notificationId"
STATE_ENCODING: Final = "stateEncoding"
BASE64: Final = "base64"
# Approximate bytes a cached row holds besides its state (objects, ids, topic).
ROW_OVERHEAD: Final = 300

_json = msgspec.json.Encoder()
_decode_json = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a log, decoded: a stored event, a tracking record, or neither (a
    record some other program wrote there, which recorders skip)."""

    version: int  # its position in the log: the kes version of the log's stream
    event: StoredEvent | None = None
    notification_id: int | None = None
    tracking: Tracking | None = None
    key: str = ""  # the event's originator key (key_of), when it has an event

    @property
    def size(self) -> int:
        return ROW_OVERHEAD + (len(self.event.state) if self.event is not None else 0)


def key_of(originator_id: object) -> str:
    """The text that identifies an originator in a log (a UUID's canonical form)."""
    if isinstance(originator_id, UUID | str):
        return str(originator_id)
    raise InvalidRecordError(
        f"originator_id must be a UUID or a str, got {type(originator_id).__name__} "
        f"{originator_id!r}."
    )


def check_stored_event(event: object) -> StoredEvent:
    """The event, or InvalidRecordError saying why the library could not have made it."""
    if not isinstance(event, StoredEvent):
        raise InvalidRecordError(f"expected a StoredEvent, got {type(event).__name__}.")
    key_of(event.originator_id)
    version = event.originator_version
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidRecordError(
            f"originator_version of {event.originator_id!r} must be an int, got {version!r}."
        )
    if not isinstance(event.topic, str) or not event.topic:
        raise InvalidRecordError(
            f"stored event {event.originator_id!r} v{version} has an empty topic; the "
            "library names each event class by its topic."
        )
    if not isinstance(event.state, bytes):
        raise InvalidRecordError(
            f"state of {event.originator_id!r} v{version} must be bytes, "
            f"got {type(event.state).__name__}."
        )
    return event


def state_payload(state: bytes) -> tuple[dict[str, Any], bool]:
    """(payload, is_json): the state as a JSON object when it is one byte for byte,
    else base64 inside an object."""
    try:
        value = _decode_json.decode(state)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict) and _json.encode(value) == state:
        return value, True
    return {BASE64: base64.b64encode(state).decode("ascii")}, False


def event_record(stored: StoredEvent, notification_id: int | None, event_id: str) -> NewEvent:
    payload, is_json = state_payload(stored.state)
    metadata = {
        ORIGINATOR_ID: str(stored.originator_id),
        ORIGINATOR_ID_TYPE: "uuid" if isinstance(stored.originator_id, UUID) else "str",
        ORIGINATOR_VERSION: str(stored.originator_version),
    }
    if notification_id is not None:
        metadata[NOTIFICATION_ID] = str(notification_id)
    if not is_json:
        metadata[STATE_ENCODING] = BASE64
    return NewEvent(event_type=stored.topic, payload=payload, event_id=event_id, metadata=metadata)


def tracking_record(tracking: Tracking, event_id: str) -> NewEvent:
    return NewEvent(
        event_type=TRACKING_EVENT_TYPE,
        payload={
            "applicationName": tracking.application_name,
            "notificationId": tracking.notification_id,
        },
        event_id=event_id,
    )


def decode_row(recorded: RecordedEvent) -> Row:
    """The row a log record holds; a record that is not the recorder's is a bare row."""
    envelope = recorded.envelope
    version = envelope.version
    try:
        if envelope.event_type == TRACKING_EVENT_TYPE:
            payload = envelope.payload
            tracking = Tracking(str(payload["applicationName"]), int(payload["notificationId"]))
            return Row(version, tracking=tracking)
        meta = envelope.metadata
        raw_id = meta[ORIGINATOR_ID]
        originator_id: UUID | str = UUID(raw_id) if meta[ORIGINATOR_ID_TYPE] == "uuid" else raw_id
        if meta.get(STATE_ENCODING) == BASE64:
            state = base64.b64decode(envelope.payload[BASE64], validate=True)
        else:
            state = _json.encode(envelope.payload)
        event = StoredEvent(
            originator_id=originator_id,
            originator_version=int(meta[ORIGINATOR_VERSION]),
            topic=envelope.event_type,
            state=state,
        )
        nid = meta.get(NOTIFICATION_ID)
        return Row(
            version,
            event=event,
            notification_id=int(nid) if nid is not None else None,
            key=raw_id if raw_id == raw_id.lower() else str(originator_id),
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.warning(
            "%s[%d]@%d (version %d of %s) is not an eventsourcing record (%s); skipped",
            recorded.position.topic,
            recorded.position.partition,
            recorded.position.offset,
            version,
            envelope.aggregate_id,
            exc,
        )
        return Row(version)


__all__ = [
    "TRACKING_EVENT_TYPE",
    "Row",
    "check_stored_event",
    "decode_row",
    "event_record",
    "key_of",
    "state_payload",
    "tracking_record",
]
