"""The append request: ``{"expectedVersion": N | "any", "events": [...]}`` to NewEvents,
refusing anything else with a 400 that names the field. Pure: no I/O."""

from __future__ import annotations

from typing import Any

import msgspec

from kes.envelope import NewEvent
from kes.serve.problems import Problem, bad_field
from kes.store.base import ANY, MAX_ID_LENGTH, NO_STREAM, Expected

__all__ = ["AppendRequest", "parse_append", "parse_if_match"]

_EVENT_FIELDS = {"eventType", "payload", "eventId", "metadata", "schemaVersion"}


class AppendRequest(msgspec.Struct, frozen=True):
    expected: Expected
    events: list[NewEvent]


def parse_if_match(value: str | None) -> int | None:
    """``If-Match: "N"`` (an ETag the reads return) to N."""
    if value is None:
        return None
    text = value.strip().removeprefix("W/")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text.isdigit():
        raise bad_field(
            "If-Match",
            f'If-Match must be a stream version in quotes, like "3" (the ETag of a read), '
            f"got {value!r}.",
        )
    return int(text)


def parse_append(body: bytes, if_match: str | None, max_events: int) -> AppendRequest:
    """Validate an append body; raises a Problem (400, or 413 for too many events)."""
    try:
        doc: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise bad_field("body", f"the body is not valid JSON: {exc}.") from None
    if not isinstance(doc, dict):
        raise bad_field("body", f"the body must be a JSON object, got {_kind(doc)}.")
    unknown = sorted(set(doc) - {"expectedVersion", "events"})
    if unknown:
        raise bad_field(
            unknown[0],
            f"unknown field {unknown[0]!r}; an append has 'expectedVersion' and 'events'.",
        )
    header_version = parse_if_match(if_match)
    expected = _expected(doc.get("expectedVersion"), "expectedVersion" in doc, header_version)
    raw_events = doc.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise bad_field(
            "events",
            "events must be a non-empty array of {eventType, payload, eventId?, metadata?}, "
            f"got {_kind(raw_events)}.",
        )
    if len(raw_events) > max_events:
        raise Problem(
            413,
            "Too many events",
            f"the append has {len(raw_events)} events; this server takes at most "
            f"{max_events} per append (--max-events-per-append). Nothing was written.",
            code="too_many_events",
            field="events",
            limit=max_events,
        )
    events = [_event(e, f"events[{i}]") for i, e in enumerate(raw_events)]
    return AppendRequest(expected, events)


def _expected(value: Any, given: bool, header: int | None) -> Expected:
    if not given:
        if header is None:
            raise bad_field(
                "expectedVersion",
                "expectedVersion is required: the stream's current version, 0 for a new "
                'stream, or "any" (or send If-Match: "N").',
            )
        value = header
    if value == "any":
        version: Expected = ANY
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        version = NO_STREAM if value == 0 else value
    else:
        raise bad_field(
            "expectedVersion",
            f'expectedVersion must be an integer >= 0 or "any", got {_kind(value)} {value!r}.',
        )
    if given and header is not None and (value == "any" or value != header):
        raise bad_field(
            "If-Match",
            f"If-Match says version {header} but expectedVersion says {value!r}; send one, "
            "or the same in both.",
        )
    return version


def _event(raw: Any, where: str) -> NewEvent:
    if not isinstance(raw, dict):
        raise bad_field(where, f"{where} must be an object, got {_kind(raw)}.")
    unknown = sorted(set(raw) - _EVENT_FIELDS)
    if unknown:
        raise bad_field(
            f"{where}.{unknown[0]}",
            f"{where} has an unknown field {unknown[0]!r}; an event has "
            f"{', '.join(sorted(_EVENT_FIELDS))}.",
        )
    event_type = raw.get("eventType")
    if not isinstance(event_type, str) or not event_type.strip():
        raise bad_field(
            f"{where}.eventType",
            f"{where}.eventType must be a non-empty string, got {_kind(event_type)}.",
        )
    payload = raw.get("payload")
    if not isinstance(payload, dict):
        raise bad_field(
            f"{where}.payload", f"{where}.payload must be a JSON object, got {_kind(payload)}."
        )
    fields: dict[str, Any] = {"event_type": event_type, "payload": payload}
    if "eventId" in raw:
        event_id = raw["eventId"]
        if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
            raise bad_field(
                f"{where}.eventId",
                f"{where}.eventId must be a non-empty string of at most {MAX_ID_LENGTH} "
                f"characters (a UUID, say), got {_kind(event_id)}.",
            )
        fields["event_id"] = event_id
    if "metadata" in raw:
        metadata = raw["metadata"]
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise bad_field(
                f"{where}.metadata",
                f"{where}.metadata must be an object of string values, got {_kind(metadata)}.",
            )
        fields["metadata"] = metadata
    if "schemaVersion" in raw:
        sv = raw["schemaVersion"]
        if not isinstance(sv, int) or isinstance(sv, bool) or sv < 1:
            raise bad_field(
                f"{where}.schemaVersion",
                f"{where}.schemaVersion must be an integer >= 1, got {_kind(sv)} {sv!r}.",
            )
        fields["schema_version"] = sv
    return NewEvent(**fields)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)
